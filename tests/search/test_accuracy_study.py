"""Task accuracy in studies: verified beside perplexity, second objective, constraint."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from optuna.trial import TrialState

from allocsearch.data import DataConfig
from allocsearch.data.continuation import CONTINUATION_TASK
from allocsearch.evaluate import Evaluator
from allocsearch.models import load_model
from allocsearch.profile import compute_profile
from allocsearch.search import StudyConfig, StudyConfigError, run_study, store
from allocsearch.search.report import build_report, format_report
from tests.helpers import save_tiny_model

EVAL = {"seqlen": 32, "fidelities": [64], "batch_size": 2}
TASKS = {"names": [CONTINUATION_TASK], "limit": 4, "batch_size": 4}


def _config(out: Path, extra: dict[str, Any]) -> StudyConfig:
    data = {"name": "acc", "target": 0.6, "space": "blocks", "n_trials": 4, "evaluator": EVAL,
            "warm_start": [{"method": "uniform"}], "tasks": TASKS,
            "verify": {"top": 1, "nsamples": 2, "seqlen": 32, "eval_windows": 2},
            "output": str(out)} | extra
    return StudyConfig.from_dict(data, out / "acc.yaml")


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> Evaluator:
    """An Evaluator on a saved tiny LLaMA (lm-eval needs a transformers tokenizer)."""
    lm = load_model(str(save_tiny_model(tmp_path_factory.mktemp("acc") / "tiny")), device="cpu")
    windows = torch.randint(0, 256, (4, 32), generator=torch.Generator().manual_seed(0))
    profile = compute_profile(lm, windows, progress=False)
    profile.data = DataConfig("embedded", 4, 32, 0)
    return Evaluator(lm, profile, _config(Path("x"), {}).evaluator, progress=False)


def test_accuracy_as_second_objective(
    evaluator: Evaluator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _config(tmp_path, {"sampler": "nsga2", "objectives": ["fitness", "accuracy"]})
    with caplog.at_level(logging.INFO, logger="allocsearch.search.runner"):
        run = run_study(cfg, evaluator=evaluator, progress=False)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trial ")]
    # Each trial's line names its second value (it used to print the plan's budget).
    assert len(lines) == 4 and all(", accuracy " in line for line in lines)
    assert [d.name for d in run.study.directions] == ["MINIMIZE", "MAXIMIZE"]
    [dense] = store.dense_accuracies(run.study)
    assert dense in {k / 4 for k in range(5)}
    done = store.trials(run.study, (TrialState.COMPLETE,))
    assert len(done) == 4
    for t in done:
        assert t.values[1] == pytest.approx(t.accuracy) and t.constraint is None
    report = build_report(run.study, tmp_path, plots=False)
    assert report.counts["dense_accuracy"] == dense
    assert all(r.second is not None and r.second[0] == "accuracy" for r in report.rows)
    assert "dense model's task accuracy" in format_report(report)


def test_accuracy_drop_as_constraint(evaluator: Evaluator, tmp_path: Path) -> None:
    cfg = _config(tmp_path, {"sampler": "tpe", "tasks": TASKS | {"max_drop": 0.1}})
    run = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
    [dense] = store.dense_accuracies(run.study)
    done = run.study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 4
    for t in done:
        view = store.StoredTrial.of(t)
        assert view.accuracy is not None
        want = round(dense - view.accuracy - 0.1, 6)
        assert view.constraint == want
        assert t.constraints == {"accuracy_drop": want}  # what Optuna's samplers read


def test_verification_measures_tasks_and_the_report_shows_them(
    evaluator: Evaluator, tmp_path: Path
) -> None:
    run = run_study(_config(tmp_path, {"sampler": "random"}), evaluator=evaluator, progress=False)
    assert run.verified
    for v in run.verified.values():
        score = v.tasks[CONTINUATION_TASK]
        assert score.examples == 4 and score.chance == 0.25
    report = build_report(run.study, tmp_path, plots=False)
    verified = [r for r in report.rows if r.verified and r.verified["wanda"].tasks]
    assert verified and all(CONTINUATION_TASK in r.verified["wanda"].tasks for r in verified)
    assert "verified acc" in format_report(report)


@pytest.mark.parametrize(("extra", "message"), [
    ({"objectives": ["fitness", "accuracy"], "tasks": None}, "accuracy objective needs a tasks"),
    ({"sampler": "cmaes", "tasks": TASKS | {"max_drop": 0.1}}, "sampler 'cmaes' takes none"),
    ({"predictor": "xgboost", "tasks": TASKS | {"max_drop": 0.1}}, "does not combine"),
    ({"tasks": TASKS | {"metric": "f1"}}, "tasks.metric must be one of"),
    ({"tasks": TASKS | {"max_drop": 1.5}}, r"max_drop must lie in \[0, 1\)"),
    ({"tasks": TASKS | {"limit": 0}}, "limit must be at least 1"),
    ({"tasks": TASKS | {"shots": 1}}, "tasks: got an unexpected keyword argument 'shots'"),
    ({"tasks": {"names": []}}, "name at least one task"),
])
def test_task_config_errors(extra: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError, match=message):
        _config(tmp_path, extra)


def test_task_shorthands(tmp_path: Path) -> None:
    assert _config(tmp_path, {"tasks": True}).tasks.names == (CONTINUATION_TASK,)
    assert _config(tmp_path, {"tasks": "boolq, arc_easy"}).tasks.names == ("boolq", "arc_easy")
    cfg = _config(tmp_path, {})
    tasks = cfg.verify_config().tasks
    assert tasks is not None and tasks.limit == 4
    assert _config(tmp_path, {"tasks": None}).verify_config().tasks is None


def test_the_accuracy_objective_reads_no_evaluation_text(
    evaluator: Evaluator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search scores our task built from the search part; reading the evaluation part
    (held out for verification) fails the study."""
    from allocsearch.data.sources import EmbeddedSource

    real = EmbeddedSource.text
    parts: list[str] = []

    def guarded(self: EmbeddedSource, part: str) -> str:
        parts.append(part)
        if part == "evaluation":
            raise AssertionError("the search read the evaluation part")
        return real(self, part)

    monkeypatch.setattr(EmbeddedSource, "text", guarded)
    monkeypatch.setenv("ALLOCSEARCH_CACHE", str(tmp_path / "cache"))  # no task built earlier
    for extra in ({"sampler": "nsga2", "objectives": ["fitness", "accuracy"]},
                  {"sampler": "tpe", "tasks": TASKS | {"max_drop": 0.1}}):
        run = run_study(_config(tmp_path / str(len(parts)), extra), evaluator=evaluator,
                        progress=False, verify=False)
        assert all(t.accuracy is not None for t in store.trials(run.study, (TrialState.COMPLETE,)))
    assert parts and set(parts) == {"search"}
    # Verification, and only verification, scores the evaluation part.
    tasks = _config(tmp_path, {}).verify_config().tasks
    assert tasks is not None and tasks.continuation.part == "evaluation"
