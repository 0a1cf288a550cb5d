"""``allocsearch study curves``: a plan from the block loss curves, with the study's Evaluator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from allocsearch.allocation import get_allocator
from allocsearch.allocation.curves import BlockCurves, curve_plan
from allocsearch.cli import main
from allocsearch.evaluate.sensitivity import curve_mixes
from allocsearch.plan import Plan
from allocsearch.search import StudyConfig, study_evaluator
from tests.helpers import tiny_study_file


@pytest.fixture()
def study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ALLOCSEARCH_CACHE", str(tmp_path / "cache"))  # not the user's cache
    return tiny_study_file(tmp_path, "c")


def test_study_curves_writes_the_mix_of_lowest_fitness(study: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.json"
    args = ["study", "curves", str(study), "--prior", "ramp slope=0.2", "--mix", "0", "0.5", "1",
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "block curves: 2 blocks x 8 levels at 64 tokens each (1,088 tokens" in text
    plan = Plan.load(out)
    assert abs(plan.budget() - 0.6) < 1e-6 and plan.provenance["method"] == "curves"
    # The same mixes through the library: the written plan is the one of lowest fitness.
    [cached] = (tmp_path / "cache" / "block_curves").glob("*.json")
    curves = BlockCurves.from_dict(json.loads(cached.read_text()))
    config = StudyConfig.load(study)
    with study_evaluator(config, None, None, progress=False) as ev:
        ramp = get_allocator("ramp", slope=0.2).allocate(ev.profile, 0.6)
        rows = curve_mixes(ev, curves, 0.6, ramp, [0.0, 0.5, 1.0])
        assert rows[0].plan.sparsities() == pytest.approx(ramp.sparsities(), abs=1e-6)  # mix 0: the prior
        want = curve_plan(ev.identity, curves, 0.6, prior=ramp, mix=1.0)
        assert rows[2].plan.sparsities() == pytest.approx(want.sparsities(), abs=1e-9)
    best = min(rows, key=lambda r: r.fitness)
    assert plan.sparsities() == pytest.approx(best.plan.sparsities(), abs=1e-9)
    assert plan.provenance["params"]["mix"] == best.mix
    marked = [line for line in text.splitlines() if line.endswith("<- written")]
    assert marked == [f"{best.mix:>5.2f}  {best.fitness:.4f}  <- written"]


def test_study_curves_errors_fail_before_loading(study: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.json"
    assert main(["study", "curves", str(study), "--mix", "0.5", "--out", str(out)]) == 2
    assert "needs a --prior" in capsys.readouterr().err
    assert main(["study", "curves", str(study), "--mix", "1.5", "--prior", "uniform", "--out", str(out)]) == 2
    assert "shares in [0, 1]" in capsys.readouterr().err
    assert main(["study", "curves", str(study), "--prior", "ramp colour=red", "--out", str(out)]) == 2
    assert main(["study", "curves", str(study), "--around", "flat", "--out", str(out)]) == 2
    assert "reference must be" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_study_curves_around_a_plan(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.json"
    assert main(["study", "curves", str(study), "--around", "uniform", "--out", str(out), "--quiet"]) == 0
    assert "block curves: 2 blocks x 11 levels" in capsys.readouterr().out
    [cached] = (tmp_path / "cache" / "block_curves").glob("*.json")
    curves = BlockCurves.from_dict(json.loads(cached.read_text()))
    assert curves.around == "uniform" and curves.levels[0] == 0.3
    plan = Plan.load(out)
    assert abs(plan.budget() - 0.6) < 1e-6 and plan.provenance["curves"]["around"] == "uniform"
    assert min(plan.block_sparsity()) >= 0.3 - 1e-9  # never below the lowest level measured
