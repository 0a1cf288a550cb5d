"""The ``curves`` warm start: a plan allocated from the block loss curves the study measures.

``warm_start: [{method: curves, params: {mix: 0.5, prior: "ramp slope=0.2"}}]`` (a ``grid``
over ``mix`` works as for any prior). Before the first trial the study measures every block's
loss curve with its own Evaluator (:func:`allocsearch.evaluate.sensitivity.cached_block_curves`
at the first fidelity; studies of the same model and Evaluator share them through the cache),
keeps them in the study storage, and counts their tokens as search tokens of the study
(``max_tokens`` included), also when the cache held them. Each ``curves`` warm start is then
:func:`allocsearch.allocation.curves.curve_plan` at the study's target, mixed with ``prior``'s
block sparsities (needed when ``mix`` is below 1)."""

from __future__ import annotations

from typing import Any

import optuna

from allocsearch.allocation.curves import BlockCurves, curve_plan
from allocsearch.evaluate import Evaluator
from allocsearch.evaluate.reference import ReferencePlan
from allocsearch.evaluate.sensitivity import DEFAULT_CURVE_LEVELS, cached_block_curves
from allocsearch.plan import Plan
from allocsearch.search import store

METHOD = "curves"
PARAMS = {"mix", "prior"}


def check_params(params: dict[str, Any], where: str) -> None:
    """Fail at config load on what a ``curves`` warm start cannot use."""
    unknown = sorted(set(params) - PARAMS)
    if unknown:
        raise ValueError(f"{where}: the curves warm start takes {sorted(PARAMS)}, not {unknown}")
    mix = float(params.get("mix", 1.0))
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"{where}: mix must lie in [0, 1], got {mix}")
    if mix < 1.0 and "prior" not in params:
        raise ValueError(f"{where}: a mix below 1 needs a prior (e.g. prior: 'ramp slope=0.2')")
    if "prior" in params:
        ReferencePlan.parse(params["prior"])  # an unknown allocator or parameter fails here


def study_curves(study: optuna.Study, ev: Evaluator, progress: bool = False) -> BlockCurves:
    """The study's block curves: stored, or measured now (or read from the cache, where an
    earlier study of the same model and Evaluator measured them) and stored with their tokens,
    which count as this study's either way."""
    stored = store.block_curves(study)
    if stored is not None:
        return BlockCurves.from_dict(stored)
    curves = cached_block_curves(ev, DEFAULT_CURVE_LEVELS, progress=progress)
    store.save_block_curves(study, curves.to_dict(), curves.tokens_read)
    return curves


def curves_warm_plan(params: dict[str, Any], curves: BlockCurves, ev: Evaluator, target: float) -> Plan:
    """The plan of one ``curves`` warm start at ``target``."""
    prior = ReferencePlan.parse(params["prior"]).plan(ev.profile, target) if "prior" in params else None
    return curve_plan(ev.identity, curves, target, prior=prior, mix=float(params.get("mix", 1.0)))
