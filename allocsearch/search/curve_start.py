"""The ``curves`` warm start: a plan allocated from the block loss curves the study measures.

``warm_start: [{method: curves, params: {mix: 0.5, prior: "ramp slope=0.2"}}]`` (a ``grid``
over ``mix`` works as for any prior). Before the first trial the study measures every block's
loss curve with its own Evaluator (:func:`allocsearch.evaluate.sensitivity.cached_block_curves`
at the first fidelity; studies of the same model and Evaluator share them through the cache),
keeps them in the study storage, and counts their tokens as search tokens of the study
(``max_tokens`` included), also when the cache held them. Each ``curves`` warm start is then
:func:`allocsearch.allocation.curves.curve_plan` at the study's target, mixed with ``prior``'s
block sparsities (needed when ``mix`` is below 1).

``around: uniform`` (any allocator spelling) takes the curves measured around that allocator's
plan at the study's target instead of from the dense model (each block moved alone, the rest
at that plan): the marginal costs where the search operates. A study keeps one set of curves
per ``around`` it uses, and counts the tokens of each once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from allocsearch.allocation.curves import BlockCurves, curve_plan
from allocsearch.evaluate import Evaluator
from allocsearch.evaluate.reference import ReferencePlan
from allocsearch.evaluate.sensitivity import Around, cached_block_curves
from allocsearch.plan import Plan
from allocsearch.search import store

METHOD = "curves"
PARAMS = {"mix", "prior", "around"}


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
    for key in ("prior", "around"):  # an unknown allocator or parameter fails here
        if key in params:
            ReferencePlan.parse(params[key])


def around_label(params: dict[str, Any]) -> str:
    """The label of the plan a warm start's curves are measured around ("" from dense)."""
    return ReferencePlan.parse(params["around"]).label if "around" in params else ""


def study_curves(study: optuna.Study, ev: Evaluator, target: float, around: str = "",
                 progress: bool = False) -> BlockCurves:
    """The study's block curves (from dense, or ``around`` an allocator's plan at ``target``):
    stored, or measured now (or read from the cache, where an earlier study of the same model
    and Evaluator measured them) and stored with their tokens, which count as this study's
    either way."""
    stored = store.block_curves(study, around)
    if stored is not None:
        return BlockCurves.from_dict(stored)
    plan = Around.reference(around, ev, target) if around else None
    curves = cached_block_curves(ev, progress=progress, around=plan)
    store.save_block_curves(study, curves.to_dict(), curves.tokens_read, around)
    return curves


def all_study_curves(study: optuna.Study, ev: Evaluator, target: float,
                     params: list[dict[str, Any]], progress: bool = False) -> dict[str, BlockCurves]:
    """:func:`study_curves` for every ``around`` the ``params`` of the study's curves warm
    starts name, by label ("" for the curves from dense)."""
    labels = sorted({around_label(p) for p in params})
    return {label: study_curves(study, ev, target, label, progress) for label in labels}


def curves_warm_plan(params: dict[str, Any], curves: Mapping[str, BlockCurves], ev: Evaluator,
                     target: float) -> Plan:
    """The plan of one ``curves`` warm start at ``target``, from the curves of its ``around``."""
    prior = ReferencePlan.parse(params["prior"]).plan(ev.profile, target) if "prior" in params else None
    return curve_plan(ev.identity, curves[around_label(params)], target, prior=prior,
                      mix=float(params.get("mix", 1.0)))
