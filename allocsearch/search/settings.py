"""The typed sections of a study config (warm starts, verification, latency, anchored
rounds, predictor short-listing) and the config error; :mod:`allocsearch.search.config`
assembles them into a :class:`~allocsearch.search.config.StudyConfig`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from allocsearch.engine import check_inputs
from allocsearch.evaluate import Latency, LatencyConfig
from allocsearch.predictor.base import regressor_names
from allocsearch.predictor.damage import DamageCurves
from allocsearch.predictor.model import Predictor

#: What the latency objective minimises: ms per decoded token, or ms per prefill window.
LATENCY_METRICS = ("decode", "prefill")


class StudyConfigError(ValueError):
    """A study config that cannot be used, naming the file and the key."""


@dataclass(frozen=True)
class WarmStart:
    """One prior, a grid of one prior's parameters, or a saved plan (``{plan: path}``, for
    example a previous study's best), enqueued before sampling."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)
    plan: str | None = None

    @staticmethod
    def expand(entry: Any, where: str) -> list[WarmStart]:
        if isinstance(entry, dict) and set(entry) == {"plan"}:
            return [WarmStart("plan", {}, str(entry["plan"]))]
        if not isinstance(entry, dict) or "method" not in entry:
            raise StudyConfigError(f"{where}: each warm_start entry needs a method (or a plan)")
        unknown = sorted(set(entry) - {"method", "params", "grid"})
        if unknown:
            raise StudyConfigError(f"{where}: unknown warm_start key(s) {unknown}")
        base = dict(entry.get("params") or {})
        grid = dict(entry.get("grid") or {})
        if not grid:
            return [WarmStart(str(entry["method"]), base)]
        keys = sorted(grid)
        return [WarmStart(str(entry["method"]), base | dict(zip(keys, combo, strict=True)))
                for combo in itertools.product(*(list(grid[k]) for k in keys))]

    @property
    def label(self) -> str:
        if self.plan is not None:
            return f"plan {Path(self.plan).name}"
        args = " ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.method} {args}".strip()


@dataclass(frozen=True)
class LatencySettings:
    """The latency objective: ``metric`` (decode ms/token or prefill ms/window), measured on
    each plan's physical shape (cached per shape) with ``config``."""

    metric: str = "decode"
    config: LatencyConfig = field(default_factory=lambda: LatencyConfig(decode=32, repeats=3))

    @staticmethod
    def parse(raw: Any, where: str) -> LatencySettings:
        if raw is None:
            return LatencySettings()
        if not isinstance(raw, dict):
            raise StudyConfigError(f"{where}: latency must be a mapping")
        raw = dict(raw)
        metric = str(raw.pop("metric", "decode"))
        if metric not in LATENCY_METRICS:
            raise StudyConfigError(f"{where}: latency.metric must be one of {LATENCY_METRICS}")
        known = {"prefill", "prompt", "decode", "repeats", "threads"}
        if set(raw) - known:
            raise StudyConfigError(f"{where}: unknown latency key(s) {sorted(set(raw) - known)}")
        try:
            return LatencySettings(metric, LatencyConfig(**{"decode": 32, "repeats": 3, **raw}))
        except (TypeError, ValueError) as exc:
            raise StudyConfigError(f"{where}: latency: {exc}") from exc

    def value(self, latency: Latency) -> float:
        return latency.decode_ms_per_token if self.metric == "decode" else latency.prefill_ms


