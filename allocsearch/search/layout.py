"""Where a space parameter's values go: once (``per: none``), once per decoder block
(``block``), once per projection kind (``type``: q, k, v, o, gate, up, down for LLaMA) or
once per prunable linear module (``module``).

The Optuna names of a parameter ``p`` are ``p`` (none), ``p_3`` (block 3),
``p_self_attn.q_proj`` (type) and ``p_3.self_attn.q_proj`` (module). The projection kind is
:func:`allocsearch.models.adapters.projection_kind`, the one the predictor's typed features use.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from allocsearch.models.adapters import projection_kind
from allocsearch.plan import ModelIdentity, block_of

GRANULARITIES = ("none", "block", "type", "module")


@dataclass(frozen=True)
class SpaceLayout:
    """The model's prunable modules as a space sees them (``modules`` in the identity's order)."""

    num_blocks: int
    modules: tuple[str, ...]
    blocks: tuple[int, ...]  # block of each module
    kinds: tuple[str, ...]  # projection kind of each module
    index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)  # module -> i

    def __post_init__(self) -> None:
        if not self.index:
            object.__setattr__(self, "index", {m: i for i, m in enumerate(self.modules)})

    @classmethod
    def of(cls, identity: ModelIdentity) -> SpaceLayout:
        return _layout(identity.architecture, identity.num_blocks, tuple(identity.shapes))

    @property
    def types(self) -> tuple[str, ...]:
        """The projection kinds, in the order the first block lists them."""
        return tuple(dict.fromkeys(self.kinds))

    def parts(self, per: str) -> list[str | None]:
        """The name suffixes of a parameter with this granularity (None: the bare name)."""
        if per == "none":
            return [None]
        if per == "block":
            return [str(b) for b in range(self.num_blocks)]
        if per == "type":
            return list(self.types)
        if per == "module":
            return [self.part(m, "module") for m in self.modules]
        raise ValueError(f"per must be one of {list(GRANULARITIES)}, got {per!r}")

    def part(self, module: str, per: str) -> str | None:
        """The suffix of the parameter value that applies to ``module``."""
        i = self.index[module]
        if per == "none":
            return None
        if per == "block":
            return str(self.blocks[i])
        if per == "type":
            return self.kinds[i]
        if per == "module":
            return f"{self.blocks[i]}.{self.kinds[i]}"
        raise ValueError(f"per must be one of {list(GRANULARITIES)}, got {per!r}")


@functools.lru_cache(maxsize=16)
def _layout(architecture: str, num_blocks: int, names: tuple[str, ...]) -> SpaceLayout:
    """One layout per model shape: the short-lister builds thousands of candidate plans (and
    per-type or per-module steps a draft layout for each), and a layout is immutable."""
    return SpaceLayout(num_blocks, names, tuple(block_of(n) for n in names),
                       tuple(projection_kind(architecture, n) for n in names))
