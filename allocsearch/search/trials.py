"""One trial of a study as a typed record: ask -> values -> plan -> fitness steps -> tell.

:func:`evaluate_trial` runs a trial the study asked for (its values come from the sampler, or
from an enqueued proposal such as a screened candidate); :func:`run_trial` evaluates an asked
trial and hands the outcome back to Optuna. The runner loops over these, so a
short-lister can propose plans before a trial is asked and learn from each record after it
is told.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import TrialState

from allocsearch.evaluate import Evaluator, FitnessStep
from allocsearch.plan import Plan, PlanError
from allocsearch.search import store
from allocsearch.search.layout import SpaceLayout
from allocsearch.search.space import SearchSpace, SpaceError


@dataclass
class TrialRecord:
    """What one trial did: its values, the plan they made, the fitness at each fidelity read
    (the last one decides), and why it stopped early (``pruned``: the pruner stopped it at a
    fidelity; ``infeasible``: the values make no plan; ``failed``: the fitness was not finite or
    the device ran out of memory)."""

    number: int
    values: dict[str, Any]
    plan: Plan | None = None
    steps: list[FitnessStep] = field(default_factory=list)
    state: str = "complete"  # complete | pruned | infeasible | failed
    reason: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)  # prior label, screening prediction
    seconds: float = 0.0
    second: float | None = None  # a two-objective study's second value

    @property
    def tokens(self) -> int:
        """Search tokens the fitness read (what ``max_tokens`` budgets)."""
        return self.steps[-1].tokens if self.steps else 0

    @property
    def value(self) -> float | None:
        return self.steps[-1].value if self.steps and self.state == "complete" else None


def evaluate_trial(
    trial: optuna.Trial,
    space: SearchSpace,
    ev: Evaluator,
    target: float,
    *,
    report: bool,
    on_step: Callable[[TrialRecord], None] | None = None,
) -> TrialRecord:
    """Suggest, build the plan, read its fitness fidelity by fidelity (reporting each to the
    pruner when ``report``), and store the plan and tokens on the trial."""
    start = time.perf_counter()
    rec = TrialRecord(trial.number, space.suggest(trial, SpaceLayout.of(ev.identity)),
                      provenance=store.provenance(trial))
    try:
        rec.plan = ev.prepare(space.build_plan(rec.values, ev.profile, target))
    except (SpaceError, PlanError) as exc:
        rec.state, rec.reason = "infeasible", str(exc)
        store.write_trial(trial, infeasible=rec.reason)
        rec.seconds = time.perf_counter() - start
        return rec
    store.write_plan(trial, rec.plan)
    for step in ev.iter_fitness(rec.plan):
        rec.steps.append(step)
        store.write_trial(trial, tokens=step.tokens)
        if not math.isfinite(step.value):  # a diverged plan (or fp16 overflow): not a ranking
            rec.state, rec.reason = "failed", f"fitness is {step.value} at {step.tokens} tokens"
            break
        if on_step is not None:
            on_step(rec)
        if report:
            trial.report(step.value, step.tokens)
            if trial.should_prune():
                rec.state, rec.reason = "pruned", f"{step.value:.4g} at {step.tokens} tokens"
                break
    rec.seconds = time.perf_counter() - start
    return rec


def run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    space: SearchSpace,
    ev: Evaluator,
    target: float,
    *,
    on_step: Callable[[TrialRecord], None] | None = None,
    second: Callable[[Plan], float] | None = None,
    on_complete: Callable[[optuna.Trial, Plan], None] | None = None,
) -> TrialRecord:
    """Evaluate an asked trial and tell the outcome. A fitness that is not finite or a device
    out of memory is told as failed with its reason (``fail_reason``) and the study goes on;
    any other exception is told as failed and raised. The trial beats a heartbeat while it
    runs, as under ``study.optimize``, so a worker that dies leaves a trial that goes stale.
    ``second`` gives a two-objective study's second value (its absence: one objective, the
    fitness reported to the pruner fidelity by fidelity); ``on_complete`` sees a complete
    trial's plan before it is told (to store what a constraint reads)."""
    multi = second is not None
    # Optuna's ask/tell interface has no public heartbeat; this is the helper optimize uses.
    start = time.perf_counter()
    with get_heartbeat_thread(trial._trial_id, study._storage):
        try:
            rec = evaluate_trial(trial, space, ev, target, report=not multi, on_step=on_step)
            if rec.state == "complete" and rec.plan is not None:
                if on_complete is not None:
                    on_complete(trial, rec.plan)
                if second is not None:
                    rec.second = second(rec.plan)
            rec.seconds = time.perf_counter() - start  # a task-accuracy objective included
        except torch.OutOfMemoryError as exc:
            rec = TrialRecord(trial.number, dict(trial.params), state="failed",
                              reason=f"out of memory: {str(exc).splitlines()[0]}")
            _free_device_memory()
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
    store.write_trial(trial, seconds=round(rec.seconds, 4))  # evaluation time, storage excluded
    if rec.state == "failed":
        store.write_trial(trial, fail_reason=rec.reason)
        study.tell(trial, state=TrialState.FAIL)
    elif rec.state != "complete":
        study.tell(trial, state=TrialState.PRUNED)
    elif multi:
        assert rec.value is not None and rec.second is not None
        study.tell(trial, [rec.value, rec.second])
    else:
        study.tell(trial, rec.value)
    return rec


def _free_device_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
