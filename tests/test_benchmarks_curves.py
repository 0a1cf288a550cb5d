"""benchmarks/curves.py: ratios paired by draw against the best prior, and its rendered block."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import curves


def _row(ppl: list[float], other: float) -> dict[str, Any]:
    return {"ppl": sum(ppl) / len(ppl), "ppl_other": other, "draws": [{"ppl": p} for p in ppl]}


def test_ratios_are_paired_by_draw() -> None:
    prior = _row([100.0, 200.0, 300.0], 50.0)
    r = curves.paired(_row([90.0, 210.0, 150.0], 25.0), prior)
    assert r["ratio_draws"] == pytest.approx([0.9, 1.05, 0.5])
    assert r["lower_on"] == 2  # the second draw is higher: not better on every draw
    assert r["ratio"] == pytest.approx(150.0 / 200.0) and r["ratio_other"] == pytest.approx(0.5)


def _result() -> dict[str, Any]:
    prior = _row([100.0, 100.0, 100.0], 50.0) | {"label": "ramp slope=0.2"}
    chosen = {"mix": 0.5, "search_fitness": 80.0} | _row([70.0, 70.0, 70.0], 40.0)
    chosen |= curves.paired(chosen, prior)
    result = {
        "suite": "wanda_modules", "pruner": "wanda", "target": 0.7, "study": "smollm2-70-modules.yaml",
        "device": "cpu", "environment": {"threads": 1}, "best_prior": prior, "chosen_mix": 0.5,
        "curves": {"tokens": 2048, "levels": [0.5, 0.9], "delta": [[0.1, 0.2]] * 30},
        "curve_tokens": 124928, "curve_seconds": 600.0, "mix_tokens": 16384,
        "rows": [{"mix": 1.0, "search_fitness": 90.0}, chosen],
        "searched": {"tag": "ref_long", "rows": [{"seed": "0"}], "ratio_median": 0.8,
                     "search_tokens_median": 1000000},
        "manifest": {"command": "python benchmarks/curves.py", "commit": "abcdef0123", "seeds": [0, 1, 2]},
    }
    return result


def test_the_block_names_the_chosen_mix_and_judges_it_against_the_floor() -> None:
    result = _result()
    block = curves._render_one(result, {(0.7, "wanda"): 0.12})
    assert "| 0.5 (chosen) | 80.00 | 70.00 [70.00, 70.00, 70.00] | **0.700** | 3/3 | 40.00 | 0.800 |" in block
    assert "| 1 | 90.00 | - | - | - | - | - |" in block
    assert "0.700x on pydoc, beyond the noise floor (12.0%" in block
    assert "median 0.800x" in block and "1,000,000 search tokens" in block
    assert "within the noise floor (35.0%" in curves._render_one(result, {(0.7, "wanda"): 0.35})


def test_the_readme_sentence_reads_every_pruners_result(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import report

    monkeypatch.setattr(curves, "RESULTS", tmp_path)
    monkeypatch.setattr(report, "noise_floors", lambda: {(0.7, "wanda"): 0.12})
    assert curves.render_readme().startswith("Not measured yet")
    (tmp_path / "curves_wanda_cpu.json").write_text(json.dumps(_result()))
    text = curves.render_readme()
    assert "with Wanda at 70%, **0.700x** the best prior (ramp slope=0.2) on pydoc, lower on 3 of 3" in text
    assert "0.800x on the licences (beyond its noise floor of 12.0%), from 141,312 search tokens" in text


def test_a_prior_verified_in_the_same_run_is_named_so_with_the_suites_row_beside_it() -> None:
    """Results that verified the best prior themselves say so and show the suite's row of the
    same plan; searched rows measured under other numerics are counted as such."""
    old = curves._render_one(_result(), {(0.7, "wanda"): 0.12})
    assert "is the `wanda_modules` suite's row: 100.00 [100.00, 100.00, 100.00]" in old
    assert "provisional until measured in one run" in old
    result = _result() | {"suite_prior": _row([90.0, 95.0, 100.0], 45.0) | {"label": "ramp slope=0.2"}}
    result["searched"]["rows"] = [{"seed": "0", "same_numerics": True}, {"seed": "1", "same_numerics": False}]
    block = curves._render_one(result, {(0.7, "wanda"): 0.12})
    assert ("(ramp slope=0.2) verified again in this run: 100.00 [100.00, 100.00, 100.00] pydoc, "
            "50.00 licences (the suite's committed row: 95.00 [90.00, 95.00, 100.00] pydoc, 45.00 "
            "licences)") in block
    assert "1 of 2 seeds verified in runs that recorded other or no numerics" in block
    assert "verified again in the same run as the curves plans" in block
    assert "provisional" not in block
