"""Run a study: warm starts from the priors, cached-mask fitness with fidelities, Optuna
pruning, a progress bar and a one-line log per trial, then exact verification of the best.

Each trial stores its plan's per-module sparsities (and N:M patterns) and the search tokens its
fitness read (``tokens``, what ``max_tokens`` budgets) as user attributes; the
model identity is stored once on the study, so any trial's plan can be rebuilt
(:func:`trial_plan`). Verifications are study user attributes ``verified_<number>``, since
a finished trial cannot be changed.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from allocsearch.evaluate import Evaluator
from allocsearch.models.loading import LoadedModel
from allocsearch.plan import Plan
from allocsearch.search.config import StudyConfig, WarmStart
from allocsearch.search.samplers import make_pruner, make_sampler
from allocsearch.search.screening import Screener, prequential_spearman
from allocsearch.search.space import SearchSpace, SpaceError, find_space
from allocsearch.search.trials import TrialRecord, run_and_tell, trial_plan

log = logging.getLogger(__name__)
#: Trials that count towards ``n_trials`` (a failed or interrupted trial is run again).
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class StudyRun:
    study: optuna.Study
    config: StudyConfig
    space: SearchSpace
    new_trials: int = 0
    verified: dict[int, dict[str, Any]] = field(default_factory=dict)


def _second_objective(config: StudyConfig, ev: Evaluator) -> Callable[[Plan], float] | None:
    """The second objective of a two-objective study, as a function of the plan."""
    if "latency" in config.objectives:
        settings = config.latency
        return lambda plan: settings.value(ev.latency(plan, settings.config))
    if "sparsity" in config.objectives:
        # Rounded to the budget's tolerance: plans projected to one target differ in the last
        # float bits, which would otherwise decide Pareto dominance between them.
        return lambda plan: round(plan.budget(), 6)
    return None


def open_study(config: StudyConfig) -> optuna.Study:
    """Create the study, or load it when it exists (re-running a config resumes it)."""
    config.output.mkdir(parents=True, exist_ok=True)
    directions: list[Literal["minimize", "maximize"]] = ["minimize"]
    if "sparsity" in config.objectives:
        directions.append("maximize")
    if "latency" in config.objectives:
        directions.append("minimize")
    params = dict(config.sampler_params)
    sampler = make_sampler(config.sampler, config.seed, params)
    pruner_name = config.pruner
    if pruner_name == "none" and config.sampler == "evopress":
        pruner_name = "evopress"  # EvoPress's multi-step selection is its pruner
    pruner = make_pruner(pruner_name, dict(config.pruner_params))
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A trial whose process died stops beating; the next run marks it failed.
        storage = optuna.storages.RDBStorage(config.storage_url, heartbeat_interval=60,
                                             grace_period=120)
        study = optuna.create_study(
            storage=storage, study_name=config.name, sampler=sampler, pruner=pruner,
            directions=directions, load_if_exists=True,
        )
        optuna.storages.fail_stale_trials(study)
    return study


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
    """Run (or resume) the study of ``config`` up to ``n_trials`` finished trials, or until
    they have read ``max_tokens`` search tokens.

    An explicit ask/tell loop: before each trial, the predictor's short-lister (when the config
    has one) may enqueue screened proposals; then one trial is asked, evaluated into a
    :class:`TrialRecord` and told."""
    space = find_space(config.space)
    ev = study_evaluator(config, loaded, evaluator, progress)
    multi = len(config.objectives) > 1
    if "sparsity" in config.objectives and not space.recipe.get("target"):
        raise SpaceError(f"objectives {list(config.objectives)} need a space whose plan has a "
                         f"target parameter; {space.name!r} has none")
    study = open_study(config)
    if "model" not in study.user_attrs:
        for key, value in study_attrs(config, space, ev).items():
            study.set_user_attr(key, value)
        _enqueue_priors(study, config, space, ev)
    run = StudyRun(study, config, space)
    done = sum(1 for t in study.get_trials(deepcopy=False) if t.state in FINISHED)
    status = _Progress(config, study, done, progress)
    screener = Screener(config.predictor, space, ev.profile, config.target, config.output, config.seed,
                        prepare=ev.prepare, recon=ev.backend.recon_errors()) \
        if config.predictor.enabled else None
    start = time.perf_counter()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our one line per trial replaces Optuna's
    try:
        while run.new_trials < config.n_trials - done and not status.spent():
            if screener is not None and screener.ready(study):
                screener.round(study)
                status.screening = (screener.rounds, screener.pool_size, prequential_spearman(study))
            rec = run_and_tell(study, space, ev, config.target, multi=multi, on_step=status.step,
                               second=_second_objective(config, ev))
            run.new_trials += 1
            status.finished(rec)
    finally:
        optuna.logging.set_verbosity(verbosity)
        status.close()
    log.info("study %s: %d new trials (%d search tokens in all) in %.1fs", config.name,
             run.new_trials, status.tokens, time.perf_counter() - start)
    if verify and not multi:
        run.verified = verify_best(study, ev, config, progress=progress)
    if evaluator is None:
        ev.close()
    return run


def study_attrs(config: StudyConfig, space: SearchSpace, ev: Evaluator) -> dict[str, Any]:
    """What a new study stores once: the model identity (to rebuild trial plans) and what its
    fitness means (so its trials can train a predictor)."""
    return {"model": ev.identity.to_dict(), "space": space.name, "target": config.target,
            "objectives": list(config.objectives), "fitness": config.evaluator.fitness,
            "fidelities": list(config.evaluator.fidelities), "sampler": config.sampler,
            "model_source": config.model, "profile": vars(config.data)}


class _Progress:
    """The progress bar (best so far, the running trial's fidelity, budget and screening
    state) and one line per finished trial."""

    def __init__(self, config: StudyConfig, study: optuna.Study, done: int, enabled: bool) -> None:
        self.config = config
        self.study = study
        self.enabled = enabled
        self.tokens = tokens_read(study)
        self.screening: tuple[int, int, float | None] | None = None
        self.bar = tqdm(total=config.n_trials, initial=done, desc=f"study {config.name}", unit="trial",
                        disable=not enabled)
        self.best = _best_text(study)  # refreshed once per finished trial (a storage query)

    def spent(self) -> bool:
        return self.config.max_tokens is not None and self.tokens >= self.config.max_tokens

    def _status(self) -> str:
        text = f"best {self.best}"
        if self.config.max_tokens is not None:  # the bar counts trials; say how much budget is left
            text += f" | {self.tokens}/{self.config.max_tokens} tok"
        if self.screening is not None:
            rounds, pool, rho = self.screening
            text += f" | round {rounds}, pool {pool}, rho " + ("-" if rho is None else f"{rho:.2f}")
        return text

    def step(self, rec: TrialRecord) -> None:
        self.bar.set_postfix_str(f"{self._status()} | trial {rec.number} at {rec.tokens} tok")

    def finished(self, rec: TrialRecord) -> None:
        self.bar.update(1)
        self.tokens += rec.tokens
        self.best = _best_text(self.study)
        self.bar.set_postfix_str(self._status())
        what = f" [{rec.provenance['prior']}]" if "prior" in rec.provenance else ""
        if "screened" in rec.provenance:
            sc = rec.provenance["screened"]
            what += f" [screened r{sc['round']}: predicted {math.exp(sc['mean']):.4g}]"
        if rec.state == "complete":
            vals = f"{rec.value:.4g}" + (f", {rec.plan.budget():.6f}"  # type: ignore[union-attr]
                                         if len(self.config.objectives) > 1 else "")
            msg = f"trial {rec.number} {self.config.evaluator.fitness} {vals}{what}"
        else:
            msg = f"trial {rec.number} {rec.state}"
            msg += f" at {rec.tokens} tokens" if rec.steps else ""
            msg += f" ({rec.reason})" if rec.state == "infeasible" else ""
            msg += what
        if self.enabled:
            self.bar.write(f"{msg}  ({rec.seconds:.1f}s; {self._status()})")
        else:
            log.info(msg)

    def close(self) -> None:
        self.bar.close()


def tokens_read(study: optuna.Study) -> int:
    """Search-split tokens the fitness of the study's finished trials read."""
    return sum(int(t.user_attrs.get("tokens", 0))
               for t in study.get_trials(deepcopy=False, states=FINISHED))