@dataclass(frozen=True)
class VerifySettings:
    """Exact verification of the ``top`` best trials and the best prior: a sequential prune
    with ``pruner`` on ``nsamples`` x ``seqlen`` calibration windows, once per seed of
    ``calibration_seeds`` (the profile's seed when empty), then ``eval_windows`` evaluation
    windows, with ``threads`` CPU threads (None: torch's setting; recorded either way)."""

    pruner: str = "wanda"
    top: int = 3
    nsamples: int = 16
    seqlen: int = 256
    eval_windows: int | None = 40
    inputs: str = "pruned"  # or "dense": one-shot verification (see VerifyConfig)
    calibration_seeds: tuple[int, ...] = ()
    threads: int | None = None
    #: Windows per forward in the prune and the evaluation. The calibration batch changes the
    #: order of the statistics' sums, and so masks at high sparsity: 1, as ``allocsearch
    #: prune`` and ``eval`` default to, makes a study's numbers the CLI's.
    batch_size: int = 1
    #: More texts each verified prune is scored on (all of their evaluation part): the claim
    #: checked on another domain, paired draw by draw in the report.
    also: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_inputs(self.inputs, "verify.inputs")
        object.__setattr__(self, "calibration_seeds", tuple(int(s) for s in self.calibration_seeds))
        object.__setattr__(self, "also", tuple(str(a) for a in self.also))
        if self.top < 0 or self.nsamples < 1 or self.seqlen < 2 or self.batch_size < 1:
            raise ValueError("verify needs top >= 0, nsamples >= 1, seqlen >= 2 and batch_size >= 1")


@dataclass(frozen=True)
class AnchorSettings:
    """Sequential-aware search in ``rounds`` rounds (0: off, one study on one-shot masks).

    Round r scores masks with the input norms a sequential Wanda prune sees at anchor r
    (:mod:`allocsearch.evaluate.anchor`) and runs ``n_trials`` trials warm started from that
    anchor; its ``check`` best trials are then measured exactly, and the best plan measured
    so far becomes anchor r + 1. ``start`` is the first anchor (a prior or ``{plan: path}``;
    the uniform plan when absent)."""

    rounds: int = 0
    start: WarmStart | None = None
    check: int = 3

    @staticmethod
    def parse(raw: Any, where: str) -> AnchorSettings:
        if raw is None:
            return AnchorSettings()
        if not isinstance(raw, dict) or set(raw) - {"rounds", "start", "check"}:
            raise StudyConfigError(
                f"{where}: anchor must be {{rounds: N, start: <warm start>, check: K}}")
        rounds = int(raw.get("rounds", 0))
        if rounds < 0:
            raise StudyConfigError(f"{where}: anchor.rounds must be >= 0, got {rounds}")
        check = int(raw.get("check", 3))
        if check < 1:
            raise StudyConfigError(f"{where}: anchor.check must be >= 1, got {check}")
        start = None
        if raw.get("start") is not None:
            starts = WarmStart.expand(raw["start"], f"{where}: anchor.start")
            if len(starts) != 1:
                raise StudyConfigError(f"{where}: anchor.start must be one plan, not a grid")
            start = starts[0]
        return AnchorSettings(rounds, start, check)



@dataclass(frozen=True)
class FinalistSettings:
    """The study's choice made by the pruner users apply: the ``top`` best distinct plans by
    search fitness (0: off, the best trial is the choice) are pruned sequentially with
    ``verify.pruner`` on ``verify``'s calibration windows (once per seed of
    ``calibration_seeds``; the study's data seed when empty) and measured on the search windows
    at the full fidelity; the lowest mean is the study's best plan. A surrogate fitness (a
    level database, cached ranks) misranks close plans; this reads the search split only."""

    top: int = 0
    calibration_seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "calibration_seeds", tuple(int(s) for s in self.calibration_seeds))
        if self.top < 0:
            raise ValueError(f"finalists.top must be >= 0, got {self.top}")


