"""Short-listing with the accuracy predictor inside a study: the proposals behind
:class:`allocsearch.search.samplers.shortlist.ShortlistSampler`.

When the sampler asks for a proposal and none is queued, a **round** runs: train the predictor
(on the study's completed trials, or on a saved predictor's records plus them), screen a pool
of candidates without a forward pass, and queue the ``k`` best by the optimistic bound
``mean - kappa * std`` (of the predicted log-fitness). The pool is

- **mutations** of the study's best trials: level switches between two blocks (types, modules)
  of a per-block (per-type, per-module) float parameter (one up a step, the other down one, as
  the EvoPress-style sampler does), other parameters resampled or jittered rarely;
- **surrogate evolution**: generations of mutations of the best candidates screened so far,
  minimising the bound on the predictor alone (an in-memory Optuna study was slower per
  candidate; see :meth:`Screener._evolve`).

With ``probe``, the round measures its best candidates on one search window and queues by
prediction and probe together (:mod:`allocsearch.search.probing`).

Candidates are compared as the evaluator will measure them (after its snapping and budget
projection), and a candidate whose prepared plan any trial of the study already holds, in
whatever state or at whatever fidelity, is never proposed. The study holds real evaluations
only. Every screened candidate, with its prediction, is appended to ``screening.jsonl`` in
the output folder (one write per round), and each proposal handed to a trial gets a
``"kind": "proposed"`` line with the trial number and the plan; the trial carries the
prediction as its ``screened`` attribute, so prediction and measurement can be compared (the
running Spearman in the progress bar: each prediction was made before its plan was measured).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState
from scipy import stats

from allocsearch.evaluate import Evaluator
from allocsearch.io import append_text
from allocsearch.plan import Plan, PlanError
from allocsearch.plan_codec import encode_plan
from allocsearch.predictor import FeatureTable, PlanRecord, Predictor
from allocsearch.predictor.feature_cache import cached_feature_table
from allocsearch.profile import Profile
from allocsearch.search import store
from allocsearch.search.layout import SpaceLayout
from allocsearch.search.mutation import mutate
from allocsearch.search.probing import ProbedRound, ShortlistProbe
from allocsearch.search.records import study_records
from allocsearch.search.samplers.shortlist import ShortlistSampler
from allocsearch.search.settings import PredictorSettings
from allocsearch.search.space import SearchSpace, SpaceError

log = logging.getLogger(__name__)
GENERATION = 200  # candidates per generation of the surrogate evolution
ELITE = 20  # the best candidates so far, mutated into the next generation
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class Candidate:
    values: dict[str, Any]
    plan: Plan  # prepared as the evaluator will measure it
    source: str  # "mutation" (of a real trial) | "evolved" (of a screened candidate)
    mean: float = 0.0
    std: float = 0.0
    probe: float | None = None  # its fitness on the probe's window, where probed

    def bound(self, kappa: float) -> float:
        return self.mean - kappa * self.std


def compact_key(compact: Mapping[str, Any]) -> str:
    """Identity of a compact plan (:mod:`allocsearch.plan_codec`): its sparsities to 1e-6,
    N:M patterns and structured actions."""
    return json.dumps({"s": [round(float(x), 6) for x in compact["sparsities"]],
                       "p": compact.get("patterns") or {}, "b": compact.get("blocks") or {}}, sort_keys=True)


def plan_key(plan: Plan) -> str:
    return compact_key(encode_plan(plan))


@dataclass
class Screener:
    settings: PredictorSettings
    space: SearchSpace
    profile: Profile
    target: float
    output: Path
    seed: int = 0
    #: The evaluator's plan preparation (a level database snaps plans to its grid), so the
    #: predictor scores, and deduplicates, the plans that will be measured.
    prepare: Callable[[Plan], Plan] | None = None
    recon: tuple[Sequence[float], Mapping[str, Sequence[float]]] | None = None
    #: A saved predictor to start from (its feature table and records are used).
    pretrained: Predictor | None = None
    #: Measures each round's best candidates on a window (``settings.probe`` of them).
    prober: ShortlistProbe | None = None
    table: FeatureTable = field(init=False)
    predictor: Predictor | None = field(default=None, init=False)
    rounds: int = field(default=0, init=False)
    pool_size: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.pretrained is not None:
            self.pretrained.table.check_identity(self.profile.identity)
            self.table = self.pretrained.table
        else:
            self.table = cached_feature_table(self.profile, self.recon)
        self._rng = np.random.default_rng(self.seed)
        self._layout = SpaceLayout.of(self.profile.identity)
        self._queue: list[Candidate] = []
        self._keys: dict[int, str] = {}  # finished trial number -> its prepared plan's key
        self._trained_on = -1
        self._probed: ProbedRound | None = None  # the last probed round

    # --------------------------------------------------------------- proposals
    def propose(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any] | None:
        """The values of the next short-listed candidate for ``trial`` (marked screened), or
        None while the predictor warms up or nothing new can be proposed."""
        read = store.trials(study)  # once per proposal: records, keys and round numbers share it
        records = study_records(study, read, self.settings.tokens)
        if self.pretrained is None and len(records) < self.settings.warmup:
            return None
        seen = self.study_keys(read, exclude=trial.number)
        cand = self._pop(seen)
        if cand is None:
            probed = self._round(read, records, seen)
            if probed:
                store.add_probe_tokens(study, probed)
            cand = self._pop(seen)
        if cand is None:
            return None
        s = self.settings
        # The key too: the trial's parameters are suggested after the study lock is released,
        # and until then another worker can tell this proposal is taken only from the key.
        store.mark_screened(study, trial, {
            "round": self.rounds, "source": cand.source, "mean": cand.mean, "std": cand.std,
            "bound": cand.bound(s.kappa), "pool": self.pool_size, "trained_on": self._trained_on,
            "key": plan_key(cand.plan)} | self._probe_attrs(cand))
        line = {"kind": "proposed", "trial": trial.number, "round": self.rounds,
                "values": cand.values, "plan": encode_plan(cand.plan)}
        append_text(self.output / "screening.jsonl", json.dumps(line, default=float) + "\n")
        return cand.values

    def _pop(self, seen: set[str]) -> Candidate | None:
        while self._queue:
            cand = self._queue.pop(0)
            if plan_key(cand.plan) not in seen:  # another worker may have measured it since
                return cand
        return None

    def study_keys(self, read: Sequence[store.StoredTrial], exclude: int = -1) -> set[str]:
        """The prepared plans of every trial of the study, as ``store.trials`` read them (any
        state, any fidelity; enqueued ones from their fixed values, a running screened one whose
        parameters are not suggested yet from its proposal's key), but ``exclude``."""
        out = set()
        for t in read:
            if t.number == exclude:
                continue
            key = self._keys.get(t.number)
            if key is None:
                if t.plan is not None:
                    key = compact_key(t.plan)
                elif t.proposed:
                    cand = self._candidate(t.proposed, "trial")
                    key = plan_key(cand.plan) if cand is not None else None
                elif t.screened is not None and t.state == TrialState.RUNNING:
                    key = t.screened.get("key")  # not one that died before it was suggested
                if key is not None and t.state in FINISHED:
                    self._keys[t.number] = key
            if key is not None:
                out.add(key)
        return out

    # ------------------------------------------------------------------ rounds
    def _round(self, read: Sequence[store.StoredTrial], records: list[PlanRecord], seen: set[str]) -> int:
        """Train (every ``retrain_every`` rounds, when there is something new), screen a pool,
        queue the best ``k`` that no trial holds (with a probe: the best ``k`` by prediction and
        probe of the ``probe`` best by the bound). Returns the search tokens the probes read."""
        s = self.settings
        start = time.perf_counter()
        # The study's round count, not this process's: a resumed study continues its numbering.
        self.rounds = max([self.rounds] + [t.screened["round"] for t in read if t.screened is not None])
        stale = len(records) != self._trained_on and self.rounds % s.retrain_every == 0
        if self.predictor is None or stale:
            self.predictor = self._train(records)
            self._trained_on = len(records)
        self.rounds += 1
        best = sorted(records, key=lambda r: r.fitness)[:8]
        parents = [dict(r.plan.provenance.get("params") or {}) for r in best]
        pool = self._offspring(parents, round(s.pool * s.mutations), "mutation")
        pool += self._evolve(pool, s.pool - len(pool))
        picked, wanted = set(seen), max(s.k, s.probe) if self.prober is not None else s.k
        short: list[Candidate] = []
        for c in sorted(pool, key=lambda c: c.bound(s.kappa)):
            if len(short) == wanted:
                break
            if plan_key(c.plan) not in picked:
                picked.add(plan_key(c.plan))
                short.append(c)
        probes: dict[int, float] = {}  # id of a probed candidate of the pool -> its probe
        tokens = 0
        if self.prober is not None:
            r = self._probed = ProbedRound.run(self.prober, [c.plan for c in short], [c.mean for c in short],
                                               read, records)
            probes = {id(c): float(p) for c, p in zip(short, r.probes, strict=True)}
            short, tokens = [short[i] for i in r.order], r.tokens
        self._queue = [replace(c, probe=probes.get(id(c))) for c in short[: s.k]]
        self.pool_size = len(pool)
        self._log(pool, {id(c) for c in short[: s.k]}, probes, len(records), time.perf_counter() - start)
        return tokens

    def _probe_attrs(self, cand: Candidate) -> dict[str, Any]:
        """A probed proposal's probe, the stack's weights and its round's probe tokens (a
        study's count charges those once per round)."""
        r = self._probed
        return {} if cand.probe is None or r is None else {
            "probe": cand.probe, "stack": [r.stack.model, r.stack.probe], "probe_tokens": r.tokens}

    def _train(self, records: list[PlanRecord]) -> Predictor:
        s, seed = self.settings, self.seed + self.rounds
        if self.pretrained is not None:
            pred = self.pretrained.retrain(records, seed=seed) if records else self.pretrained
        else:
            pred = Predictor.train(self.table, records, model=s.model, members=s.members, seed=seed)
        return pred if s.curves is None else pred.with_damage(s.curves)

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
        made = [self._candidate(mutate(parents[i % len(parents)], self.space, self._layout, self._rng),
                                source) for i in range(n if parents else 0)]
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
    def _log(self, pool: list[Candidate], queued: set[int], probes: dict[int, float], trained_on: int,
             seconds: float) -> None:
        """One line per candidate of the pool (``queued``, ``probes``: by the candidate's id)."""
        kappa = self.settings.kappa
        lines = [json.dumps({"round": self.rounds, "source": c.source, "mean": round(c.mean, 5),
                             "std": round(c.std, 5), "bound": round(c.bound(kappa), 5),
                             "queued": id(c) in queued, "trained_on": trained_on,
                             "round_seconds": round(seconds, 3),
                             "blocks": [round(b, 4) for b in c.plan.block_sparsity()]}
                            | ({"probe": probes[id(c)]} if id(c) in probes else {}))
                 for c in pool]
        self.output.mkdir(parents=True, exist_ok=True)
        append_text(self.output / "screening.jsonl", "\n".join(lines) + "\n")  # one write per round


def attach_screener(study: optuna.Study, settings: PredictorSettings, space: SearchSpace, ev: Evaluator,
                    target: float, output: Path, seed: int) -> Screener:
    """Wrap the study's sampler so that ``settings.share`` of its searched trials come from a
    new screener's short list (a saved predictor from ``settings.file`` when given)."""
    if settings.curves is not None and settings.curves.fingerprint != ev.profile.identity.fingerprint:
        raise ValueError(f"predictor.damage {settings.damage} was measured on another model than the study's")
    prober = ShortlistProbe.on(ev, settings.probe_window) if settings.probe else None
    screener = Screener(settings, space, ev.profile, target, output, seed, prepare=ev.prepare,
                        recon=ev.backend.recon_errors(), pretrained=settings.pretrained, prober=prober)
    study.sampler = ShortlistSampler(study.sampler, screener.propose, settings.share)
    return screener


def prequential_spearman(study: optuna.Study) -> float | None:
    """Spearman of the screened predictions against the measurements of the same plans,
    each predicted before it was measured; None below 5 pairs."""
    pairs = [(t.screened["mean"], float(np.log(t.values[0])))
             for t in store.trials(study, (TrialState.COMPLETE,)) if t.screened is not None]
    if len(pairs) < 5:
        return None
    pred, true = zip(*pairs, strict=True)
    return float(stats.spearmanr(pred, true).statistic)
