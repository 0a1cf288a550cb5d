"""Study launch configs: YAML in ``studies/``, parsed once into typed, validated objects.

    schema_version: 1
    name: smollm2-70
    model: smollm2-135m
    target: 0.7
    space: blocks                 # a name in spaces/ or a path
    evaluator: {fitness: ppl, fidelities: [2048, 4096], seqlen: 512}
    sampler: {name: tpe, params: {multivariate: true}}
    pruner: {name: median}
    n_trials: 200
    max_tokens: 2000000           # optional: also stop once fitness has read this many tokens
    warm_start: [{method: uniform}, {method: ramp, grid: {slope: [0.1, 0.2, 0.3, 0.4]}}]
    verify: {pruner: wanda, top: 3, nsamples: 16, seqlen: 256, eval_windows: 40,
             calibration_seeds: [0, 1, 2], threads: 1}   # draws: mean and spread per plan
    predictor: {model: typed_target_modules_residual, share: 0.5}   # optional (or {file: P.json})
    storage: postgresql://user@host/db   # optional: many workers on one study (default SQLite)
    heartbeat: {interval: 60, grace: 120, retries: 1}   # a dead worker's trial is run again
    tasks: {names: [allocsearch_continuation], limit: 100, max_drop: 0.05}   # task accuracy

Outputs (storage, plans, plots, report) go to ``<config dir>/<name>/`` unless ``output`` says
otherwise. Command-line overrides are ``key=value`` pairs with dotted keys
(``sampler.name=cmaes``), applied before validation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from allocsearch.data import DataConfig
from allocsearch.evaluate import EvaluatorConfig, VerifyConfig
from allocsearch.plan import Plan, PlanError
from allocsearch.search import curve_start
from allocsearch.search.accuracy import CONSTRAINED_SAMPLERS, TaskSettings
from allocsearch.search.settings import (
    AnchorSettings,
    FinalistSettings,
    LatencySettings,
    PredictorSettings,
    StudyConfigError,
    VerifySettings,
    WarmStart,
)
from allocsearch.search.space import SearchSpace, shipped_dir
from allocsearch.search.storage import HeartbeatSettings
from allocsearch.search.store import StudyProtocol

STUDY_SCHEMA_VERSION = 1
OBJECTIVES = ("fitness", "sparsity", "latency", "accuracy")
_KEYS = {"schema_version", "name", "model", "device", "dtype", "data", "target", "space",
         "evaluator", "sampler", "pruner", "n_trials", "max_tokens", "storage", "seed",
         "warm_start", "verify", "objectives", "output", "anchor", "predictor",
         "latency", "heartbeat", "tasks", "finalists"}


@dataclass(frozen=True)
class StudyConfig:
    name: str
    model: str = "smollm2-135m"
    device: str = "auto"
    dtype: str = "float32"
    data: DataConfig = field(default_factory=DataConfig)  # the profile's calibration data
    target: float = 0.7
    space: str = "blocks"
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    sampler: str = "tpe"
    sampler_params: dict[str, Any] = field(default_factory=dict)
    pruner: str = "none"
    pruner_params: dict[str, Any] = field(default_factory=dict)
    n_trials: int = 100
    #: Evaluation budget in search-split tokens (each trial counts the tokens its fitness read,
    #: so a trial stopped at a low fidelity costs less); None: ``n_trials`` alone decides.
    max_tokens: int | None = None
    storage: str | None = None
    seed: int = 0
    warm_start: tuple[WarmStart, ...] = ()
    verify: VerifySettings = field(default_factory=VerifySettings)
    objectives: tuple[str, ...] = ("fitness",)
    output: Path = Path("study")
    source: str = ""
    anchor: AnchorSettings = field(default_factory=AnchorSettings)
    predictor: PredictorSettings = field(default_factory=PredictorSettings)
    latency: LatencySettings = field(default_factory=lambda: LatencySettings())
    #: Worker liveness: a trial silent for ``heartbeat.grace`` seconds is failed and retried.
    heartbeat: HeartbeatSettings = field(default_factory=HeartbeatSettings)
    #: Task accuracy: verified beside perplexity, an objective or a constraint (see accuracy.py).
    tasks: TaskSettings = field(default_factory=TaskSettings)
    #: The best plan chosen among the best few by a real prune on the search split.
    finalists: FinalistSettings = field(default_factory=FinalistSettings)

    def verify_config(self, pruner: str | None = None) -> VerifyConfig:
        """The exact verification of this study (``pruner`` overrides ``verify.pruner``)."""
        v = self.verify
        calibration = DataConfig(self.data.source, v.nsamples, v.seqlen, self.data.seed)
        tasks = self.tasks.config("evaluation", self.evaluator.source) if self.tasks.enabled else None
        return VerifyConfig(pruner or v.pruner, calibration, nsamples=v.eval_windows,
                            batch_size=v.batch_size, inputs=v.inputs,
                            tasks=tasks,
                            calibration_seeds=v.calibration_seeds, threads=v.threads,
                            source=self.evaluator.source, also=v.also)

    def finalist_config(self) -> VerifyConfig:
        """The real prune and measurement of the finalists: verification's (pruner,
        calibration, threads) on the search windows of the top fidelity, no tasks or more texts."""
        e = self.evaluator
        return replace(self.verify_config(), part="search", seqlen=e.seqlen,
                       nsamples=max(e.fidelities) // e.seqlen, tasks=None, also=(),
                       calibration_seeds=self.finalists.calibration_seeds)

    def protocol(self, space: SearchSpace, fingerprint: str = "") -> StudyProtocol:
        """What makes this study's fitness values comparable (a resume must keep it)."""
        ev = self.evaluator.to_dict()
        for key in ("fitness", "fidelities", "profile", "batch_size"):  # own fields, or speed only
            ev.pop(key)
        tasks = None
        if "accuracy" in self.objectives or self.tasks.max_drop is not None:
            tasks = {"names": list(self.tasks.names), "limit": self.tasks.limit,
                     "metric": self.tasks.metric, "max_drop": self.tasks.max_drop}
        latency = ({"metric": self.latency.metric, **self.latency.config.to_dict()}
                   if "latency" in self.objectives else None)
        return StudyProtocol(self.model, self.target, space.name, space.digest(),
                             self.evaluator.fitness, self.evaluator.fidelities, ev,
                             vars(self.data), self.objectives, tasks, latency, fingerprint)

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.output / 'study.db').resolve()}"

    @classmethod
    def load(cls, path: str | Path, overrides: list[str] | None = None) -> StudyConfig:
        """A study config file, or a shipped one by name (``smollm2-70``), whose outputs then
        go to ``studies/<name>/`` under the working directory."""
        p = Path(path)
        if not p.is_file():
            shipped = shipped_dir("studies") / f"{p.name}.yaml"
            if p.suffix or not shipped.is_file():
                known = sorted(f.stem for f in shipped_dir("studies").glob("*.yaml"))
                raise StudyConfigError(f"no study config at {p} (shipped configs: {', '.join(known)})")
            overrides = [f"output={Path.cwd() / 'studies' / p.name}", *(overrides or [])]
            p = shipped
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise StudyConfigError(f"{p}: not valid YAML ({exc})") from exc
        if data is None:
            data = {}  # an empty file: every key takes its default
        if not isinstance(data, dict):
            raise StudyConfigError(f"{p}: a study config must be a YAML mapping, got {type(data).__name__}")
        data = apply_overrides(data, overrides or [])
        return cls.from_dict(data, p)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path) -> StudyConfig:
        where = str(path)
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise StudyConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
        if data.get("schema_version", STUDY_SCHEMA_VERSION) != STUDY_SCHEMA_VERSION:
            raise StudyConfigError(f"{where}: unsupported schema_version {data['schema_version']!r}")
        name = str(data.get("name") or path.stem)
        try:
            cal = DataConfig(**(data.get("data") or {}))
            ev_raw = dict(data.get("evaluator") or {})
            if "scores" in ev_raw:
                raise StudyConfigError(f"{where}: evaluator.scores is now evaluator.pruner "
                                       f"(with masks: ranks or database)")
            if "fidelities" in ev_raw:
                ev_raw["fidelities"] = tuple(ev_raw["fidelities"])
            ev_raw.setdefault("source", cal.source)
            evaluator = EvaluatorConfig(**ev_raw, profile=cal)
            verify = VerifySettings(**(data.get("verify") or {}))
            raw = data.get("predictor") or {}
            predictor = PredictorSettings(**({"model": raw} if isinstance(raw, str) else raw))
            heartbeat = HeartbeatSettings(**(data.get("heartbeat") or {}))
            tasks = TaskSettings.parse(data.get("tasks"))
            finalists = FinalistSettings(**(data.get("finalists") or {}))
        except TypeError as exc:  # "X.__init__() got an unexpected keyword argument 'k'"
            text = str(exc)
            for section, kind in (("data", "DataConfig"), ("evaluator", "EvaluatorConfig"),
                                  ("verify", "VerifySettings"), ("predictor", "PredictorSettings"),
                                  ("heartbeat", "HeartbeatSettings"), ("tasks", "TaskSettings"),
                                  ("finalists", "FinalistSettings")):
                if text.startswith(f"{kind}.__init__()"):
                    text = f"{section}: {text.split('() ', 1)[1]}"
            raise StudyConfigError(f"{where}: {text}") from exc
        except ValueError as exc:
            raise StudyConfigError(f"{where}: {exc}") from exc
        target = float(data.get("target", 0.7))
        if not 0.0 < target < 1.0:
            raise StudyConfigError(f"{where}: target must lie in (0, 1), got {target}")
        sampler = _named(data.get("sampler", "tpe"), "sampler", where)
        pruner = _named(data.get("pruner", "none"), "pruner", where)
        n_trials = int(data.get("n_trials", 100))
        if n_trials < 1:
            raise StudyConfigError(f"{where}: n_trials must be at least 1")
        max_tokens = data.get("max_tokens")
        if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
            raise StudyConfigError(f"{where}: max_tokens must be a positive integer or absent, "
                                   f"got {max_tokens!r}")
        objectives = tuple(data.get("objectives") or ("fitness",))
        if objectives[0] != "fitness" or any(o not in OBJECTIVES for o in objectives) \
                or len(set(objectives)) != len(objectives):
            raise StudyConfigError(f"{where}: objectives must be [fitness], [fitness, sparsity], "
                                   f"[fitness, latency] or [fitness, accuracy]")
        if len(objectives) > 2:
            raise StudyConfigError(f"{where}: at most two objectives")
        warm = tuple(w for e in (data.get("warm_start") or [])
                     for w in WarmStart.expand(e, f"{where}: warm_start"))
        output = Path(data["output"]) if data.get("output") else path.parent / name
        anchor = AnchorSettings.parse(data.get("anchor"), where)
        _check_plans([*warm, *([anchor.start] if anchor.start else [])], where)
        if anchor.start is not None and anchor.start.method == curve_start.METHOD:
            raise StudyConfigError(f"{where}: anchor.start cannot be a curves warm start (the curves "
                                   "are measured inside a study); use it in warm_start")
        if finalists.top and (len(objectives) > 1 or anchor.rounds):
            raise StudyConfigError(f"{where}: finalists need a single objective and no anchored "
                                   f"rounds (which measure their own short lists exactly)")
        if anchor.rounds and len(objectives) > 1:
            raise StudyConfigError(f"{where}: anchored rounds need a single objective")
        if predictor.enabled and len(objectives) > 1:
            raise StudyConfigError(f"{where}: predictor short-listing needs a single objective")
        if predictor.tokens is not None and (predictor.tokens not in evaluator.fidelities
                                             or predictor.tokens % evaluator.seqlen):
            raise StudyConfigError(f"{where}: predictor.tokens {predictor.tokens} is not one of "
                                   f"evaluator.fidelities {list(evaluator.fidelities)} (in whole "
                                   f"{evaluator.seqlen}-token windows)")
        windows = evaluator.windows_needed
        if predictor.probe and predictor.probe_window >= windows:
            raise StudyConfigError(f"{where}: predictor.probe_window {predictor.probe_window} is past the "
                                   f"evaluator's {windows} search windows (0..{windows - 1})")
        _check_tasks(tasks, objectives, sampler[0], anchor, predictor, where)
        if anchor.rounds and data.get("storage"):
            raise StudyConfigError(f"{where}: anchored rounds run in one process, one SQLite study "
                                   f"per round in the output folder; drop storage (or anchor)")
        if anchor.rounds and verify.inputs != "pruned":
            raise StudyConfigError(f"{where}: anchored rounds model a sequential prune; with "
                                   f"verify.inputs = dense the plain study's fitness is exact")
        return cls(
            name=name, model=str(data.get("model", "smollm2-135m")),
            device=str(data.get("device", "auto")), dtype=str(data.get("dtype", "float32")),
            data=cal, target=target, space=str(data.get("space", "blocks")), evaluator=evaluator,
            sampler=sampler[0], sampler_params=sampler[1], pruner=pruner[0],
            pruner_params=pruner[1], n_trials=n_trials, max_tokens=max_tokens, storage=data.get("storage"),
            seed=int(data.get("seed", 0)), warm_start=warm, verify=verify, objectives=objectives,
            output=output, source=where, anchor=anchor, predictor=predictor,
            latency=LatencySettings.parse(data.get("latency"), where), heartbeat=heartbeat,
            tasks=tasks, finalists=finalists,
        )