@dataclass(frozen=True)
class PredictorSettings:
    """Short-listing: a share of the searched trials comes from the predictor's short list,
    the rest from the configured sampler (which learns from every trial, screened or not).

    Each **round** trains the predictor on the study's completed trials (every
    ``retrain_every`` rounds; with ``file``, on the file's records plus the study's), screens a
    ``pool`` of candidates (``mutations`` of them level-switch mutations of the study's best
    plans, the rest a surrogate evolution minimising the optimistic bound mean - ``kappa`` *
    std) and queues the best ``k``. ``share`` of the searched (not warm-start) trials take the
    next queued candidate. Without ``file``, rounds start once ``warmup`` trials completed;
    with one (a predictor JSON from ``allocsearch predictor train``), at the first searched
    trial, and ``model`` is the file's. ``damage`` (a JSON from ``allocsearch predictor
    damage``) adds the measured damage to every trained predictor's mean (in place of a file's
    own). ``probe: N`` measures the ``N`` best candidates of each round by the bound on search
    window ``probe_window`` and queues the ``k`` best by prediction and probe stacked
    (:mod:`allocsearch.search.probing`); its tokens count in the study's budget."""

    model: str = "none"
    file: str | None = None
    share: float = 0.5
    pool: int = 2000
    k: int = 4
    warmup: int = 16
    retrain_every: int = 1
    members: int = 5
    kappa: float = 1.0
    mutations: float = 0.5
    #: Train on the fitness at this many search tokens (a fidelity every trial reads: the
    #: first, in a study whose pruner stops most trials there); None: the full fidelity.
    tokens: int | None = None
    damage: str | None = None
    #: Candidates measured on one search window per round (0: none; else at least ``k``).
    probe: int = 0
    #: The window they are measured on (0-based, ``seqlen`` tokens; 0: the first every
    #: trial reads).
    probe_window: int = 0
    #: ``file`` as loaded by the validation below (read once; not part of the settings' value).
    pretrained: Predictor | None = field(default=None, init=False, compare=False, repr=False)
    #: ``damage`` as loaded by the validation below.
    curves: DamageCurves | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        known = ["none", *regressor_names()] if self.model != "none" else ["none"]
        if self.model not in known:
            raise ValueError(f"predictor.model must be one of {known}, got {self.model!r}")
        if self.pool < 1 or not 1 <= self.k <= self.pool or self.warmup < 4 or self.retrain_every < 1 \
                or self.members < 1:
            raise ValueError("predictor needs pool >= k >= 1, warmup >= 4 (a predictor needs data), "
                             "retrain_every >= 1 and members >= 1")
        if self.kappa < 0 or not 0.0 <= self.mutations <= 1.0 or not 0.0 < self.share <= 1.0:
            raise ValueError("predictor needs kappa >= 0, 0 <= mutations <= 1 and 0 < share <= 1")
        if self.probe < 0 or 0 < self.probe < self.k or self.probe_window < 0:
            raise ValueError(f"predictor.probe must be 0 (off) or at least k={self.k}, and "
                             f"probe_window >= 0; got probe={self.probe}, probe_window={self.probe_window}")
        if self.probe and not self.enabled:
            raise ValueError("predictor.probe orders a short-list: give predictor.model or "
                             "predictor.file too")
        if self.tokens is not None and self.tokens < 1:
            raise ValueError(f"predictor.tokens must be a positive token count, got {self.tokens}")
        if self.file is not None:
            if not Path(self.file).is_file():
                raise ValueError(f"predictor.file: no such file {self.file!r} (train one with "
                                 f"'allocsearch predictor train ... --out P.json')")
            # A foreign or broken file fails here, before any study exists.
            object.__setattr__(self, "pretrained", Predictor.load(self.file))
        if self.damage is not None:
            if not self.enabled:
                raise ValueError("predictor.damage joins a short-list: give predictor.model or "
                                 "predictor.file too")
            if not Path(self.damage).is_file():
                raise ValueError(f"predictor.damage: no such file {self.damage!r} (measure one with "
                                 f"'allocsearch predictor damage CONFIG --out D.json')")
            curves = DamageCurves.load(self.damage)
            object.__setattr__(self, "curves", curves)
            own = self.pretrained.table.identity.fingerprint if self.pretrained is not None else None
            if own is not None and own != curves.fingerprint:
                raise ValueError("predictor.damage was measured on another model than predictor.file's")

    @property
    def enabled(self) -> bool:
        return self.model != "none" or self.file is not None
