"""benchmarks/predictor_data.py --fresh and benchmarks/predictor_fresh.py: studies no predictor
was trained on, kept apart from the training records, and the sentence rendered from them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _common
import _fresh_render
import predictor_data
import predictor_fresh
from predictor_ceiling import reliability

from allocsearch.allocation import get_allocator
from allocsearch.predictor.records import PlanRecord, write_records
from tests.helpers import tiny_profile


def records(study: str, fitness: list[float]) -> list[PlanRecord]:
    plan = get_allocator("uniform").allocate(tiny_profile(), 0.6)
    return [PlanRecord(plan, f, tokens=2048, study=study, trial=i) for i, f in enumerate(fitness)]


def test_fresh_studies_take_their_own_seeds_and_folder(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["predictor_data.py", "--fresh", "--seeds", "2", "3"])
    with pytest.raises(SystemExit) as exc:
        predictor_data.main()
    assert exc.value.code == 2
    assert "must not share a seed with the training records' [0, 1, 2]" in capsys.readouterr().err
    args = argparse.Namespace(fresh=True, fidelity=2048, n_trials=40, device="cpu", dtype="float32")
    cfg = predictor_data.study_config("70-tpe", 3, args)
    assert cfg.output == _common.FRESH_RUNS / "70-tpe-s3" and cfg.name == "pred-70-tpe-s3"
    args.fresh = False
    assert predictor_data.study_config("70-tpe", 0, args).output == _common.PREDICTOR_RUNS / "70-tpe-s0"


def test_fresh_records_are_refused_when_missing_or_shared(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(predictor_fresh, "RESULTS", tmp_path)
    with pytest.raises(SystemExit, match=r"no predictor_records_fresh_cpu\.jsonl: run "
                                         r"benchmarks/predictor_data\.py --fresh first"):
        predictor_fresh.fresh_records("cpu")
    fresh = records("pred-60-x-s3", [10.0, 11.0])
    write_records(fresh, tmp_path / "predictor_records_fresh_cpu.jsonl")
    assert [(r.study, r.fitness) for r in predictor_fresh.fresh_records("cpu")] == [("pred-60-x-s3", 10.0),
                                                                                  ("pred-60-x-s3", 11.0)]
    predictor_fresh.check_fresh(records("pred-60-x-s0", [9.0]), fresh)
    with pytest.raises(SystemExit, match="share studies with the training records: pred-60-x-s3"):
        predictor_fresh.check_fresh(records("pred-60-x-s3", [9.0]), fresh)


def test_a_studys_spread_is_the_interquartile_range_of_its_log_fitness() -> None:
    recs = records("a", list(np.exp([0.0, 1.0, 2.0, 3.0, 4.0]))) + records("b", [5.0, 5.0, 5.0])
    rows: list[dict[str, Any]] = [{"study": "a"}, {"study": "b"}]
    predictor_fresh.spread(recs, rows)
    assert rows[0]["spread"] == pytest.approx(2.0, abs=1e-12)  # quartiles 1 and 3 of 0..4
    assert rows[1]["spread"] == 0.0


def test_the_fresh_sentence_names_the_lowest_studies_and_their_spread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def row(study: str, target: float, blend: float, spread: float) -> dict[str, object]:
        return {"study": study, "target": target, "n": 40, "default": blend - 0.1, "blend": blend,
                "additive": 0.5, "damage": 0.6, "spread": spread}

    studies = [row("pred-50-x-s3", 0.5, 0.1, 9.0), row("pred-60-a-s3", 0.6, 0.70, 0.04),
               row("pred-70-b-s3", 0.7, 0.95, 2.0), row("pred-75-c-s3", 0.75, 0.80, 0.5),
               row("pred-70-d-s3", 0.7, 0.92, 1.0)]
    rows = [{"ranking": k, "min": m, "median": 0.9, "below_0.9": b}
            for k, m, b in (("default", 0.6, 3), ("blend", 0.7, 2), ("additive", 0.5, 4), ("damage", 0.6, 4))]
    data = {"records": 1080, "fresh_records": 200, "default_model": "m", "tokens": 2048, "rows": rows,
            "studies": studies, "manifest": {"command": "python benchmarks/predictor_fresh.py"}}
    monkeypatch.setattr(_fresh_render, "records_result", lambda name: (data, ""))
    text = _fresh_render.render_sentence()
    assert "trained on all 1,080 committed records, the `m` model ranks the plans of 5 studies" in text
    assert ("at a lowest Spearman of 0.600 (median 0.900, 3 below 0.9; lowest pred-60-a-s3 0.600 (spread "
            "0.040), pred-75-c-s3 0.700 (spread 0.500)) over the 4 at 60-75%") in text
    # the 50% study is not judged: the blend's two lowest at 60-75%, and the median spread of those 4
    assert ("with measured damage 0.700 (median 0.900, 2 below 0.9; lowest pred-60-a-s3 0.700 (spread "
            "0.040), pred-75-c-s3 0.800 (spread 0.500)); the additive baseline 0.500 (median 0.900)") in text
    assert "median 0.750 over these 4. The held-out figures above" in text  # none measured again
    assert "| pred-75-c-s3 | 0.700 | 0.800 | 0.500 | 0.600 | 0.500 |" in _fresh_render.render_lines()
    studies[1] |= {"label vs second": 0.64, "ceiling": 0.8}
    studies[2] |= {"label vs second": 0.9801, "ceiling": 0.99}
    text = _fresh_render.render_sentence()
    assert "lowest pred-60-a-s3 0.700 (spread 0.040, ceiling 0.800), pred-75-c-s3" in text
    assert ("median 0.750 over these 4. Of the 2 studies whose plans were measured again on the next 2048 "
            "tokens, the ceiling is below 0.9 for 1") in text
    assert "reach against these labels); pred-60-a-s3 0.800 (blend 0.700). The held-out" in text
    studies[1]["ceiling"] = 0.5
    assert ("; pred-60-a-s3 0.500 (blend 0.700). The blend ranks pred-60-a-s3 above the ceiling: its damage "
            "curves are measured on the same 2048 tokens as the labels") in _fresh_render.render_sentence()
    studies[1]["ceiling"] = 0.8
    lines = _fresh_render.render_lines()
    assert "| pred-60-a-s3 | 0.600 | 0.700 | 0.500 | 0.600 | 0.040 | 0.640 | 0.800 |" in lines
    assert "| pred-75-c-s3 | 0.700 | 0.800 | 0.500 | 0.600 | 0.500 |  |  |" in lines
    monkeypatch.setattr(_fresh_render, "records_result", lambda name: (data, "its records differ"))
    assert _fresh_render.render_sentence().endswith("has no current result: its records differ.")


def test_retested_studies_gain_their_labels_reliability_and_ceiling() -> None:
    recs = records("a", [1.0, 2.0, 3.0, 4.0]) + records("b", [1.0, 2.0, 3.0])
    # a: the second measurement swaps one neighbouring pair; b: one plan not measured again
    seconds = {"a|0": 1.5, "a|1": 3.5, "a|2": 2.5, "a|3": 4.5, "b|0": 1.0, "b|1": 2.0}
    done = {k: {"label": 0.0, "second": v} for k, v in seconds.items()}
    rows: list[dict[str, Any]] = [{"study": "a"}, {"study": "b"}]
    predictor_fresh.add_reliability(recs, rows, done)
    assert rows[0]["label vs second"] == pytest.approx(0.8, abs=1e-12)  # 1 - 6 * 2 / (4 * 15)
    assert rows[0]["ceiling"] == pytest.approx(np.sqrt(0.8), abs=1e-12)
    assert rows[1] == {"study": "b"}
    low = reliability(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0]))
    assert low == {"label vs second": pytest.approx(-1.0), "ceiling": 0.0}


def test_a_shard_without_studies_to_retest_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["predictor_fresh.py", "--shard", "0/2"])
    with pytest.raises(SystemExit) as exc:
        predictor_fresh.main()
    assert exc.value.code == 2 and "--shard splits the plans of --retest" in capsys.readouterr().err
