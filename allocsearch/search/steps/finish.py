"""The last stage of building a plan from a draft: undo the pins the budget cannot absorb,
project to the exact budget, and round structured MLP shares to whole channels."""

from __future__ import annotations

from typing import Any

import numpy as np

from allocsearch.actions import BlockAction
from allocsearch.allocation.flap import remove_lowest
from allocsearch.budget import plan_from_actions, plan_from_values, projected_values
from allocsearch.models.heads import Structure
from allocsearch.plan import Plan, block_of
from allocsearch.pruners.pattern import Pattern
from allocsearch.search.layer_types import repair_layer_types
from allocsearch.search.steps.base import Draft


def finish(draft: Draft, bounds: tuple[float, float], provenance: dict[str, Any]) -> Plan:
    """Repair the pins, project to the budget and round structured MLP shares to channels."""
    ident = draft.identity
    s = ident.structure
    mlp_free = {n for n in ident.shapes if block_of(n) in draft.mlp_channels and ident.kind(n) == "mlp"}
    module_bounds = {n: (0.0, 1.0) for n in mlp_free} | {n: (v, v) for n, v in draft.fixed.items()}
    if draft.units:  # every module is structured: any share of it may go, whole units
        module_bounds = dict.fromkeys(ident.shapes, (0.0, 1.0))
    pins = {b: pin.values for b, pin in draft.pins.items()}
    kept = repair_layer_types(ident, draft.target, pins, draft.offsets, bounds, module_bounds)
    prov = dict(provenance)
    if len(kept) < len(pins):
        prov["unstructured_instead"] = sorted(set(pins) - set(kept))
    fixed: dict[str, float] = dict(draft.fixed)
    patterns: dict[str, Pattern] = {}
    actions = dict(draft.actions)
    for b in kept:
        pin = draft.pins[b]
        if pin.action is not None:
            actions[b] = pin.action
        elif pin.pattern is not None:
            patterns |= {n: pin.pattern for n in pin.values}
        else:
            fixed |= pin.values
    if s is not None:  # a kept pin may have dropped the whole block, MLP included
        mlp_free = {n for n in mlp_free
                    if actions.get(block_of(n), BlockAction()).removed(s, "mlp") is None}
    if draft.units:
        return plan_from_actions(ident, _remove_lowest_units(draft, actions),
                                 requested=draft.target, provenance=prov)
    if not mlp_free:
        return plan_from_values(ident, draft.target, draft.values, patterns=patterns, fixed=fixed,
                                bounds=bounds, provenance=prov, blocks=actions)
    projected = projected_values(ident, draft.target, draft.values, patterns=patterns, fixed=fixed,
                                 bounds=bounds, blocks=actions,
                                 module_bounds={n: (0.0, 1.0) for n in mlp_free})
    assert s is not None
    shares = {block_of(n): projected[n] for n in mlp_free}
    actions = _round_channels(s, shares, actions)
    implied = ident.implied(actions)
    fixed |= {n: 0.0 for n in mlp_free if n not in implied}  # no channel removed: dense
    free_left = [n for n in ident.shapes if n not in implied]
    if all(n in fixed or n in patterns for n in free_left):
        return plan_from_actions(ident, actions, requested=draft.target, provenance=prov)
    return plan_from_values(ident, draft.target, draft.values, patterns=patterns, fixed=fixed,
                            bounds=bounds, provenance=prov, blocks=actions)


def _round_channels(s: Structure, shares: dict[int, float],
                    actions: dict[int, BlockAction]) -> dict[int, BlockAction]:
    """Removed MLP shares -> whole channels, keeping the total (largest remainders)."""
    exact = {b: v * s.intermediate for b, v in shares.items()}
    cut = {b: int(np.floor(v)) for b, v in exact.items()}
    extra = round(sum(exact.values())) - sum(cut.values())
    for b in sorted(exact, key=lambda k: (-(exact[k] - cut[k]), k))[:max(extra, 0)]:
        cut[b] += 1
    out = dict(actions)
    for b, c in cut.items():
        a = out.get(b, BlockAction())
        out[b] = BlockAction.from_counts(s, a.kept_heads(s), s.intermediate - c)
    return {b: a for b, a in out.items() if not a.is_noop}


def _remove_lowest_units(draft: Draft, actions: dict[int, BlockAction]) -> dict[int, BlockAction]:
    """The rest of the budget (after the drops in ``actions``) as heads and channels of the
    sub-blocks left, the lowest-scored units first (:func:`allocation.flap.remove_lowest`)."""
    ident, prof = draft.identity, draft.profile
    s = ident.structure
    assert s is not None and prof is not None
    total = sum(ident.numel(n) for n in ident.shapes)
    removed = sum(share * ident.numel(n) for n, share in ident.implied(actions).items())
    free = [u for u in draft.units if actions.get(u.block, BlockAction()).removed(s, u.kind) is None]
    heads, channels = remove_lowest(prof, free, draft.target * total, removed)
    out: dict[int, BlockAction] = {}
    for b in range(ident.num_blocks):
        a = actions.get(b, BlockAction())
        if a.drop == "block":
            out[b] = a
            continue
        kept_heads = a.kept_heads(s) if a.removed(s, "attention") is not None else heads[b]
        kept_channels = a.kept_channels(s) if a.removed(s, "mlp") is not None else channels[b]
        action = BlockAction.from_counts(s, kept_heads, kept_channels)
        if not action.is_noop:
            out[b] = action
    return out
