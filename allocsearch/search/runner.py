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
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from allocsearch.evaluate import Evaluator
from allocsearch.models.loading import LoadedModel
from allocsearch.plan import Plan
from allocsearch.search.config import StudyConfig, WarmStart
from allocsearch.search.samplers import make_pruner, make_sampler
from allocsearch.search.space import SearchSpace, SpaceError, find_space

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


def open_study(config: StudyConfig) -> optuna.Study:
    """Create the study, or load it when it exists (re-running a config resumes it)."""
    config.output.mkdir(parents=True, exist_ok=True)
    directions: list[Literal["minimize", "maximize"]] = ["minimize"]
    if "sparsity" in config.objectives:
        directions.append("maximize")
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
    they have read ``max_tokens`` search tokens."""
    space = find_space(config.space)
    ev = study_evaluator(config, loaded, evaluator, progress)
    ident = ev.identity
    multi = len(config.objectives) > 1
    if multi and not space.recipe.get("target"):
        raise SpaceError(f"objectives {list(config.objectives)} need a space whose plan has a "
                         f"target parameter; {space.name!r} has none")
    study = open_study(config)
    if "model" not in study.user_attrs:
        study.set_user_attr("model", ident.to_dict())
        study.set_user_attr("space", space.name)
        study.set_user_attr("target", config.target)
        study.set_user_attr("objectives", list(config.objectives))
        _enqueue_priors(study, config, space, ev)
    run = StudyRun(study, config, space)
    done = sum(1 for t in study.get_trials(deepcopy=False) if t.state in FINISHED)
    spent = {"tokens": tokens_read(study)}
    remaining = max(config.n_trials - done, 0)
    if config.max_tokens is not None and spent["tokens"] >= config.max_tokens:
        remaining = 0
    names = list(ident.shapes)

    bar = tqdm(total=config.n_trials, initial=done, desc=f"study {config.name}", unit="trial",
               disable=not progress)
    best = {"text": _best_text(study)}  # refreshed once per finished trial (a storage query)

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        values = space.suggest(trial, ident.num_blocks)
        try:
            plan = space.build_plan(values, ev.profile, config.target)
        except SpaceError as exc:
            trial.set_user_attr("infeasible", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        trial.set_user_attr("sparsities", [round(plan.modules[n].sparsity, 7) for n in names])
        nm = {n: str(c.pattern) for n, c in plan.modules.items() if c.pattern.is_nm}
        if nm:
            trial.set_user_attr("patterns", nm)
        trial.set_user_attr("target", plan.target)
        value = float("nan")
        for step in ev.iter_fitness(plan):
            value = step.value
            trial.set_user_attr("tokens", step.tokens)
            bar.set_postfix_str(f"best {best['text']} | trial {trial.number} at {step.tokens} tok")
            if not multi:
                trial.report(value, step.tokens)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"{value:.4g} at {step.tokens} tokens")
        # Rounded to the budget's tolerance: plans projected to one target differ in the last
        # float bits, which would otherwise decide Pareto dominance between them.
        return (value, round(plan.budget(), 6)) if multi else value

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        bar.update(1)
        spent["tokens"] += int(trial.user_attrs.get("tokens", 0))
        if config.max_tokens is not None and spent["tokens"] >= config.max_tokens:
            study.stop()  # the evaluation budget is spent; a resumed run starts no trial
        best["text"] = _best_text(study)
        if config.max_tokens is not None:  # the bar counts trials; say how much budget is left
            best["text"] += f" | {spent['tokens']}/{config.max_tokens} tok"
        bar.set_postfix_str(f"best {best['text']}")
        prior = trial.user_attrs.get("prior")
        what = f" [{prior}]" if prior else ""
        if trial.state == TrialState.COMPLETE:
            vals = ", ".join(f"{v:.4g}" for v in trial.values)
            msg = f"trial {trial.number} {config.evaluator.fitness} {vals}{what}"
        else:
            step = trial.last_step
            msg = f"trial {trial.number} {trial.state.name.lower()}"
            msg += f" at {step} tokens" if step else ""
            msg += f" ({trial.user_attrs['infeasible']})" if "infeasible" in trial.user_attrs else ""
            msg += what
        secs = (trial.datetime_complete - trial.datetime_start).total_seconds() \
            if trial.datetime_complete and trial.datetime_start else 0.0
        bar.write(f"{msg}  ({secs:.1f}s; best {best['text']})") if progress else log.info(msg)

    start = time.perf_counter()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our one line per trial replaces Optuna's
    try:
        if remaining:
            study.optimize(objective, n_trials=remaining, callbacks=[callback], gc_after_trial=False)
    finally:
        optuna.logging.set_verbosity(verbosity)
        bar.close()
    run.new_trials = sum(1 for t in study.get_trials(deepcopy=False) if t.state in FINISHED) - done
    log.info("study %s: %d new trials (%d search tokens in all) in %.1fs", config.name,
             run.new_trials, spent["tokens"], time.perf_counter() - start)
    if verify and not multi:
        run.verified = verify_best(study, ev, config, progress=progress)
    if evaluator is None:
        ev.close()
    return run


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


def trial_plan(study: optuna.Study, trial: FrozenTrial) -> Plan:
    """The plan a finished trial evaluated, rebuilt from its user attributes."""
    model = study.user_attrs["model"]
    sparsities = trial.user_attrs.get("sparsities")
    if sparsities is None:
        raise ValueError(f"trial {trial.number} has no plan (it was pruned before one was made)")
    patterns = trial.user_attrs.get("patterns", {})
    target = float(trial.user_attrs.get("target", study.user_attrs["target"]))
    modules = {
        n: {"sparsity": s, "pattern": patterns.get(n, "unstructured")}
        for n, s in zip(model["shapes"], sparsities, strict=True)
    }
    prov = {"method": "search", "study": study.study_name, "trial": trial.number,
            "space": study.user_attrs.get("space"), "params": trial.params,
            "fitness": trial.values[0] if trial.values else None}
    data = {"schema_version": 1, "model": model, "target": target, "modules": modules,
            "provenance": prov}
    return Plan.from_dict(data, where=f"trial {trial.number}")


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

