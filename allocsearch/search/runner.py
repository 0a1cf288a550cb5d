"""Run a study: warm starts from the priors, cached-mask fitness with fidelities, Optuna
pruning, a progress bar and a one-line log per trial, then exact verification of the best.

What a study stores (each trial's plan, the search tokens its fitness read, the protocol,
verifications keyed by their settings) is read and written by :mod:`allocsearch.search.store`
alone. Re-running a config resumes its study only when the protocol is unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna
from tqdm.auto import tqdm

from allocsearch.evaluate import Evaluator, PlanLatency, Verification, verify
from allocsearch.evaluate.verification import key as verification_key
from allocsearch.models.loading import LoadedModel
from allocsearch.plan import Plan
from allocsearch.search import curve_start, store
from allocsearch.search.accuracy import AccuracyScorer
from allocsearch.search.config import StudyConfig
from allocsearch.search.finalists import run_finalists
from allocsearch.search.progress import TrialProgress
from allocsearch.search.samplers import make_pruner, make_sampler
from allocsearch.search.screening import attach_screener, prequential_spearman
from allocsearch.search.settings import WarmStart
from allocsearch.search.space import SearchSpace, SpaceError, find_space
from allocsearch.search.storage import StudyLock, open_storage
from allocsearch.search.store import StudyProtocol, check_protocol
from allocsearch.search.trials import run_trial
from allocsearch.search.workers import StudyCount, claim_trial

log = logging.getLogger(__name__)
#: A worker stops after this many failed trials in a row (a broken config, not one bad plan).
MAX_FAILURES = 5


class StudyError(ValueError):
    """A study that cannot go on, said in one line."""


@dataclass
class StudyRun:
    study: optuna.Study
    config: StudyConfig
    space: SearchSpace
    new_trials: int = 0
    verified: dict[int, Verification] = field(default_factory=dict)


def _second_objective(config: StudyConfig, ev: Evaluator,
                      scorer: AccuracyScorer | None) -> Callable[[Plan], float] | None:
    """The second objective of a two-objective study, as a function of the plan."""
    if "accuracy" in config.objectives:
        assert scorer is not None
        return scorer.score
    if "latency" in config.objectives:
        settings = config.latency
        timer = PlanLatency(ev, settings.config)
        return lambda plan: settings.value(timer.measure(plan))
    if "sparsity" in config.objectives:
        # Rounded to the budget's tolerance: plans projected to one target differ in the last
        # float bits, which would otherwise decide Pareto dominance between them.
        return lambda plan: round(plan.budget(), 6)
    return None


def open_study(config: StudyConfig, protocol: StudyProtocol | None = None) -> optuna.Study:
    """Create the study, or load it when it exists (re-running a config resumes it; another
    worker with the same config and storage joins it). Nothing is written before the
    sampler, the pruner and the storage are known to work, and an existing study whose
    ``protocol`` differs is refused (:class:`ProtocolError`) before anything is written."""
    directions: list[Literal["minimize", "maximize"]] = ["minimize"]
    if "sparsity" in config.objectives:
        directions.append("maximize")
    if "latency" in config.objectives:
        directions.append("minimize")
    if "accuracy" in config.objectives:
        directions.append("maximize")
    params = dict(config.sampler_params)
    sampler = make_sampler(config.sampler, config.seed, params)
    pruner_name = config.pruner
    if pruner_name == "none" and config.sampler == "evopress":
        pruner_name = "evopress"  # EvoPress's multi-step selection is its pruner
    pruner = make_pruner(pruner_name, dict(config.pruner_params))
    # A trial whose process died stops beating; a later claim fails it and enqueues its retry.
    if config.storage is None:  # the default SQLite file lives in the output folder
        config.output.mkdir(parents=True, exist_ok=True)
    # Workers starting at once on a new database would race to create Optuna's tables.
    with StudyLock(config.storage_url, config.name) as lock, lock.held():
        storage = open_storage(config.storage_url, config.heartbeat)
        if protocol is not None and config.name in _study_names(storage):
            existing = optuna.load_study(study_name=config.name, storage=storage)
            check_protocol(existing, protocol)
        study = optuna.create_study(storage=storage, study_name=config.name, sampler=sampler,
                                    pruner=pruner, directions=directions, load_if_exists=True)
    config.output.mkdir(parents=True, exist_ok=True)
    return study


def _study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def study_evaluator(
    config: StudyConfig, loaded: LoadedModel | None, evaluator: Evaluator | None, progress: bool
) -> Evaluator:
    """The evaluator given (checked against the config), or one built on ``loaded`` (the
    config's model, loaded here, when None)."""
    if evaluator is not None:
        if evaluator.config != config.evaluator:
            raise ValueError(f"the evaluator given is configured as {evaluator.config}, but "
                             f"study {config.name!r} asks for {config.evaluator}")
        return evaluator
    if loaded is None:
        from allocsearch.models import load_model

        loaded = load_model(config.model, device=config.device, dtype=config.dtype)
    return Evaluator.build(loaded, config.evaluator, progress=progress)


def run_study(
    config: StudyConfig,
    *,
    loaded: LoadedModel | None = None,
    evaluator: Evaluator | None = None,
    progress: bool = True,
    verify: bool = True,
) -> StudyRun:
    """Run (or resume, or join as one more worker) the study of ``config`` until it holds
    ``n_trials`` finished trials, or they have read ``max_tokens`` search tokens; both are
    study-wide totals, whatever the number of workers.

    An explicit ask/tell loop: under the study lock a trial is claimed (asked: with short-listing
    on, the sampler may take its values from the predictor's short list); it is evaluated
    into a :class:`TrialRecord` and told. The model's dense weights are back in place when
    this returns or raises."""
    space = find_space(config.space)
    if "sparsity" in config.objectives and not space.recipe.get("target"):
        raise SpaceError(f"objectives {list(config.objectives)} need a space whose plan has a "
                         f"target parameter; {space.name!r} has none")
    # A bad sampler or storage, or a resume with another protocol, fails before the model loads.
    study = open_study(config, config.protocol(space))
    ev = study_evaluator(config, loaded, evaluator, progress)
    try:
        if ev.anchor_plan is None or ev.reference_target is not None:  # not a caller's own anchor
            ev.use_reference(config.target)  # a sequential-aware database: once per reference and target
        protocol = config.protocol(space, ev.identity.fingerprint)
        with StudyLock(config.storage_url, config.name) as lock:
            with lock.held():  # two workers starting at once: one sets up, the other joins
                check_protocol(study, protocol)  # the model itself, now that it is loaded
                if not store.initialised(study):
                    store.init_study(study, ev.identity, protocol, study_facts(config))
                    _enqueue_priors(study, config, space, ev, progress)
            run = StudyRun(study, config, space)
            _trial_loop(run, ev, lock, progress)
            if config.finalists.top:
                with lock.held():  # one worker measures them; the others read them back
                    run_finalists(study, ev, config, progress)
            if verify and len(config.objectives) == 1:
                with lock.held():  # one worker verifies; the others find its results stored
                    run.verified = verify_best(study, ev, config, progress=progress)
    finally:
        if evaluator is None:
            ev.close()
        else:
            ev.restore()
    return run


def _trial_loop(run: StudyRun, ev: Evaluator, lock: StudyLock, progress: bool) -> None:
    """Claim, evaluate and tell trials until the study is done or its budget spent."""
    config, study = run.config, run.study
    status = TrialProgress(config, study, StudyCount.of(study), progress)
    screener = attach_screener(study, config.predictor, run.space, ev, config.target, config.output,
                               config.seed) if config.predictor.enabled else None
    scorer = None
    if config.tasks.enabled and ("accuracy" in config.objectives or config.tasks.max_drop is not None):
        with lock.held():  # the first worker measures the dense accuracy; the others read it
            scorer = AccuracyScorer(study, ev, config.tasks)
    second = _second_objective(config, ev, scorer)
    start = time.perf_counter()
    failures = 0  # in a row, in this worker
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our one line per trial replaces Optuna's
    try:
        while True:
            with lock.held():
                claim = claim_trial(study, config.n_trials, config.max_tokens)  # asks: may screen
                if screener is not None and screener.rounds:
                    status.screening = (screener.rounds, screener.pool_size, prequential_spearman(study))
            status.counted(claim.count)
            if claim.trial is None:
                if claim.action != "wait":
                    break
                status.waiting(claim.count)
                time.sleep(min(5.0, config.heartbeat.interval))
                continue
            rec = run_trial(study, claim.trial, run.space, ev, config.target,
                            on_step=status.step, second=second,
                            on_complete=scorer.record if scorer is not None else None)
            run.new_trials += 1
            status.finished(rec)
            failures = failures + 1 if rec.state == "failed" else 0
            if failures >= MAX_FAILURES:
                raise StudyError(f"study {config.name!r}: {failures} trials in a row failed, the "
                                 f"last with {rec.reason}; stopping")
    finally:
        optuna.logging.set_verbosity(verbosity)
        status.close()
    log.info("study %s: %d new trials in this worker (%d search tokens in the study) in %.1fs",
             config.name, run.new_trials, status.tokens, time.perf_counter() - start)


def study_facts(config: StudyConfig) -> dict[str, Any]:
    """What a new study's predictor records say of where they came from."""
    return {"sampler": config.sampler, "model_source": config.model, "profile": vars(config.data)}


def tokens_read(study: optuna.Study) -> int:
    """Search-split tokens the fitness of the study's finished trials read."""
    return StudyCount.of(study).tokens


def warm_start_plan(ws: WarmStart, ev: Evaluator, target: float,
                    curves: Mapping[str, curve_start.CurveRound] | None = None) -> Plan:
    """The plan of one warm start: a saved plan (checked against the model), a prior's, or
    one allocated from the study's block ``curves`` (by the label of their last round:
    :func:`allocsearch.search.curve_start.all_study_curves`)."""
    from allocsearch.allocation import get_allocator

    if ws.plan is not None:
        plan = Plan.load(ws.plan)
        plan.check_model(ev.identity)
        return plan
    if ws.method == curve_start.METHOD:
        if curves is None:
            raise ValueError("a curves warm start needs the study's block curves (warm_start only)")
        return curve_start.curves_warm_plan(ws.params, curves, ev, target)
    return get_allocator(ws.method, **ws.params).allocate(ev.profile, target)


def _enqueue_priors(study: optuna.Study, config: StudyConfig, space: SearchSpace, ev: Evaluator,
                    progress: bool = False) -> None:
    """Enqueue each warm start the space can express, labelled with the prior; the block
    curves are measured first when a warm start allocates from them."""
    uses = [ws.params for ws in config.warm_start if ws.method == curve_start.METHOD]
    curves = curve_start.all_study_curves(study, ev, config.target, uses, progress) if uses else None
    for ws in config.warm_start:
        prior = warm_start_plan(ws, ev, config.target, curves)
        params = space.params_for_prior(ws.method, ws.params, prior)
        if params is None:
            log.info("warm start %s cannot be expressed in space %s; skipped", ws.label, space.name)
            continue
        store.enqueue(study, params, prior=ws.label)


def verify_best(
    study: optuna.Study, ev: Evaluator, config: StudyConfig, *, progress: bool = True
) -> dict[int, Verification]:
    """Exact verification of the ``verify.top`` best trials, the best searched (not warm
    started) trial, and the best trial of each prior family (uniform, owl, ...: the best
    prior is then the lowest *verified* one, not the one the search fitness preferred), on
    every calibration draw of ``verify``; a verification stored with the same key (plan and
    every setting that decides its numbers) is read back, not redone."""
    done = store.ranked(study)
    chosen = done[: config.verify.top]
    finalist = store.finalist_choice(study, done)
    if finalist is not None and finalist not in chosen:  # the study's best plan, by its finalists
        chosen.append(finalist)
    # The best searched trial too, when priors fill the top: the report's verdict needs it.
    searched = next((t for t in done if t.prior is None), None)
    if searched is not None and searched not in chosen:
        chosen.append(searched)
    families: dict[str, store.StoredTrial] = {}
    for t in done:
        if t.prior is not None:
            families.setdefault(t.prior.split(" ")[0], t)
    chosen += [t for t in families.values() if t not in chosen]
    vc = config.verify_config()
    out: dict[int, Verification] = {}
    for t in chosen:
        plan = store.trial_plan(study, t)
        stored = store.verification(study, t.number, verification_key(plan, vc))
        if stored is not None:
            out[t.number] = stored.result
            continue
        result = verify(ev, plan, vc)
        assert t.value is not None
        store.save_verification(study, store.VerifiedTrial(t.number, t.value, t.prior, result,
                                                            vc.settings()))
        out[t.number] = result
        if progress:
            spread = f" (spread {result.ppl_spread:.3f} over {len(result.draws)} draws)" \
                if len(result.draws) > 1 else ""
            tqdm.write(f"verified trial {t.number} with {vc.pruner}: evaluation perplexity "
                       f"{result.ppl:.3f}{spread}" + (f" [{t.prior}]" if t.prior else ""))
    return out
