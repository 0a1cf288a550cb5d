"""``allocsearch predictor damage`` and ``predictor train --damage``: curves measured with the
study's Evaluator, a predictor that adds them, and a study screening with that predictor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from allocsearch.cli import main
from allocsearch.predictor import Predictor
from allocsearch.predictor.damage import DamageCurves, measure_damage
from allocsearch.search import StudyConfig, study_evaluator
from tests.helpers import tiny_study_file


@pytest.fixture()
def study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ALLOCSEARCH_CACHE", str(tmp_path / "cache"))  # not the user's cache
    return tiny_study_file(tmp_path, "d", evaluator={"seqlen": 32, "fidelities": [64]}, n_trials=8)


def test_damage_then_train_then_screen(study: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "damage.json"
    args = ["predictor", "damage", str(study), "--targets", "0.5", "0.6", "--out", str(out), "--quiet"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "0.6 around ramp slope=0.3: 2 blocks x 6 levels, 832 tokens" in text
    damage = DamageCurves.load(out)
    assert [(e.target, e.label) for e in damage.entries] == [
        (0.5, "uniform"), (0.5, "ramp slope=0.3"), (0.6, "uniform"), (0.6, "ramp slope=0.3")]
    with study_evaluator(StudyConfig.load(study), None, None, progress=False) as ev:
        # The library measures the same curves (read back from the cache the command filled).
        assert measure_damage(ev, 0.6, "ramp slope=0.3", progress=False) == damage.entries[3]
        assert damage.fingerprint == ev.identity.fingerprint

    assert main(["search", str(study), "--quiet", "--no-verify"]) == 0
    pred_path = tmp_path / "pred.json"
    assert main(["predictor", "train", "--study", str(tmp_path / "out"), "--damage", str(out),
                 "--kind", "additive", "--members", "2", "--out", str(pred_path)]) == 0
    assert "damage at targets [0.5, 0.6] added at" in capsys.readouterr().out
    pred = Predictor.load(pred_path)
    assert pred.damage == damage and pred.damage_scale > 0.0
    # A study screening with it from its first trial keeps the damage in every retrained model.
    again = tmp_path / "again"
    assert main(["search", str(study), "--quiet", "--no-verify", "--predictor-file", str(pred_path),
                 "--output", str(again), "--n-trials", "4"]) == 0
    log = [json.loads(line) for line in (again / "screening.jsonl").read_text().splitlines()]
    assert any(r.get("kind") == "proposed" for r in log)


def test_damage_errors_fail_before_loading(study: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "damage.json"
    assert main(["predictor", "damage", str(study), "--centres", "flat", "--out", str(out)]) == 2
    assert "reference must be" in capsys.readouterr().err
    assert main(["predictor", "damage", str(study), "--targets", "1.2", "--out", str(out)]) == 2
    assert "budgets in (0, 1)" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "cache").exists()
    (tmp_path / "plan.json").write_text(json.dumps({"format": "something else"}))
    assert main(["predictor", "train", "--records", str(tmp_path / "plan.json"), "--damage",
                 str(tmp_path / "plan.json"), "--out", str(tmp_path / "p.json")]) == 2
    assert "not an allocsearch damage file" in capsys.readouterr().err
