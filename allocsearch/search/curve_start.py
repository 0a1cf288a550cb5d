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
per ``around`` it uses, and counts the tokens of each once.

``rounds: 2`` (or more) iterates: round r picks the plan of lowest full-fidelity fitness
among :data:`ROUND_MIXES` of round r-1's allocation (mixed with ``prior`` after the first
round's curves, with round r-1's reference after later ones), measures the curves around it,
and the warm start's ``mix`` then steps from that reference towards the last round's
allocation. Each round's curves and reference are stored under :func:`curves_label`, and its
tokens (the mixes' fitness and the curves) count once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from allocsearch.allocation.curves import BlockCurves, curve_plan
from allocsearch.evaluate import Evaluator
from allocsearch.evaluate.reference import ReferencePlan
from allocsearch.evaluate.sensitivity import Around, cached_block_curves, curve_mixes
from allocsearch.plan import Plan
from allocsearch.search import store

METHOD = "curves"
PARAMS = {"mix", "prior", "around", "rounds"}
#: the shares of a round's allocation (the rest its reference's) the next round's reference is chosen from
ROUND_MIXES = (0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class CurveRound:
    """The last round's curves and the plan a warm start's ``mix`` steps from: ``prior``'s
    after one round (None without a prior), the last round's reference after more."""

    curves: BlockCurves
    partner: Plan | None


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
    rounds = params.get("rounds", 1)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise ValueError(f"{where}: rounds must be a whole number of at least 1, got {rounds!r}")
    if rounds > 1 and "prior" not in params:
        raise ValueError(f"{where}: more than one round needs a prior (the first round's mixes)")
    for key in ("prior", "around"):  # an unknown allocator or parameter fails here
        if key in params:
            ReferencePlan.parse(params[key])


def around_label(params: dict[str, Any]) -> str:
    """The label of the plan a warm start's curves are measured around ("" from dense)."""
    return ReferencePlan.parse(params["around"]).label if "around" in params else ""


def curves_label(params: dict[str, Any], round_: int | None = None) -> str:
    """The label a round's curves are stored (and measured around) under: the first round's is
    :func:`around_label`, round r's names its start and prior (``"round 2 from uniform with
    ramp slope=0.1"``); the last round's by default."""
    round_ = int(params.get("rounds", 1)) if round_ is None else round_
    if round_ == 1:
        return around_label(params)
    prior = ReferencePlan.parse(params["prior"]).label
    return f"round {round_} from {around_label(params) or 'dense'} with {prior}"


def first_curves(study: optuna.Study, ev: Evaluator, target: float, around: str = "",
                 progress: bool = False) -> BlockCurves:
    """The study's first-round block curves (from dense, or ``around`` an allocator's plan at
    ``target``): stored, or measured now (or read from the cache, where an earlier study of the
    same model and Evaluator measured them) and stored with their tokens, which count as this
    study's either way."""
    stored = store.block_curves(study, around)
    if stored is not None:
        return BlockCurves.from_dict(stored)
    plan = Around.reference(around, ev, target) if around else None
    curves = cached_block_curves(ev, progress=progress, around=plan)
    store.save_block_curves(study, curves.to_dict(), curves.tokens_read, around)
    return curves


def study_curves(study: optuna.Study, ev: Evaluator, target: float, params: dict[str, Any],
                 progress: bool = False) -> CurveRound:
    """Every round of one ``curves`` warm start's ``params``: each read from the study, or
    measured now and stored with its reference and tokens (the reference's choice reads
    ``len(ROUND_MIXES)`` full-fidelity fitnesses)."""
    prior = ReferencePlan.parse(params["prior"]).plan(ev.profile, target) if "prior" in params else None
    curves, partner = first_curves(study, ev, target, around_label(params), progress), prior
    for round_ in range(2, int(params.get("rounds", 1)) + 1):
        label = curves_label(params, round_)
        stored = store.block_curves(study, label)
        if stored is None:
            best = min(curve_mixes(ev, curves, target, partner, ROUND_MIXES), key=lambda m: m.fitness)
            curves = cached_block_curves(ev, progress=progress, around=Around(label, best.plan))
            stored = curves.to_dict() | {"reference": best.plan.to_dict()}
            mix_tokens = len(ROUND_MIXES) * ev.config.fidelities[-1]
            store.save_block_curves(study, stored, curves.tokens_read + mix_tokens, label)
        curves, partner = BlockCurves.from_dict(stored), Plan.from_dict(stored["reference"])
    return CurveRound(curves, partner)


def all_study_curves(study: optuna.Study, ev: Evaluator, target: float,
                     params: list[dict[str, Any]], progress: bool = False) -> dict[str, CurveRound]:
    """:func:`study_curves` for every distinct last round the ``params`` of the study's curves
    warm starts name, by :func:`curves_label`."""
    lasts = {curves_label(p): p for p in params}
    return {label: study_curves(study, ev, target, p, progress) for label, p in sorted(lasts.items())}


def curves_warm_plan(params: dict[str, Any], curves: Mapping[str, CurveRound], ev: Evaluator,
                     target: float) -> Plan:
    """The plan of one ``curves`` warm start at ``target``: its ``mix`` of the last round's
    allocation with that round's partner (the prior after one round)."""
    last = curves[curves_label(params)]
    return curve_plan(ev.identity, last.curves, target, prior=last.partner,
                      mix=float(params.get("mix", 1.0)))