def _check_plans(starts: list[WarmStart], where: str) -> None:
    """Every saved plan a warm start names is read and validated before a model loads."""
    for ws in starts:
        if ws.method == curve_start.METHOD:
            try:
                curve_start.check_params(ws.params, f"{where}: warm start {ws.label!r}")
            except ValueError as exc:
                raise StudyConfigError(str(exc)) from None
        if ws.plan is not None:
            try:
                Plan.load(ws.plan)
            except PlanError as exc:
                raise StudyConfigError(f"{where}: warm start: {exc}") from None


def _check_tasks(tasks: TaskSettings, objectives: tuple[str, ...], sampler: str,
                 anchor: AnchorSettings, predictor: PredictorSettings, where: str) -> None:
    if "accuracy" in objectives and not tasks.enabled:
        raise StudyConfigError(f"{where}: the accuracy objective needs a tasks section "
                               f"(tasks: [allocsearch_continuation])")
    if tasks.max_drop is None:
        return
    if sampler not in CONSTRAINED_SAMPLERS:
        raise StudyConfigError(f"{where}: tasks.max_drop is a constraint; sampler {sampler!r} takes "
                               f"none (use one of {', '.join(CONSTRAINED_SAMPLERS)})")
    if anchor.rounds or predictor.enabled:
        raise StudyConfigError(f"{where}: tasks.max_drop does not combine with anchored rounds or "
                               f"predictor short-listing (they rank plans by fitness alone)")


def _named(value: Any, what: str, where: str) -> tuple[str, dict[str, Any]]:
    """``tpe`` or ``{name: tpe, params: {...}}``."""
    if isinstance(value, str):
        return value, {}
    if isinstance(value, dict) and "name" in value and set(value) <= {"name", "params"}:
        return str(value["name"]), dict(value.get("params") or {})
    raise StudyConfigError(f"{where}: {what} must be a name or {{name: ..., params: {{...}}}}")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``key=value`` with dotted keys into nested mappings; values parsed as YAML scalars."""
    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise StudyConfigError(f"override {item!r}: expected key=value")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            if isinstance(node.get(part), str):  # sampler: tpe  ->  {name: tpe}
                node[part] = {"name": node[part]}
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise StudyConfigError(f"override {item!r}: {part} is not a mapping")
        node[parts[-1]] = yaml.safe_load(raw)
    return out
