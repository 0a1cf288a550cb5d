"""Which heads and channels a plan's structured actions remove, and their compensation.

A plan says *how many* heads/channels each block keeps; the selection decides *which*, from
the dense model's calibration statistics (the profile): per sub-block, the units with the
highest fluctuation stay and the removed ones' mean contribution becomes a bias
(:mod:`allocsearch.pruners.structured_sparsify`); a dropped sub-block becomes that bias
alone (its mean output). A dropped *block* has no compensation (ShortGPT's depth pruning).
The masked evaluation and the physical removal both read the same selection, which is what
makes them agree exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from allocsearch.actions import SUBBLOCKS, BlockAction
from allocsearch.models.adapters import ModelAdapter
from allocsearch.profile import Profile
from allocsearch.pruners.structured_sparsify import expand_groups, select_units


@dataclass(frozen=True)
class SubSelection:
    """One structured sub-block: ``kept`` group indices (KV groups for attention, channels for
    the MLP; empty when dropped) and the (hidden,) bias that compensates the removed ones."""

    kind: str
    kept: torch.Tensor  # (g,) int64, sorted
    bias: torch.Tensor | None
    units: int  # output-projection input columns per group (group x head_dim, or 1)

    @property
    def dropped(self) -> bool:
        return self.kept.numel() == 0

    def columns(self) -> torch.Tensor:
        """Kept input columns of the output projection (o_proj / down_proj)."""
        return expand_groups(self.kept, self.units)


@dataclass(frozen=True)
class BlockSelection:
    block: int
    drop_block: bool
    subs: dict[str, SubSelection]  # the structured sub-blocks of a kept block


def select_structure(
    actions: Mapping[int, BlockAction], profile: Profile, adapter: ModelAdapter, *,
    compensate: bool = True,
) -> dict[int, BlockSelection]:
    """The selection for every block with a structured action (``plan.structured()``)."""
    if not actions:
        return {}
    s = adapter.require_structured()
    out: dict[int, BlockSelection] = {}
    for b, action in actions.items():
        if action.drop == "block":
            out[b] = BlockSelection(b, True, {})
            continue
        subs: dict[str, SubSelection] = {}
        for kind in SUBBLOCKS:
            if action.removed(s, kind) is None:
                continue
            keep, width = ((action.kept_heads(s) // s.group, s.group * s.head_dim)
                           if kind == "attention" else (action.kept_channels(s), 1))
            name = adapter.out_proj_name(b, kind)
            weight = profile.weight(name)  # (hidden, units) dense
            mean, var = profile.channel_moments(name)
            kept, bias = select_units(weight, mean, var, keep, width, compensate=compensate)
            subs[kind] = SubSelection(kind, kept.cpu(), None if bias is None else bias.cpu(), width)
        out[b] = BlockSelection(b, False, subs)
    return out
