"""Depth pruning by block influence (ShortGPT): drop the blocks that change the residual
stream least.

A block's influence is 1 - the mean cosine similarity of its input and output residual on
the calibration data (the profile measures it). Blocks are dropped in ascending influence
while the removed parameters stay within the target; the remainder, less than one block,
narrows the MLP of the next block in that order (whole channels; past its MLP, whole KV
groups of its attention), so that depth pruning is compared with other plans at equal
parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allocsearch.actions import BlockAction
from allocsearch.allocation.base import AllocatorParams, StructuredAllocator, subblock_mass, unit_cost
from allocsearch.profile import Profile


@dataclass(frozen=True)
class BlockInfluenceParams(AllocatorParams):
    #: what takes the remainder below one block: "mlp" (narrow one block's MLP) or "none"
    remainder: str = "mlp"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.remainder not in ("mlp", "none"):
            raise ValueError(f"remainder must be 'mlp' or 'none', got {self.remainder!r}")


class BlockInfluenceAllocator(StructuredAllocator):
    name = "block_influence"
    Params = BlockInfluenceParams

    def _actions(self, profile: Profile, target: float) -> dict[int, BlockAction]:
        influence = profile.influence.get("block")
        if not influence:
            raise ValueError("this profile has no block influence; rebuild it")
        ident = profile.identity
        s = ident.structure
        assert s is not None
        mass = subblock_mass(ident)
        total = sum(m["attention"] + m["mlp"] for m in mass)
        want = target * total
        order = [int(b) for b in np.argsort(np.asarray(influence), kind="stable")]
        actions: dict[int, BlockAction] = {}
        removed = 0.0
        for b in order:
            size = mass[b]["attention"] + mass[b]["mlp"]
            if removed + size > want:
                p = self.params
                assert isinstance(p, BlockInfluenceParams)
                if p.remainder == "mlp":
                    # Whole MLP channels first; what exceeds the MLP comes off its attention.
                    rest = want - removed
                    cut = min(round(rest / unit_cost(ident, b, "mlp")), s.intermediate)
                    rest -= cut * unit_cost(ident, b, "mlp")
                    groups = min(max(round(rest / unit_cost(ident, b, "attention")), 0), s.kv_heads)
                    action = BlockAction.from_counts(s, (s.kv_heads - groups) * s.group,
                                                     s.intermediate - cut)
                    if not action.is_noop:
                        actions[b] = action
                break
            actions[b] = BlockAction(drop="block")
            removed += size
        return actions