def _best_text(study: optuna.Study) -> str:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not done:
        return "-"
    best = min(done, key=lambda t: t.values[0])
    return f"{best.values[0]:.4g} (#{best.number})"


def warm_start_plan(ws: WarmStart, ev: Evaluator, target: float) -> Plan:
    """The plan of one warm start: a saved plan (checked against the model) or a prior's."""
    from allocsearch.allocation import get_allocator

    if ws.plan is not None:
        plan = Plan.load(ws.plan)
        plan.check_model(ev.identity)
        return plan
    return get_allocator(ws.method, **ws.params).allocate(ev.profile, target)


def _enqueue_priors(study: optuna.Study, config: StudyConfig, space: SearchSpace, ev: Evaluator) -> None:
    """Enqueue each warm start the space can express, labelled with the prior."""
    for ws in config.warm_start:
        prior = warm_start_plan(ws, ev, config.target)
        params = space.params_for_prior(ws.method, ws.params, prior, ev.identity.num_blocks)
        if params is None:
            log.info("warm start %s cannot be expressed in space %s; skipped", ws.label, space.name)
            continue
        study.enqueue_trial(params, user_attrs={"prior": ws.label})


def verify_best(
    study: optuna.Study, ev: Evaluator, config: StudyConfig, *, progress: bool = True
) -> dict[int, dict[str, Any]]:
    """Exact verification of the ``verify.top`` best trials and of the best prior trial."""
    done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                  key=lambda t: t.values[0])
    chosen = done[: config.verify.top]
    priors = [t for t in done if "prior" in t.user_attrs]
    if priors and priors[0] not in chosen:
        chosen.append(priors[0])
    v = config.verify
    vc = config.verify_config()
    out: dict[int, dict[str, Any]] = {}
    for t in chosen:
        key = f"verified_{t.number}_{v.pruner}"
        if key in study.user_attrs:
            out[t.number] = study.user_attrs[key]
            continue
        result = ev.verify(trial_plan(study, t), vc).to_dict()
        result |= {"trial": t.number, "fitness": t.values[0], "prior": t.user_attrs.get("prior")}
        study.set_user_attr(key, result)
        out[t.number] = result
        if progress:
            tqdm.write(f"verified trial {t.number} with {v.pruner}: evaluation perplexity "
                       f"{result['ppl']:.3f}" + (f" [{result['prior']}]" if result["prior"] else ""))
    return out

