"""A trial whose fitness is NaN/inf or that runs out of memory is failed with its reason and
the study goes on; any other exception leaves the caller's model dense."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from optuna.trial import TrialState

from allocsearch.evaluate import Evaluator, FitnessStep
from allocsearch.search import StudyConfig, run_study, store
from allocsearch.search.runner import MAX_FAILURES, StudyError
from tests.helpers import tiny_evaluator

EVAL = {"seqlen": 32, "fidelities": [64, 128], "batch_size": 2}


@pytest.fixture()
def evaluator() -> Evaluator:
    return tiny_evaluator(_config(Path("x"), 4).evaluator)


def _config(out: Path, n_trials: int) -> StudyConfig:
    data = {"name": "fail", "target": 0.6, "space": "blocks", "n_trials": n_trials, "evaluator": EVAL,
            "sampler": "random", "output": str(out)}
    return StudyConfig.from_dict(data, out / "fail.yaml")


def _dense(ev: Evaluator) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in ev.loaded.model.state_dict().items()}


def _patch(ev: Evaluator, monkeypatch: pytest.MonkeyPatch, faults: dict[int, Any]) -> None:
    """The i-th call of ``iter_fitness`` applies the plan as usual, then meets ``faults[i]``:
    a value to yield (NaN, inf) or an exception to raise."""
    real = ev.iter_fitness
    calls = iter(range(1000))

    def fake(plan: Any, *args: Any, **kw: Any) -> Iterator[FitnessStep]:
        i = next(calls)
        steps = real(plan, *args, **kw)
        first = next(steps)  # the plan is applied: the model is pruned now
        fault = faults.get(i)
        if isinstance(fault, BaseException):
            raise fault
        if fault is not None:
            yield FitnessStep(first.fidelity, first.tokens, first.windows, fault)
            return
        yield first
        yield from steps

    monkeypatch.setattr(ev, "iter_fitness", fake)


def test_nan_inf_and_oom_trials_fail_with_a_reason_and_the_study_goes_on(
    evaluator: Evaluator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _patch(evaluator, monkeypatch, {1: math.nan, 2: math.inf,
                                    3: torch.OutOfMemoryError("CUDA out of memory. Tried 2 GiB")})
    run = run_study(_config(tmp_path, 4), evaluator=evaluator, progress=False, verify=False)
    trials = run.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL,
                                         TrialState.FAIL] + [TrialState.COMPLETE] * 3
    reasons = [store.StoredTrial.of(t).fail_reason for t in trials]
    assert reasons[1] == "fitness is nan at 64 tokens"
    assert reasons[2] == "fitness is inf at 64 tokens"
    assert str(reasons[3]).startswith("out of memory: CUDA out of memory.")


def test_failures_in_a_row_stop_the_worker_with_one_line(
    evaluator: Evaluator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _patch(evaluator, monkeypatch, dict.fromkeys(range(100), math.nan))
    dense = _dense(evaluator)
    with pytest.raises(StudyError, match=f"{MAX_FAILURES} trials in a row failed, the last with "
                                         "fitness is nan"):
        run_study(_config(tmp_path, 20), evaluator=evaluator, progress=False, verify=False)
    assert all(torch.equal(v, dense[k]) for k, v in evaluator.loaded.model.state_dict().items())


def test_an_exception_mid_trial_leaves_the_model_dense_and_the_trial_failed(
    evaluator: Evaluator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dense = _dense(evaluator)
    _patch(evaluator, monkeypatch, {1: RuntimeError("a bug")})
    with pytest.raises(RuntimeError, match="a bug"):
        run_study(_config(tmp_path, 4), evaluator=evaluator, progress=False, verify=False)
    assert all(torch.equal(v, dense[k]) for k, v in evaluator.loaded.model.state_dict().items())
    from allocsearch.search import load_study

    states = [t.state for t in load_study(tmp_path).get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.FAIL]
