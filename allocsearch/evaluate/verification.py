"""Exact verification: the sequential prune users apply, then held-out perplexity, over one or
more calibration draws.

    config = VerifyConfig("sparsegpt", DataConfig("embedded", 16, 256), nsamples=40,
                          calibration_seeds=(0, 1, 2), threads=1)
    result = verify(ev, plan, config)       # or verify_plan(loaded, plan, config)
    result.ppl, result.ppl_spread            # mean over the draws, max - min
    [d.ppl for d in result.draws]            # per draw, paired across plans by seed

``also=("/path/other.txt",)`` scores each draw's pruned model on more sources too (all of
their evaluation part): the same prune, measured on text of another domain
(``result.also_ppl``, ``d.also``).

At 60-70% sparsity the masks of a sequential prune depend on the calibration windows, and
even on the order of floating-point sums (CPU thread count): the same plan measured on another
draw or with another thread count moves by several percent. A verification therefore names
its draws and its threads, and every number that decides it enters its :func:`key`; two
verifications with one key give the same perplexity to the last bit.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch

from allocsearch.apply import prune_with_plan
from allocsearch.data.windows import DataConfig
from allocsearch.engine import check_inputs
from allocsearch.evaluate.perplexity import evaluate_perplexity
from allocsearch.evaluate.tasks import TaskConfig, TaskScore, task_accuracy
from allocsearch.io import json_digest
from allocsearch.models.loading import LoadedModel
from allocsearch.plan import Plan
from allocsearch.plan_codec import encode_plan
from allocsearch.profile import Profile

if TYPE_CHECKING:
    from allocsearch.evaluate.evaluator import Evaluator

#: Bump when what a verification measures changes meaning (stored results are then redone).
VERIFY_FORMAT = 2


@dataclass(frozen=True)
class VerifyConfig:
    """A sequential prune with ``pruner`` at the plan's ratios on ``calibration`` (once per
    seed of ``calibration_seeds``; the calibration's own seed when empty), then perplexity on
    ``nsamples`` windows (all by default) of ``part`` of ``source``, with ``threads`` CPU
    threads (None: torch's current setting, recorded)."""

    pruner: str = "wanda"
    calibration: DataConfig = field(default_factory=DataConfig)
    part: str = "evaluation"
    seqlen: int = 512
    nsamples: int | None = None
    batch_size: int = 1
    #: ``pruned``: sequential prune; ``dense``: one-shot, every block calibrated on the
    #: dense model (the masks the cached fitness uses, on the verification's windows).
    inputs: str = "pruned"
    #: Also measure zero-shot task accuracy on the pruned model (lm-evaluation-harness).
    tasks: TaskConfig | None = None
    calibration_seeds: tuple[int, ...] = ()
    threads: int | None = None
    source: str = "embedded"
    #: More sources scored on each draw's pruned model: every window of their ``part``.
    also: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "also", tuple(str(a) for a in self.also))
        if self.source in self.also or len(set(self.also)) != len(self.also):
            raise ValueError(f"also repeats a source: {[self.source, *self.also]}")
        check_inputs(self.inputs)
        object.__setattr__(self, "calibration_seeds", tuple(int(s) for s in self.calibration_seeds))
        if len(set(self.calibration_seeds)) != len(self.calibration_seeds):
            raise ValueError(f"calibration_seeds repeat a seed: {list(self.calibration_seeds)}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if self.nsamples is not None and self.nsamples < 1:
            raise ValueError(f"verification windows must be at least 1, got {self.nsamples}")

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.calibration_seeds or (self.calibration.seed,)

    def settings(self) -> dict[str, Any]:
        """Everything that decides the numbers, threads resolved (what :func:`key` hashes)."""
        out = asdict(self)
        out["calibration_seeds"] = list(self.seeds)
        out["threads"] = self.threads or torch.get_num_threads()
        if not self.also:  # absent rather than empty: keys from before the field stay valid
            del out["also"]
        else:
            out["also"] = list(self.also)
        return out | {"format": VERIFY_FORMAT}


def settings_key(config: VerifyConfig) -> str:
    """A digest of every setting that decides a verified number (plans verified with one
    settings key are paired draw by draw)."""
    return json_digest(config.settings())


def key(plan: Plan, config: VerifyConfig) -> str:
    """A digest of the plan and of every setting that decides its verified numbers."""
    return json_digest({"model": plan.model.fingerprint, "plan": encode_plan(plan),
                    "settings": settings_key(config)})


@dataclass(frozen=True)
class SourceScore:
    """Perplexity on one more source, and the tokens it predicted."""

    ppl: float
    tokens: int


@dataclass(frozen=True)
class Draw:
    """One calibration draw's prune and measurement."""

    seed: int
    ppl: float
    tokens: int
    achieved_sparsity: float
    prune_seconds: float
    eval_seconds: float
    tasks: dict[str, TaskScore] = field(default_factory=dict)
    #: Perplexity on each of :attr:`VerifyConfig.also`, same prune.
    also: dict[str, SourceScore] = field(default_factory=dict)


@dataclass(frozen=True)
class Verification:
    """A plan's verified numbers: one :class:`Draw` per calibration seed; ``ppl`` is their
    mean."""

    pruner: str
    draws: tuple[Draw, ...]
    inputs: str = "pruned"
    threads: int = 1
    key: str = ""
    settings_key: str = ""

    @property
    def ppl(self) -> float:
        return statistics.fmean(d.ppl for d in self.draws)

    @property
    def ppl_spread(self) -> float:
        """Max - min over the draws (0 for one draw)."""
        values = [d.ppl for d in self.draws]
        return max(values) - min(values)

    @property
    def also_ppl(self) -> dict[str, float]:
        """Each extra source's perplexity, the mean over the draws."""
        return {src: statistics.fmean(d.also[src].ppl for d in self.draws) for src in self.draws[0].also}

    @property
    def by_seed(self) -> dict[int, float]:
        return {d.seed: d.ppl for d in self.draws}

    @property
    def tokens(self) -> int:
        return self.draws[0].tokens

    @property
    def achieved_sparsity(self) -> float:
        return self.draws[0].achieved_sparsity

    @property
    def tasks(self) -> dict[str, TaskScore]:
        """Each task's accuracy, averaged over the draws."""
        if not self.draws[0].tasks:
            return {}
        out = {}
        for name, first in self.draws[0].tasks.items():
            scores = [d.tasks[name] for d in self.draws]
            norm = [s.acc_norm for s in scores if s.acc_norm is not None]
            out[name] = replace(first, acc=statistics.fmean(s.acc for s in scores),
                                acc_norm=statistics.fmean(norm) if len(norm) == len(scores) else None)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"pruner": self.pruner, "inputs": self.inputs, "threads": self.threads,
                "key": self.key, "settings_key": self.settings_key, "ppl": self.ppl,
                "ppl_spread": self.ppl_spread,
                "tokens": self.tokens, "achieved_sparsity": self.achieved_sparsity,
                "tasks": {n: s.to_dict() for n, s in self.tasks.items()},
                **({"also_ppl": self.also_ppl} if self.draws[0].also else {}),
                "draws": [asdict(d) for d in self.draws]}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Verification:
        draws = tuple(Draw(**(d | {"tasks": {n: TaskScore.from_dict(s) for n, s in d["tasks"].items()},
                                   "also": {n: SourceScore(**s) for n, s in d.get("also", {}).items()}}))
                      for d in data["draws"])
        return Verification(str(data["pruner"]), draws, str(data["inputs"]), int(data["threads"]),
                            str(data["key"]), str(data["settings_key"]))


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run with ``threads`` CPU threads (None: as set), restoring the setting after; yields
    the count in force."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def verify_plan(
    loaded: LoadedModel,
    plan: Plan,
    config: VerifyConfig,
    *,
    profile: Profile | None = None,
    restore: Callable[[], None] | None = None,
    progress: bool = True,
) -> Verification:
    """Verify ``plan`` on ``loaded``, once per calibration seed. With ``restore`` (a function
    that puts the dense weights back, such as an Evaluator's) each draw prunes ``loaded`` in
    place and restores it; without, each draw prunes a copy. Plans with structured actions
    always prune a copy (the model keeps its shape). ``profile`` selects the structure."""
    digest, settings = key(plan, config), settings_key(config)
    draws = []
    with torch_threads(config.threads) as threads:
        for seed in config.seeds:
            in_place = restore is not None and not plan.structured()
            if restore is not None:
                restore()
            target = loaded if in_place else loaded.clone()
            try:
                draws.append(_draw(target, plan, config, seed, profile, progress))
            finally:
                if restore is not None:
                    restore()
                del target
    return Verification(config.pruner, tuple(draws), config.inputs, threads, digest, settings)


