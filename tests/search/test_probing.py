"""Probed short-listing: each round measures its best candidates by the bound on one window,
queues the best by the study's stack (the probe alone until enough probed trials are
measured), records each proposal's probe, and charges the probes' tokens to the study."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from optuna.trial import TrialState

from allocsearch.budget import random_plan
from allocsearch.evaluate import Evaluator
from allocsearch.io import read_jsonl
from allocsearch.predictor import PlanRecord
from allocsearch.predictor.probe import ProbeStack, WindowProbe
from allocsearch.search import StudyConfig, StudyConfigError, run_study, store, trial_plan
from allocsearch.search.probing import PROBE_ALONE, STACK_MIN, study_stack
from allocsearch.search.records import study_records
from tests.helpers import tiny_evaluator
from tests.search.test_screening import PREDICTOR, _check_proposals, _config

PROBE = 5  # candidates probed per round; k = 3 of them queued


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return tiny_evaluator(_config(Path("x"), {}).evaluator)


def _trial(number: int, mean: float, probe: float) -> store.StoredTrial:
    return store.StoredTrial(number, TrialState.COMPLETE, (1.0,), {}, {}, None,
                             screened={"mean": mean, "probe": probe})


def _stack_of(weights: tuple[float, float], n: int, evaluator: Evaluator) -> ProbeStack:
    """study_stack of ``n`` probed trials whose log-label is exactly ``weights`` applied to
    their prediction and log-probe (plus an offset the centring removes)."""
    rng = np.random.default_rng(0)
    mean, logp = rng.normal(size=n), rng.normal(size=n)
    plan = random_plan(evaluator.identity, 0.6, seed=0)
    read = [_trial(i, float(mean[i]), float(np.exp(logp[i]))) for i in range(n)]
    label = 3.0 + weights[0] * mean + weights[1] * logp
    records = [PlanRecord(plan, float(np.exp(label[i])), trial=i) for i in range(n)]
    # A trial no record labels (stopped early, running) does not enter the fit.
    read.append(_trial(n, 100.0, 1e-3))
    return study_stack(read, records)


def test_the_study_stack_fits_its_probed_trials_once_there_are_enough(evaluator: Evaluator) -> None:
    fitted = _stack_of((0.5, 2.0), STACK_MIN, evaluator)
    assert fitted.model == pytest.approx(0.5, abs=1e-9) and fitted.probe == pytest.approx(2.0, abs=1e-9)
    assert _stack_of((0.5, 2.0), STACK_MIN - 1, evaluator) == PROBE_ALONE  # too few: the probe alone
    assert _stack_of((1.0, -0.5), STACK_MIN, evaluator) == PROBE_ALONE  # the probe would count against
    assert _stack_of((0.0, 0.0), STACK_MIN, evaluator) == PROBE_ALONE  # every label equal: no fit


def test_a_probed_study_queues_by_probe_and_charges_its_tokens(
    evaluator: Evaluator, tmp_path: Path
) -> None:
    cfg = _config(tmp_path, {"n_trials": 24, "predictor": PREDICTOR | {"probe": PROBE}})
    run = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
    views = store.trials(run.study)
    log = read_jsonl(tmp_path / "screening.jsonl")
    screened = [v for v in views if v.screened is not None]
    rounds = sorted({v.screened["round"] for v in screened if v.screened is not None})
    assert len(screened) == 18 and rounds == [1, 2, 3, 4, 5, 6]
    probe = WindowProbe(evaluator, 0)
    weights, count = [], 0
    for r in rounds:
        # The PROBE best distinct candidates no trial holds (the 2-block space may offer fewer).
        probed = [x for x in log if x.get("round") == r and "probe" in x]
        queued = [x for x in probed if x["queued"]]
        assert 3 < len(probed) <= PROBE and len(queued) == 3
        count += len(probed)
        mine = [v for v in screened if v.screened is not None and v.screened["round"] == r]
        # Each probe reads one 32-token window; every proposal of the round records their tokens.
        assert all(v.screened is not None and v.screened["probe_tokens"] == 32 * len(probed) for v in mine)
        w = mine[0].screened["stack"] if mine[0].screened is not None else None
        assert w is not None
        weights.append(tuple(w))

        def score(x: dict[str, Any], w: list[float] = w) -> float:
            return float(w[0] * x["mean"] + w[1] * math.log(x["probe"]))

        # The queued three score lowest of the round's probed five (log means are rounded).
        assert max(score(x) for x in queued) <= min(score(x) for x in probed if not x["queued"]) + 1e-4
        for v in mine:  # each proposal's probe is its plan's fitness on window 0
            assert v.screened is not None
            plan = trial_plan(run.study, run.study.trials[v.number])
            assert v.screened["probe"] == pytest.approx(probe(plan), rel=1e-6)
    # The probe alone orders the first rounds; from the round after 8 probed trials were
    # measured, the weights fitted on the trials measured before the round (rounds 1-3
    # proposed 9).
    assert weights[:3] == [(0.0, 1.0)] * 3
    assert store.setup_tokens(run.study) == 32 * count  # the probes' tokens, the study's own
    assert count > 3 * len(rounds)  # more probed than queued
    records = study_records(run.study)
    for r, w in zip(rounds, weights, strict=True):
        first = min(v.number for v in screened if v.screened is not None and v.screened["round"] == r)
        before = study_stack([v for v in views if v.number < first], [x for x in records if x.trial < first])
        assert w == pytest.approx((before.model, before.probe), abs=1e-12)
    assert weights[3] != (0.0, 1.0)
    _check_proposals(run.study, log)


def test_probes_count_in_the_token_budget(evaluator: Evaluator, tmp_path: Path) -> None:
    """At equal max_tokens a probed study runs fewer trials than the same study unprobed: its
    probes read part of the budget."""
    budget = 128 * 14
    trials = {}
    for probe in (0, PROBE):
        cfg = _config(tmp_path / str(probe), {"n_trials": 100, "max_tokens": budget,
                                              "predictor": PREDICTOR | {"probe": probe}})
        run = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
        done = [t for t in store.trials(run.study) if t.state != TrialState.RUNNING]
        spent = sum(t.tokens for t in done) + store.setup_tokens(run.study)
        assert spent >= budget and spent - done[-1].tokens - store.setup_tokens(run.study) < budget
        assert (store.setup_tokens(run.study) > 0) == (probe > 0)
        trials[probe] = len(done)
    assert trials[PROBE] < trials[0]


def test_probe_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError, match="at least k=3"):
        _config(tmp_path, {"predictor": PREDICTOR | {"probe": 2}})
    with pytest.raises(StudyConfigError, match="past the evaluator's 4 search windows"):
        _config(tmp_path, {"predictor": PREDICTOR | {"probe": 4, "probe_window": 4}})
    with pytest.raises(StudyConfigError, match="orders a short-list"):
        StudyConfig.from_dict({"name": "t", "target": 0.6, "space": "blocks",
                               "predictor": {"probe": 4}}, tmp_path / "t.yaml")
    assert _config(tmp_path, {"predictor": PREDICTOR | {"probe": 3, "probe_window": 3}}).predictor.probe == 3
