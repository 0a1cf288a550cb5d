"""Short-listing with the accuracy predictor inside a study.

Each **round** (once ``warmup`` trials have completed for real, and whenever the study has no
proposal waiting): train the predictor on every completed trial of the study, screen a pool
of candidates without a forward pass, and enqueue the ``k`` best by the optimistic bound
``mean - kappa * std`` (of the predicted log-fitness) as the study's next trials. The pool is

- **mutations** of the best real trials: level switches between two blocks of a per-block
  float parameter (one up a step, the other down one, as the EvoPress-style sampler does),
  other parameters resampled or jittered rarely;
- **surrogate evolution**: generations of mutations of the best candidates screened so far,
  minimising the bound on the predictor alone (an in-memory Optuna study was slower per
  candidate; see :meth:`Screener._evolve`).

The real study holds real evaluations only. Every screened candidate, with its prediction,
is appended to ``screening.jsonl`` in the output folder (one write per round); the chosen ones
carry their prediction as the ``screened`` user attribute, so the prediction can be compared
with the measurement (the running Spearman shown in the progress bar: each prediction was
made before its plan was measured).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
from scipy import stats

from allocsearch.io import append_text
from allocsearch.plan import Plan, PlanError
from allocsearch.predictor import FeatureTable, Predictor
from allocsearch.profile import Profile
from allocsearch.search import store
from allocsearch.search.config import PredictorSettings
from allocsearch.search.records import study_records
from allocsearch.search.space import ParamSpec, SearchSpace, SpaceError

log = logging.getLogger(__name__)
GENERATION = 200  # candidates per generation of the surrogate evolution
ELITE = 20  # the best candidates so far, mutated into the next generation
SWITCH_SHARE = 0.05  # a level switch moves one step of 5% of the parameter's range


@dataclass(frozen=True)
class Candidate:
    values: dict[str, Any]
    plan: Plan
    source: str  # "mutation" (of a real trial) | "evolved" (of a screened candidate)
    mean: float = 0.0
    std: float = 0.0

    def bound(self, kappa: float) -> float:
        return self.mean - kappa * self.std


def plan_key(plan: Plan) -> tuple[float, ...]:
    return tuple(round(c.sparsity, 4) for c in plan.modules.values())


@dataclass
class Screener:
    settings: PredictorSettings
    space: SearchSpace
    profile: Profile
    target: float
    output: Path
    seed: int = 0
    #: The evaluator's plan preparation (a level database snaps plans to its grid), so the
    #: predictor scores the plans that will be measured; and its reconstruction errors.
    prepare: Callable[[Plan], Plan] | None = None
    recon: tuple[Sequence[float], Mapping[str, Sequence[float]]] | None = None
    table: FeatureTable = field(init=False)
    predictor: Predictor | None = field(default=None, init=False)
    rounds: int = field(default=0, init=False)
    pool_size: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.table = FeatureTable.from_profile(self.profile, self.recon)
        self._rng = np.random.default_rng(self.seed)

    # ---------------------------------------------------------------- rounds
    def ready(self, study: optuna.Study) -> bool:
        """Warm enough, and no proposal of an earlier round still waits to be evaluated."""
        if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return False
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return len(done) >= self.settings.warmup

    def round(self, study: optuna.Study, limit: int | None = None) -> list[Candidate]:
        """Train (every ``retrain_every`` rounds), screen a pool, enqueue the best ``k`` (at
        most ``limit``: the trials the study has left, so no proposal is left unevaluated)."""
        s = self.settings
        start = time.perf_counter()
        # The study's round count, not this process's: a resumed study continues its
        # numbering, and several workers (each round runs under the study lock) share it.
        trials = store.trials(study)
        self.rounds = max((t.screened["round"] for t in trials if t.screened is not None), default=0)
        elsewhere = [t.params for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        records = study_records(study)
        if self.predictor is None or self.rounds % s.retrain_every == 0:
            self.predictor = Predictor.train(self.table, records, model=s.model, members=s.members,
                                             seed=self.seed + self.rounds)
        self.rounds += 1
        best = sorted(records, key=lambda r: r.fitness)[:8]
        parents = [dict(r.plan.provenance.get("params") or {}) for r in best]
        pool = self._offspring(parents, round(s.pool * s.mutations), "mutation")
        pool += self._evolve(pool, s.pool - len(pool))
        chosen: list[Candidate] = []
        picked = {plan_key(r.plan) for r in records}  # never propose a plan measured already
        k = s.k if limit is None else min(s.k, limit)
        for c in sorted(pool, key=lambda c: c.bound(s.kappa)):
            if len(chosen) == k:
                break
            if plan_key(c.plan) not in picked and c.values not in elsewhere:  # nor one running
                picked.add(plan_key(c.plan))
                chosen.append(c)
        seconds = time.perf_counter() - start
        for c in chosen:
            store.enqueue(study, c.values, screened={
                "round": self.rounds, "source": c.source, "mean": c.mean, "std": c.std,
                "bound": c.bound(s.kappa), "pool": len(pool), "trained_on": len(records),
                "round_seconds": round(seconds, 3)})
        self.pool_size = len(pool)
        self._log(pool, chosen, len(records))
        return chosen

    def _score(self, cands: list[Candidate]) -> list[Candidate]:
        assert self.predictor is not None
        if not cands:
            return []
        mean, std = self.predictor.predict([c.plan for c in cands])
        return [Candidate(c.values, c.plan, c.source, float(m), float(sd))
                for c, m, sd in zip(cands, mean, std, strict=True)]

    def _candidate(self, values: dict[str, Any], source: str) -> Candidate | None:
        try:
            plan = self.space.build_plan(values, self.profile, self.target)
            return Candidate(values, self.prepare(plan) if self.prepare else plan, source)
        except (SpaceError, PlanError):
            return None

    # ------------------------------------------------------------- mutations
    def _offspring(self, parents: list[dict[str, Any]], n: int, source: str) -> list[Candidate]:
        """Up to ``n`` scored mutations, cycling through ``parents`` (infeasible ones dropped)."""
        parents = [p for p in parents if p]
        blocks = self.profile.identity.num_blocks
        made = [self._candidate(mutate(parents[i % len(parents)], self.space, blocks, self._rng), source)
                for i in range(n if parents else 0)]
        return self._score([c for c in made if c is not None])

    # ------------------------------------------------------ surrogate evolution
    def _evolve(self, pool: list[Candidate], n: int) -> list[Candidate]:
        """Minimise the optimistic bound on the predictor alone: generations of ``GENERATION``
        mutations of the ``ELITE`` best candidates screened so far (no forward pass). An
        in-memory Optuna study (TPE, CMA-ES) did the same with several times the cost per
        candidate in a profile: its per-ask overhead (TPE's grows with the history, CMA-ES
        restores its state at every ask) outweighed building and scoring the plans."""
        out: list[Candidate] = []
        kappa = self.settings.kappa
        while len(out) < n:
            elite = sorted(pool + out, key=lambda c: c.bound(kappa))[:ELITE]
            made = self._offspring([c.values for c in elite], min(GENERATION, n - len(out)), "evolved")
            if not made:
                break  # no elite, or the space makes no feasible plan here: do not loop forever
            out += made
        return out

    # ------------------------------------------------------------------ log
    def _log(self, pool: list[Candidate], chosen: list[Candidate], trained_on: int) -> None:
        ids = {id(c) for c in chosen}
        kappa = self.settings.kappa
        lines = [json.dumps({"round": self.rounds, "source": c.source, "mean": round(c.mean, 5),
                             "std": round(c.std, 5), "bound": round(c.bound(kappa), 5),
                             "chosen": id(c) in ids, "trained_on": trained_on,
                             "blocks": [round(b, 4) for b in c.plan.block_sparsity()]})
                 for c in pool]
        self.output.mkdir(parents=True, exist_ok=True)
        append_text(self.output / "screening.jsonl", "\n".join(lines) + "\n")  # one write per round


def mutate(values: dict[str, Any], space: SearchSpace, num_blocks: int, rng: np.random.Generator,
           other_rate: float = 0.05) -> dict[str, Any]:
    """Level switches on the per-block float parameters (1 to 4 of them), other parameters
    resampled (categorical) or jittered (scalar) with probability ``other_rate`` each."""
    out = dict(values)
    switchable = [p for p in space.parameters.values() if p.per == "block" and p.type == "float"]
    for _ in range(int(rng.integers(1, 5)) if switchable else 0):
        spec = switchable[int(rng.integers(len(switchable)))]
        names = spec.names(num_blocks)
        i, j = rng.choice(len(names), size=2, replace=False)
        step = _step(spec)
        out[names[int(i)]] = spec.clip(out[names[int(i)]] + step)
        out[names[int(j)]] = spec.clip(out[names[int(j)]] - step)
    for spec in space.parameters.values():
        if spec in switchable:
            continue
        for name in spec.names(num_blocks):
            if rng.random() >= other_rate and switchable:
                continue
            if spec.type == "categorical":
                out[name] = spec.choices[int(rng.integers(len(spec.choices)))]
            else:
                out[name] = spec.clip(float(out[name]) + rng.normal(0.0, 2 * _step(spec)))
    return out


def _step(spec: ParamSpec) -> float:
    assert spec.low is not None and spec.high is not None
    return float(spec.step or SWITCH_SHARE * (spec.high - spec.low))


def prequential_spearman(study: optuna.Study) -> float | None:
    """Spearman of the screened predictions against the measurements of the same plans,
    each predicted before it was measured; None below 5 pairs."""
    pairs = [(t.screened["mean"], float(np.log(t.values[0])))
             for t in store.trials(study, (TrialState.COMPLETE,)) if t.screened is not None]
    if len(pairs) < 5:
        return None
    pred, true = zip(*pairs, strict=True)
    return float(stats.spearmanr(pred, true).statistic)
