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


def test_anchored_search_on_the_real_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One anchored round: the anchor's trial value is its exact sequential fitness, and the
    chosen plan is the best one measured exactly."""
    config = tmp_path / "seq.yaml"
    config.write_text(STUDY.replace("name: cli-70", "name: seq-70").replace("space: ramp", "space: blocks")
                      + "anchor: {rounds: 1, check: 1, start: {method: ramp, params: {slope: 0.3}}}\n")
    assert main(["search", str(config), "--quiet", "--set", "sampler=random"]) == 0
    out = capsys.readouterr().out
    assert "study seq-70: 1 anchored rounds" in out and "<- best" in out
    folder = tmp_path / "seq-70"
    record = json.loads((folder / "anchors.json").read_text())
    assert [m["role"] for m in record["measured"]] == ["anchor", "candidate"]
    best = min(record["measured"], key=lambda m: m["fitness"])
    assert record["best"] == best["plan"]
    plan = json.loads((folder / "best_plan.json").read_text())
    assert abs(plan["budget"] - 0.7) < 1e-6
    assert plan["provenance"]["exact_search_fitness"] == pytest.approx(best["fitness"])
    assert record["verified"]["best"]["ppl"] == pytest.approx(plan["provenance"]["verified_ppl"]["wanda"])
    assert main(["study", "report", str(folder / "r1"), "--no-plots"]) == 0
    assert "plan anchor_r1.json" in capsys.readouterr().out
