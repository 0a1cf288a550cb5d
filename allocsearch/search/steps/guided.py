"""``guided``: structured actions alone, searched *around* the structured priors.

Random per-block structure is mostly catastrophic (a dropped first block, an MLP cut to
nothing), so this step ranks by the profile and lets the trial perturb the ranking:

- ``depth`` blocks are dropped: those with the lowest block-influence rank (0..1, ShortGPT's
  order) plus the trial's per-block ``depth_offsets``;
- ``attention_drops`` attention sub-blocks of the remaining blocks are dropped: the lowest
  attention-influence rank plus ``attention_offsets``;
- the rest of the budget removes KV groups and MLP channels of the blocks left, lowest score
  first across all blocks, exactly as the FLAP-like allocator ranks them
  (:func:`allocsearch.allocation.flap.unit_scores`), each score plus its block's
  ``attention_offsets`` (groups) or ``mlp_offsets`` (channels) value.

All offsets 0 with ``depth`` = k reproduce block influence's drops (its remainder below one
block goes to the lowest-scored units instead of one block's MLP); ``depth`` = 0 and no
attention drops reproduce the FLAP-like allocator. Drops the budget cannot absorb are
undone, most important first.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from allocsearch.actions import BlockAction
from allocsearch.allocation.flap import Unit, unit_scores
from allocsearch.plan import Plan, block_of
from allocsearch.profile import Profile
from allocsearch.search.layout import SpaceLayout
from allocsearch.search.steps.base import Draft, Pin, Step, StepError


def influence_rank(values: list[float]) -> np.ndarray:
    """(blocks,) rank of each value, scaled to 0..1 (0 = lowest influence), ties by index."""
    order = np.argsort(np.asarray(values), kind="stable")
    rank = np.empty(len(values))
    rank[order] = np.arange(len(values)) / max(len(values) - 1, 1)
    return rank


class GuidedStructureStep(Step):
    key = "guided"
    structured = True
    roles: ClassVar[dict[str, tuple[str, str, bool]]] = {
        "depth": ("int", "none", True),
        "depth_offsets": ("float", "block", True),
        "attention_drops": ("int", "none", True),
        "attention_offsets": ("float", "block", True),
        "mlp_offsets": ("float", "block", True),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._units: tuple[str, list[Unit]] | None = None  # (profile key, units)

    def _unit_scores(self, profile: Profile) -> list[Unit]:
        """The FLAP-like units of the profile, computed once per (cached) profile."""
        if self._units is None or self._units[0] != profile.key or not profile.key:
            self._units = (profile.key, unit_scores(profile))
        return self._units[1]

    def apply(self, draft: Draft, values: dict[str, Any]) -> None:
        ident, prof = draft.identity, draft.profile
        if ident.structure is None or prof is None or "attention" not in prof.influence:
            raise StepError("the guided step needs a LLaMA-like model and its profile's influences")
        names: dict[int, list[str]] = {}
        for n in ident.shapes:
            names.setdefault(block_of(n), []).append(n)
        nb = ident.num_blocks
        depth_key = influence_rank(prof.influence["block"]) + [
            float(self.value(values, "depth_offsets", b)) for b in range(nb)]
        dropped = [int(b) for b in np.argsort(depth_key, kind="stable")[:int(self.value(values, "depth"))]]
        attn_key = influence_rank(prof.influence["attention"]) + [
            float(self.value(values, "attention_offsets", b)) for b in range(nb)]
        rest = [int(b) for b in np.argsort(attn_key, kind="stable") if int(b) not in dropped]
        no_attention = rest[:int(self.value(values, "attention_drops"))]
        for b in dropped:
            draft.pins[b] = Pin({n: 1.0 for n in names[b]}, action=BlockAction(drop="block"))
            draft.offsets[b] = -float(depth_key[b])  # repair undoes the most important drop first
        for b in no_attention:
            draft.pins[b] = Pin({n: 1.0 for n in names[b] if ident.kind(n) == "attention"},
                                action=BlockAction(drop="attention"))
            draft.offsets[b] = -float(attn_key[b])
        offsets = {kind: [float(self.value(values, f"{kind}_offsets", b)) for b in range(nb)]
                   for kind in ("attention", "mlp")}
        draft.units = [dataclasses.replace(u, score=u.score + offsets[u.kind][u.block])
                       for u in self._unit_scores(prof)]

    def prior_values(self, prior: Plan, layout: SpaceLayout,
                     before: dict[str, float] | None) -> dict[str, Any] | None:
        s = prior.model.structure
        actions = prior.structured()
        if s is None or not actions or any(a.drop == "mlp" for a in actions.values()):
            return None  # unstructured, or a dropped MLP: not in this space
        out: dict[str, Any] = {self.refs["depth"]: self.params["depth"].clip(
            sum(a.drop == "block" for a in actions.values())),
            self.refs["attention_drops"]: self.params["attention_drops"].clip(
                sum(a.drop == "attention" for a in actions.values()))}
        for role in ("depth_offsets", "attention_offsets", "mlp_offsets"):
            spec = self.params[role]
            out |= {name: spec.clip(0.0) for name in spec.names(layout)}
        return out


__all__ = ["GuidedStructureStep", "influence_rank"]
