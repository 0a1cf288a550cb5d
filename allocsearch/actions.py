"""Structured (NAS) actions of one decoder block, as plan data.

A block may drop its attention sub-block, its MLP sub-block or both (the whole block), or
narrow them: keep ``heads`` query heads (whole grouped-query groups, so every kept query head
keeps its key/value head) and ``mlp_channels`` intermediate channels. Which heads and channels
go is decided when the plan is applied (:mod:`allocsearch.structure`); the plan only says how
many, which is what the budget needs: a structured sub-block removes the same share of every
one of its projections (``1 - kept / total``), so that share *is* each module's sparsity.

``Structure`` (:mod:`allocsearch.models.heads`) is the part of a model's identity those
counts are checked against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from allocsearch.models.heads import Structure

#: What ``drop`` may name.
DROPPABLE = ("attention", "mlp", "block")
SUBBLOCKS = ("attention", "mlp")


class ActionError(ValueError):
    """A structured action the model cannot take, with a message naming block and fault."""


@dataclass(frozen=True)
class BlockAction:
    """One block's structured action; ``None`` counts mean "keep all"."""

    drop: str | None = None  # "attention", "mlp" or "block"
    heads: int | None = None
    mlp_channels: int | None = None

    # ------------------------------------------------------------- kept counts
    def kept_heads(self, s: Structure) -> int:
        if self.drop in ("attention", "block"):
            return 0
        return s.heads if self.heads is None else self.heads

    def kept_channels(self, s: Structure) -> int:
        if self.drop in ("mlp", "block"):
            return 0
        return s.intermediate if self.mlp_channels is None else self.mlp_channels

    def removed(self, s: Structure, kind: str) -> float | None:
        """The share of each ``kind`` ("attention"/"mlp") projection this action removes, or
        None when it leaves that sub-block to unstructured pruning."""
        if kind == "attention":
            if self.drop not in ("attention", "block") and self.heads is None:
                return None
            return 1.0 - self.kept_heads(s) / s.heads
        if self.drop not in ("mlp", "block") and self.mlp_channels is None:
            return None
        return 1.0 - self.kept_channels(s) / s.intermediate

    # -------------------------------------------------------------- validation
    def check(self, s: Structure | None, block: int) -> None:
        """Raise ActionError unless the model of structure ``s`` can take this action."""
        at = f"blocks[{block}]"
        if s is None:
            raise ActionError(f"{at}: structured actions need a model identity with a structure "
                              "(heads, KV groups, MLP width): only LLaMA-like models have one")
        if self.drop is not None and self.drop not in DROPPABLE:
            raise ActionError(f"{at}: cannot drop {self.drop!r}: the sub-blocks are "
                              f"{', '.join(DROPPABLE)}")
        if self.heads is not None:
            if self.drop in ("attention", "block"):
                raise ActionError(f"{at}: heads={self.heads} contradicts drop={self.drop!r}")
            if not 1 <= self.heads <= s.heads:
                raise ActionError(f"{at}: heads={self.heads} is outside 1..{s.heads} "
                                  f"(the block has {s.heads}; drop the attention to keep none)")
            if self.heads % s.group:
                raise ActionError(
                    f"{at}: heads={self.heads} splits a KV group: heads come in groups of "
                    f"{s.group} ({s.heads} heads share {s.kv_heads} key/value heads)")
        if self.mlp_channels is not None:
            if self.drop in ("mlp", "block"):
                raise ActionError(f"{at}: mlp_channels={self.mlp_channels} contradicts drop={self.drop!r}")
            if not 1 <= self.mlp_channels <= s.intermediate:
                raise ActionError(f"{at}: mlp_channels={self.mlp_channels} is outside "
                                  f"1..{s.intermediate} (drop the MLP to keep none)")

    # ----------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.drop is not None:
            out["drop"] = self.drop
        if self.heads is not None:
            out["heads"] = self.heads
        if self.mlp_channels is not None:
            out["mlp_channels"] = self.mlp_channels
        return out

    @classmethod
    def from_dict(cls, data: Any, block: int) -> BlockAction:
        at = f"blocks[{block}]"
        if not isinstance(data, dict):
            raise ActionError(f"{at} must be an object like {{\"drop\": \"block\"}}")
        unknown = sorted(set(data) - {"drop", "heads", "mlp_channels"})
        if unknown:
            raise ActionError(f"{at}: unknown key(s) {unknown}; allowed: drop, heads, mlp_channels")
        drop, heads, channels = data.get("drop"), data.get("heads"), data.get("mlp_channels")
        if drop is not None and not isinstance(drop, str):
            raise ActionError(f"{at}.drop must be a string")
        for key, v in (("heads", heads), ("mlp_channels", channels)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise ActionError(f"{at}.{key} must be an integer")
        return cls(drop, heads, channels)

    @classmethod
    def from_counts(cls, s: Structure, heads: int, channels: int) -> BlockAction:
        """The action that keeps ``heads`` heads and ``channels`` channels (0 drops)."""
        if heads == 0 and channels == 0:
            return cls(drop="block")
        if heads == 0:
            return cls(drop="attention", mlp_channels=None if channels == s.intermediate else channels)
        if channels == 0:
            return cls(drop="mlp", heads=None if heads == s.heads else heads)
        return cls(heads=None if heads == s.heads else heads,
                   mlp_channels=None if channels == s.intermediate else channels)

    @property
    def is_noop(self) -> bool:
        return self.drop is None and self.heads is None and self.mlp_channels is None
