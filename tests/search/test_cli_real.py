"""``allocsearch search`` and ``allocsearch study report`` on SmolLM2-135M (small settings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from allocsearch.cli import main

pytestmark = pytest.mark.real_model

STUDY = """
schema_version: 1
name: cli-70
model: smollm2-135m
target: 0.7
data: {nsamples: 4, seqlen: 64}
space: ramp
evaluator: {seqlen: 128, fidelities: [128, 256]}
sampler: tpe
n_trials: 3
warm_start: [{method: ramp, params: {slope: 0.3}}]
verify: {top: 1, nsamples: 2, seqlen: 64, eval_windows: 2}
"""


def test_search_then_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "cli-70.yaml"
    config.write_text(STUDY)
    assert main(["search", str(config), "--quiet", "--set", "seed=1"]) == 0
    out = capsys.readouterr().out
    # The best trial, the best searched one and the ramp family's best: two plans, whichever wins.
    assert "study cli-70: 3 complete" in out and "2 exact verifications" in out
    folder = tmp_path / "cli-70"
    plan = json.loads((folder / "best_plan.json").read_text())
    assert abs(plan["budget"] - 0.7) < 1e-6 and len(plan["modules"]) == 210
    # Re-running the same config resumes: no new trials, the same best plan.
    assert main(["search", str(config), "--quiet", "--set", "seed=1"]) == 0
    assert "study cli-70: 3 complete" in capsys.readouterr().out
    assert main(["study", "report", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "ramp slope=0.3" in text
    assert (folder / "history.png").stat().st_size > 10_000
    assert (folder / "best_vs_priors.png").stat().st_size > 10_000


def test_search_config_errors_fail_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(STUDY.replace("space: ramp", "space: nowhere"))
    assert main(["search", str(config), "--quiet"]) == 2
    assert "no search space 'nowhere'" in capsys.readouterr().err
    assert main(["search", str(tmp_path / "missing.yaml")]) == 2
    assert "no study config" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
