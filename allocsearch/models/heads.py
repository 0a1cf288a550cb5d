"""The head and channel structure of a LLaMA-like decoder stack: what structured actions
(drop or narrow sub-blocks) are counted and checked against."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Structure:
    """Head and channel counts of a (homogeneous) decoder stack."""

    heads: int  # query heads per block
    kv_heads: int  # key/value heads per block
    head_dim: int
    intermediate: int  # MLP intermediate channels per block

    @property
    def group(self) -> int:
        """Query heads per key/value head: the step ``heads`` must move in."""
        return self.heads // self.kv_heads

    def to_dict(self) -> dict[str, int]:
        return {"heads": self.heads, "kv_heads": self.kv_heads, "head_dim": self.head_dim,
                "intermediate": self.intermediate}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Structure:
        try:
            values = {k: data[k] for k in ("heads", "kv_heads", "head_dim", "intermediate")}
        except KeyError as exc:
            raise ValueError(f"model.structure lacks {exc.args[0]!r}") from None
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values.values()):
            raise ValueError(f"model.structure values must be positive integers, got {values}")
        s = cls(**values)
        if s.heads % s.kv_heads:
            raise ValueError(f"model.structure: {s.heads} heads do not split into {s.kv_heads} KV groups")
        return s
