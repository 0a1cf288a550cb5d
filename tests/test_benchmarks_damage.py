"""benchmarks/predictor_damage.py: the held-out blend of the default model with a damage the
features cannot see, the per-study rows and summary, and the rendered sentence and table."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _common
import _damage_render as render
import predictor_damage as damage_bench

from allocsearch.allocation.curves import BlockCurves
from allocsearch.budget import random_plan
from allocsearch.predictor import FeatureTable, PlanRecord
from allocsearch.predictor.damage import CentredCurves, DamageCurves
from tests.helpers import tiny_profile


def zigzag_curves(table: FeatureTable) -> DamageCurves:
    """Curves around the tiny model's uniform 70% plan that rise and fall with each block's
    sparsity: a damage no smooth function of the removed mass follows."""
    zig = BlockCurves((0.5, 0.6, 0.8, 0.9), ((0.3, -0.4, 0.5, -0.2), (-0.3, 0.6, -0.5, 0.2)), 64,
                      model=table.identity.fingerprint, around="uniform")
    return DamageCurves((CentredCurves(0.7, "uniform", (0.7, 0.7), zig),))


def damaged_studies(table: FeatureTable, curves: DamageCurves) -> list[PlanRecord]:
    """Four studies at 70% whose log-fitness is the removed score mass plus the damage."""
    rng = np.random.default_rng(0)
    records = []
    for s in range(4):
        for i in range(12):
            plan = random_plan(table.identity, 0.7, block_spread=0.2, seed=100 * s + i)
            removed = table.features([plan])[0][table.names.index("score_mean")]
            log_fitness = 3.0 + removed + curves.of_plans([plan])[0] + rng.normal(0, 0.01)
            records.append(PlanRecord(plan, float(np.exp(log_fitness)), "ppl", 128, f"s{s}", i, "random"))
    return records


def test_the_blend_ranks_by_the_damage_the_model_learns_too_coarsely() -> None:
    table = FeatureTable.from_profile(tiny_profile())
    curves = zigzag_curves(table)
    records = damaged_studies(table, curves)
    flat = DamageCurves((CentredCurves(0.5, "uniform", (0.5, 0.5), replace(
        curves.entries[0].curves, delta=((0.0, 0.1, 0.2, 0.3), (0.0, 0.1, 0.2, 0.3)))),))
    out = damage_bench.held_out(table, records, {"blend": lambda t: curves, "flat": lambda t: flat},
                                lambda r: r.study, members=2, seed=0)
    ranked = out | {"damage": curves.of_plans([r.plan for r in records])}
    rows = damage_bench.study_rows(records, {"default": out["model"]} | ranked)
    assert [r["study"] for r in rows] == ["s0", "s1", "s2", "s3"] and {r["n"] for r in rows} == {12}
    assert all(r["damage"] > 0.9 and r["blend"] >= r["default"] - 1e-9 for r in rows)
    assert np.mean([r["blend"] for r in rows]) > np.mean([r["default"] for r in rows]) + 0.05
    # A variant's curves are its own: these rise with the budget only, and add nothing.
    assert np.mean([r["flat"] for r in rows]) < np.mean([r["blend"] for r in rows]) - 0.05
    best = damage_bench.summary(rows)
    assert best["blend"]["min"] == min(r["blend"] for r in rows)
    assert best["default"]["below_0.9"] == sum(r["default"] < 0.9 for r in rows)


def test_other_targets_leaves_out_a_studys_own_target() -> None:
    table = FeatureTable.from_profile(tiny_profile())
    zig = zigzag_curves(table).entries[0]
    low = replace(zig, target=0.5, centre=(0.5, 0.5))
    curves = DamageCurves((low, zig))
    assert damage_bench.other_targets(curves, 0.7).entries == (low,)
    records = damaged_studies(table, DamageCurves((zig,)))[:3]
    want = DamageCurves((low,)).of_plans([r.plan for r in records])
    assert damage_bench.damage_elsewhere(curves, records) == pytest.approx(want, abs=1e-12)


def test_rankings_name_every_variant_and_each_cheaper_set_of_curves() -> None:
    table = FeatureTable.from_profile(tiny_profile())
    zig = zigzag_curves(table).entries[0]
    low = replace(zig, target=0.5, centre=(0.5, 0.5))
    main = DamageCurves((low, zig))
    cheap = DamageCurves((low, replace(zig, curves=replace(zig.curves, tokens=16))))
    records = damaged_studies(table, main)
    ranked = damage_bench.rankings(table, records, {64: main, 16: cheap}, members=2, seed=0)
    assert list(ranked) == ["default", "blend", "default kind out", "blend kind out",
                            "blend kind out other target", "blend kind out, 16 tokens", "damage",
                            "damage other target", "damage, 16 tokens"]
    plans = [r.plan for r in records]
    assert ranked["damage, 16 tokens"] == pytest.approx(cheap.of_plans(plans), abs=1e-12)
    # All studies are at 70%: kind out is study out here, and the cheaper set's curves are the same.
    assert ranked["blend kind out, 16 tokens"] == pytest.approx(ranked["blend kind out"], abs=1e-9)
    assert ranked["damage other target"] == pytest.approx(DamageCurves((low,)).of_plans(plans), abs=1e-12)


def test_the_summary_is_over_the_60_to_75_percent_studies() -> None:
    rows = [{"study": "a", "target": 0.5, "n": 40, "damage": 0.1, "blend": 0.2},
            {"study": "b", "target": 0.6, "n": 40, "damage": 0.95, "blend": 0.85},
            {"study": "c", "target": 0.75, "n": 40, "damage": 0.85, "blend": 0.93}]
    best = damage_bench.summary(rows)
    assert list(best) == ["damage", "blend"]
    assert best["damage"] == {"min": 0.85, "median": pytest.approx(0.9), "below_0.9": 1}
    assert best["blend"] == {"min": 0.85, "median": pytest.approx(0.89), "below_0.9": 1}


def _summary_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"ranking": k} | v for k, v in damage_bench.summary(rows).items()]


def _result() -> dict[str, Any]:
    rows = [{"study": f"s{i}", "target": t, "n": 40, "default": 0.80 + i / 100, "blend": 0.88 + i / 100,
             "default kind out": 0.79 + i / 100, "blend kind out": 0.87 + i / 100, "damage": 0.7 + i / 100}
            for i, t in enumerate((0.5, 0.6, 0.7))]
    return {"records_digest": "abc", "default_model": "m", "centres": ["uniform", "ramp slope=0.3"],
            "targets": [0.6, 0.7], "studies": rows, "rows": _summary_rows(rows),
            "tokens": [2048], "cost": {"2048": {"evaluations": 362, "tokens": 745472, "study_tokens": 81920,
                                                "seconds": 1800.0}},
            "manifest": {"command": "python benchmarks/predictor_damage.py"}}


def test_the_sentence_and_table_render_the_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setattr(_common, "committed_records_digest", lambda: "abc")
    assert render.render_sentence() == "" and render.render_lines() == []
    (tmp_path / render.NAME).write_text(json.dumps(_result()))
    text = render.render_sentence()
    assert "around `uniform` and `ramp slope=0.3` at 60/70%" in text
    assert "362 evaluations, 745,472 search tokens, 9.1 times a 40-plan predictor study's, 30 min" in text
    assert "from 0.800 to 0.880 with each study's kind held out (2 and 2 studies below 0.9)" in text
    assert "from 0.810 to 0.890 with the study alone held out" in text
    assert "lowest 0.710 (median 0.715). " in text and "not met with it either" in text
    assert "Of the" not in text  # no label-noise check to compare with
    ceiling = {"records_digest": "abc", "manifest": {"commit": "c"},
               "rows": [{"study": "s1", "ceiling": 0.95}, {"study": "s0", "ceiling": 0.99}]}
    (tmp_path / "predictor_ceiling_cpu.json").write_text(json.dumps(ceiling))
    assert "(median 0.715). Of the 2 studies it leaves below 0.9, the label-noise check measured 1: the " \
           "blend against the ceiling their labels' noise sets (`benchmarks/predictor_ceiling.py`), s1 " \
           "0.880 of 0.950. The 0.9 bar" in render.render_sentence()
    lines = render.render_lines()
    assert "| s2 | 0.820 | 0.900 | 0.810 | 0.890 | 0.720 |" in lines
    assert lines[-1].startswith("Over the 60-75% studies: default min 0.810, median 0.815, 2 below 0.9;")
    # A run on several targets also reads each study's plans from the other targets' curves.
    r = _result()
    for row in r["studies"]:
        row |= {"blend kind out other target": row["blend kind out"] - 0.05, "damage other target": 0.5}
    r["rows"] = _summary_rows(r["studies"])
    (tmp_path / render.NAME).write_text(json.dumps(r))
    assert "nearest other target instead, as a study at a target without curves would, the blend's " \
           "lowest is 0.830 (2 below 0.9, kind held out)." in render.render_sentence()
    assert "| s2 | 0.820 | 0.900 | 0.810 | 0.890 | 0.840 | 0.720 | 0.500 |" in render.render_lines()
    # Curves on fewer tokens too: their cost and the blend's lowest with them.
    for row in r["studies"]:
        row |= {"blend kind out, 512 tokens": row["blend kind out"] - 0.01, "damage, 512 tokens": 0.6}
    r["rows"] = _summary_rows(r["studies"])
    r["tokens"] = [2048, 512]
    r["cost"]["512"] = {"evaluations": 362, "tokens": 186368, "study_tokens": 81920, "seconds": 600.0}
    (tmp_path / render.NAME).write_text(json.dumps(r))
    assert "; with curves on 512 tokens each (362 evaluations, 186,368 search tokens, 2.3 times a " \
           "40-plan predictor study's, 10 min of one CPU core), the blend's lowest is 0.870 (2 below 0.9, " \
           "kind held out). " in render.render_sentence()
    row = "| s2 | 0.820 | 0.900 | 0.810 | 0.890 | 0.840 | 0.720 | 0.500 | 0.880 | 0.600 |"
    assert row in render.render_lines()
    monkeypatch.setattr(_common, "committed_records_digest", lambda: "other")
    assert "no current result: its records differ" in render.render_sentence()
    assert "*Not current: its records differ from the committed ones.*" in render.render_lines()[1]