def verify(ev: Evaluator, plan: Plan, config: VerifyConfig | None = None) -> Verification:
    """Verify ``plan`` on the Evaluator's model (its dense weights back after each draw)."""
    return verify_plan(ev.loaded, plan, config or VerifyConfig(source=ev.config.source),
                       profile=ev.profile, restore=ev.restore, progress=ev.progress)


def _draw(target: LoadedModel, plan: Plan, config: VerifyConfig, seed: int,
          profile: Profile | None, progress: bool) -> Draw:
    calibration = replace(config.calibration, seed=seed)
    report = prune_with_plan(target, plan, config.pruner, calibration, batch_size=config.batch_size,
                             progress=progress, inputs=config.inputs, profile=profile)
    start = time.perf_counter()
    result = evaluate_perplexity(target, config.source, part=config.part, seqlen=config.seqlen,
                                 nsamples=config.nsamples, batch_size=config.batch_size,
                                 progress=progress)
    seconds = time.perf_counter() - start
    tasks = {} if config.tasks is None else task_accuracy(target, config.tasks, progress=progress)
    also = {}
    for src in config.also:
        other = evaluate_perplexity(target, src, part=config.part, seqlen=config.seqlen,
                                    batch_size=config.batch_size, progress=progress)
        also[src] = SourceScore(other.ppl, other.tokens)
    return Draw(seed, result.ppl, result.tokens, report.overall, report.seconds, seconds, tasks, also)
