"""benchmarks/predictor_ceiling.py: labels on both halves, the per-study rows (in-sample and
trained-on-both columns) and the learning curve, on a tiny model's feature table."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _common
import _efficiency_render as efficiency
import _predictor_render as render
import _render_text as render_text
import predictor
import predictor_ceiling as ceiling

from allocsearch.allocation import get_allocator
from allocsearch.budget import random_plan
from allocsearch.predictor import FeatureTable, PlanRecord
from allocsearch.predictor.base import DEFAULT_MODEL
from allocsearch.predictor.evaluation import lighter_plan
from allocsearch.predictor.records import write_records
from tests.helpers import tiny_profile


@pytest.fixture(scope="module")
def table() -> FeatureTable:
    return FeatureTable.from_profile(tiny_profile())


def studies(table: FeatureTable, n_studies: int = 4, per: int = 12) -> list[PlanRecord]:
    """``n_studies`` studies at 70% whose fitness grows with the removed score mass."""
    rng = np.random.default_rng(0)
    out = []
    for s in range(n_studies):
        for i in range(per):
            plan = random_plan(table.identity, 0.7, block_spread=0.2, seed=100 * s + i)
            removed = table.features([plan])[0][table.names.index("score_mean")]
            out.append(PlanRecord(plan, float(np.exp(3.0 + 8.0 * removed + rng.normal(0, 0.01))), "ppl", 128,
                                  f"s{s}", i, "random"))
    return out


def second_halves(records: list[PlanRecord]) -> dict[str, Any]:
    """A second measurement a little off the label, as the disjoint tokens give."""
    return {ceiling.plan_key(r): {"label": r.fitness, "again": r.fitness,
                              "second": r.fitness * (1.0 + 0.01 * (i % 3))} for i, r in enumerate(records)}


def test_both_halves_is_the_geometric_mean_on_twice_the_tokens(table: FeatureTable) -> None:
    records = studies(table, 2, 3)
    done = {ceiling.plan_key(r): {"second": 4.0 * r.fitness} for r in records}
    both = ceiling.both_halves(records, done)
    assert both is not None
    assert [b.fitness for b in both] == pytest.approx([2.0 * r.fitness for r in records], rel=1e-12)
    assert {b.tokens for b in both} == {256} and [b.plan for b in both] == [r.plan for r in records]
    del done[ceiling.plan_key(records[-1])]
    assert ceiling.both_halves(records, done) is None


def test_rows_have_the_in_sample_and_trained_on_both_columns_only_when_measured(table: FeatureTable) -> None:
    records = studies(table)
    done = second_halves(records)
    rows = ceiling.study_rows(table, records, done, members=2, seed=0)
    assert [r["study"] for r in rows] == ["s0", "s1", "s2", "s3"]
    for r in rows:
        assert r["ceiling"] == pytest.approx(math.sqrt(max(r["label vs second"], 0.0)), abs=1e-12)
        assert r[f"{DEFAULT_MODEL} in-sample vs label"] > 0.8  # the fitness is a function of a feature
        assert -1.0 <= r[f"{DEFAULT_MODEL} trained on both vs both"] <= 1.0
    del done[ceiling.plan_key(records[0])]  # s0 not fully measured: no row, and no relabelled training
    rows = ceiling.study_rows(table, records, done, members=2, seed=0)
    assert [r["study"] for r in rows] == ["s1", "s2", "s3"]
    assert all(f"{DEFAULT_MODEL} trained on both vs both" not in r for r in rows)


def test_learning_curve_has_each_size_and_all_the_other_studies(table: FeatureTable) -> None:
    records = studies(table)
    curve = ceiling.learning_curve(table, records, sizes=[1, 2, 3], subsets=3, members=1, seed=0)
    # Sizes below 2 or not below the 3 other studies are dropped; all 3 others once.
    assert [(c["study"], c["studies trained on"], c["subsets"]) for c in curve] == [
        (s, k, n) for s in ("s0", "s1", "s2", "s3") for k, n in ((2, 3), (3, 1))]
    for c in curve:
        assert c["min"] <= c["mean"] <= c["max"]
    full = [c for c in curve if c["studies trained on"] == 3]
    assert all(c["min"] == c["max"] for c in full)


def test_the_learning_curve_renders_one_row_per_study_and_a_column_per_size() -> None:
    c = {"default_model": "typed_target", "curve_subsets": 10, "learning_curve": [
        {"study": "a", "studies trained on": 4, "subsets": 10, "mean": 0.8, "min": 0.7, "max": 0.9},
        {"study": "a", "studies trained on": 8, "subsets": 1, "mean": 0.85, "min": 0.85, "max": 0.85},
        {"study": "b", "studies trained on": 8, "subsets": 1, "mean": 0.95, "min": 0.95, "max": 0.95}]}
    lines = render._curve_lines(c)
    assert lines[-4:] == ["| study | k = 4 | k = 8 |", "| --- | --- | --- |",
                          "| a | 0.800 [0.700, 0.900] | 0.850 [0.850, 0.850] |",
                          "| b |  | 0.950 [0.950, 0.950] |"]
    assert "10 random choices" in lines[1]
    assert render._curve_lines({"default_model": "x"}) == []


def test_the_minimum_is_over_the_60_to_75_percent_studies_only() -> None:
    rows = [{"study": "a", "target": 0.5, "n": 40, "ceiling": 0.5, "m vs label": 0.1},
            {"study": "b", "target": 0.6, "n": 40, "ceiling": 0.97, "m vs label": 0.8},
            {"study": "c", "target": 0.75, "n": 40, "ceiling": 0.95, "m vs label": 0.9,
             "m in-sample vs label": 0.7}]
    assert ceiling.minimum_over_deciding(rows) == {"ceiling": 0.95, "m vs label": 0.8,
                                                   "m in-sample vs label": 0.7}
    assert ceiling.minimum_over_deciding(rows[:1]) == {}


def test_the_readme_sentence_names_the_weakest_60_to_75_percent_study_and_its_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = "typed_target"
    rows = [{"study": "low", "target": 0.5, "label vs second": 0.99, "ceiling": 0.99, f"{m} vs label": 0.5},
            {"study": "w", "target": 0.7, "label vs second": 0.91, "ceiling": 0.954, f"{m} vs label": 0.859,
             f"{m} in-sample vs label": 0.86, f"{m} trained on both vs both": 0.856}]
    curve = [{"study": "w", "studies trained on": k, "mean": v} for k, v in ((4, 0.847), (8, 0.859))]
    (tmp_path / "predictor_ceiling_cpu.json").write_text(json.dumps(
        {"default_model": m, "rows": rows, "learning_curve": curve}))
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    text = render._ceiling_sentence()
    assert "label-noise check of the `typed_target` model (the default when measured) on 2 studies" in text
    monkeypatch.setattr(render, "DEFAULT_MODEL", m)
    assert "label-noise check of the `typed_target` model on 2 studies" in render._ceiling_sentence()
    assert "weakest 60-75% study (w)" in text and "ranks them at 0.860" in text
    assert "trained on 4 or all 8 other studies, at 0.847, 0.859" in text
    assert "bring it to 0.9" in text
    curve[-1]["mean"] = 0.91  # more studies would reach the bar: no verdict
    (tmp_path / "predictor_ceiling_cpu.json").write_text(json.dumps(
        {"default_model": m, "rows": rows, "learning_curve": curve}))
    assert "bring it to 0.9" not in render._ceiling_sentence()
    # Some studies re-measured (--studies): the model is scored, not trained, on both halves.
    scored = {k: v for k, v in rows[1].items() if "trained on both" not in k} | {f"{m} vs both": 0.87}
    some = [rows[0], scored]
    (tmp_path / "predictor_ceiling_cpu.json").write_text(json.dumps({"default_model": m, "rows": some}))
    text = render._ceiling_sentence()
    assert "scored against labels of twice the tokens, at 0.870" in text and "trained and scored" not in text
    (tmp_path / "predictor_ceiling_cpu.json").write_text(json.dumps({"default_model": m, "rows": rows[:1]}))
    assert render._ceiling_sentence() == ""


def test_the_quality_results_show_one_spearman_row_per_study_and_a_column_per_model() -> None:
    q = {"studies": ["s1", "s2"], "rows": [
        {"model": "m1", "group": "all", "plans": "all", "spearman": 0.5},
        {"model": "m1", "group": "study", "plans": "s1", "spearman": 0.91},
        {"model": "m2", "group": "study", "plans": "s1", "spearman": 0.8},
        {"model": "m1", "group": "study", "plans": "s2", "spearman": 0.7},
        {"model": "m2", "group": "study", "plans": "s2", "spearman": -0.25}]}
    assert render._study_lines(q) == ["| study | m1 | m2 |", "| --- | --- | --- |",
                                         "| s1 | 0.910 | 0.800 |", "| s2 | 0.700 | -0.250 |"]


def test_the_readme_sentence_gives_the_kind_held_out_minimum_the_default_was_chosen_on() -> None:
    best = {"model": "m", "min_spearman": 0.76, "min_spearman_kind_out": 0.75, "mean_kendall": 0.8,
            "recall_70": 0.7, "kendall_above_additive": True}
    text = render._quality_sentence({"default_model": "m", "studies": ["a", "b", "c"]}, best, "", "")
    assert "among the models that extrapolate" in text
    assert "was 0.750 with the other seeds of the study's kind held out too and 0.760 without" in text
    assert "Spearman >= 0.9 on every such study not met" in text
    older = {k: v for k, v in best.items() if k != "min_spearman_kind_out"}  # a result before the split
    assert "its lowest Spearman over the 60-75% studies was 0.760," in \
        render._quality_sentence({"default_model": "m", "studies": ["a"]}, older, "", "")


def test_the_extrapolation_check_passes_a_ridge_and_fails_plain_trees(table: FeatureTable) -> None:
    records = studies(table, 4, 12)  # fitness grows with the removed score mass, all at 70%
    light = lighter_plan(records[0].plan)
    before = records[0].plan.sparsities().values()
    assert all(v == pytest.approx(max(0.0, s - 0.05))
               for v, s in zip(light.sparsities().values(), before, strict=True))
    assert light.target < records[0].plan.target
    ridge = predictor.extrapolation(table, records, "additive", 2, 0)
    trees = predictor.extrapolation(table, records, "xgboost", 2, 0)
    assert set(ridge["margins"]) == {"0.7"} and ridge["extrapolates"] and ridge["margins"]["0.7"] >= 0.01
    assert not trees["extrapolates"] and trees["margins"]["0.7"] < 0.01


def test_the_default_is_chosen_with_the_kind_held_out_among_models_that_extrapolate() -> None:
    # choose_default reads only .study and .target of the records
    records = [type("R", (), {"study": f"pred-70-tpe-s{i}", "target": 0.7})() for i in range(2)]
    assert predictor.study_kind(records[1]) == "pred-70-tpe"

    def model(loso: float, kind_out: float, extrapolates: bool) -> dict[str, Any]:
        per = {r.study: {"spearman": loso} for r in records}
        out = {r.study: {"spearman": kind_out} for r in records}
        target = {"0.7": {"kendall": 0.5, "top10_recall": 0.7}}
        return {"per_study": per, "per_target": target, "kind_held_out": {"per_study": out},
                "extrapolation": {"extrapolates": extrapolates}}

    per_kind = {"trees": model(0.95, 0.1, True), "ridge": model(0.8, 0.79, True),
                "flat": model(0.99, 0.99, False)}
    decision = predictor.choose_default(per_kind, records)
    assert decision["default_model"] == "ridge"  # trees lead held out alone, flat does not extrapolate


def test_a_predictor_result_on_other_records_than_the_committed_ones_is_marked_not_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setattr(_common, "ARCHIVE", tmp_path / "archive")
    plan = get_allocator("uniform").allocate(tiny_profile(), 0.7)
    records = [PlanRecord(plan, 100.0 + i, tokens=2048, study="pred-70-tpe-s0", trial=i) for i in range(3)]
    write_records(records, tmp_path / "predictor_records_cpu.jsonl")
    digest = _common.records_digest(records)
    assert digest == _common.committed_records_digest() and digest != _common.records_digest(records[:2])
    assert render_text.records_note({"records_digest": digest}) == ""
    assert render_text.records_note({}) == ""  # written before results recorded it
    note = render_text.records_note({"records_digest": "0123abcd"})
    assert "another records file (digest 0123abcd" in note and digest in note
    m = "typed_target"
    rows = [{"study": "w", "target": 0.7, "label vs second": 0.91, "ceiling": 0.954, f"{m} vs label": 0.859}]
    result = {"default_model": m, "rows": rows, "manifest": {"commit": "b12aea4421ff"}}
    (tmp_path / "predictor_ceiling_cpu.json").write_text(json.dumps(result | {"records_digest": "0123abcd"}))
    assert render._ceiling_sentence().endswith("has no result on the current records: its records differ "
                                               "from the committed ones.")
    (tmp_path / "predictor_ceiling_cpu.json").write_text(json.dumps(result | {"records_digest": digest}))
    assert "weakest 60-75% study (w)" in render._ceiling_sentence()
    (tmp_path / "archive").mkdir()
    (tmp_path / "predictor_ceiling_cpu.json").rename(tmp_path / "archive" / "predictor_ceiling_cpu.json")
    text = render._ceiling_sentence()
    assert "no result on the current records: its last run (commit b12aea4421, 1 studies)" in text
    assert "weakest" not in text


def test_the_efficiency_goal_verdict_compares_the_pretrained_arm_with_evopress_against_the_noise_floor(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    import report

    monkeypatch.setattr(report, "noise_floors", lambda: {(0.7, "wanda"): 0.12})
    e = {"target": 0.7, "verify": {"pruner": "wanda"}}

    def stats(evals: list[int | None], pre: float, evo: float | None) -> dict[tuple[str, str], Any]:
        reached = sorted(v for v in evals if v is not None)
        median = reached[len(reached) // 2] if reached else None
        reach = {"runs": len(evals), "reached": len(reached), "median": median}
        out = {("pretrained", "evals_to_ramp"): reach,
               ("pretrained", "best_wanda_ppl"): {"median": pre}}
        return out | ({("evopress", "best_wanda_ppl"): {"median": evo}} if evo is not None else {})

    text = efficiency._goal(e, stats([3, 3, 4], 130.0, 155.0))
    assert "within 10 evaluations met" in text and "0.839 times" in text
    assert "lower beyond the noise floor (floor 12.0% at 70%, wanda)" in text
    assert "within noise of it" in efficiency._goal(e, stats([3, 3, 4], 137.0, 155.0))
    assert "higher beyond the noise floor" in efficiency._goal(e, stats([3, 3, 4], 180.0, 155.0))
    assert "within 10 evaluations not met" in efficiency._goal(e, stats([3, 12, 14], 150.0, 155.0))
    assert "within 10 evaluations not met" in efficiency._goal(e, stats([3, 3, None], 150.0, 155.0))
    assert efficiency._goal(e, stats([3, 3, 3], 150.0, None)).endswith("within 10 evaluations met.")
    both = stats([3, 3, 4], 130.0, 155.0) | {("pretrained", "best_wanda_ppl_other"): {"median": 200.0},
                                             ("evopress", "best_wanda_ppl_other"): {"median": 250.0}}
    assert efficiency._goal(e, both).endswith(
        "(floor 12.0% at 70%, wanda); on the other domain 0.800 times (no noise floor measured there).")
    one = stats([3, 3, 4], 130.0, 155.0) | {("pretrained", "best_wanda_ppl_other"): {"median": 200.0}}
    assert "other domain" not in efficiency._goal(e, one)


def test_the_goal_counts_the_draws_where_the_pretrained_arm_verifies_below_evopress(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paired by calibration draw: each draw's median over the seeds of one arm against the
    other's on the same draw; no count with one draw or with draws the arms do not share."""
    import report

    monkeypatch.setattr(report, "noise_floors", lambda: {(0.7, "wanda"): 0.12})

    def run(arm: str, draws: dict[str, float]) -> dict[str, Any]:
        return {"arm": arm, "best_wanda_draws": draws}

    runs = [run("pretrained", {"0": 130.0, "1": 150.0, "2": 140.0}),
            run("pretrained", {"0": 140.0, "1": 160.0, "2": 150.0}),
            run("pretrained", {"0": 120.0, "1": 170.0, "2": 130.0}),  # medians 130, 160, 140
            run("evopress", {"0": 150.0, "1": 155.0, "2": 145.0}),
            run("tpe", {"0": 100.0, "1": 100.0, "2": 100.0})]
    e = {"target": 0.7, "verify": {"pruner": "wanda"}, "runs": runs}
    assert efficiency._paired_draws(e, "pretrained", "evopress") == (2, 3)
    assert efficiency._paired_draws(e, "evopress", "pretrained") == (1, 3)
    stats: dict[tuple[str, str], dict[str, Any]] = {
        ("pretrained", "evals_to_ramp"): {"runs": 3, "reached": 3, "median": 3},
        ("pretrained", "best_wanda_ppl"): {"median": 140.0},
        ("evopress", "best_wanda_ppl"): {"median": 150.0}}
    assert "0.933 times the EvoPress-style sampler's, lower on 2 of 3 calibration draws, within noise" \
        in efficiency._goal(e, stats)
    one = {**e, "runs": [run("pretrained", {"0": 1.0}), run("evopress", {"0": 2.0})]}
    assert efficiency._paired_draws(one, "pretrained", "evopress") is None
    other = {**e, "runs": [run("pretrained", {"0": 1.0, "1": 1.0}), run("evopress", {"0": 2.0, "2": 2.0})]}
    assert efficiency._paired_draws(other, "pretrained", "evopress") is None
    assert "calibration draws" not in efficiency._goal(other, stats)


def test_a_resumed_partial_keeps_only_rows_whose_label_is_their_records_fitness(table: FeatureTable) -> None:
    records = studies(table, 2, 3)
    done = second_halves(records)
    assert ceiling.current_rows(done, records) == done
    # The records measured again: same study and trial names, other plans and fitness.
    redone = [dataclasses.replace(r, fitness=r.fitness * 1.5) if r.study == "s1" else r for r in records]
    kept = ceiling.current_rows(done | {"gone|0": {"label": 1.0}}, redone)
    assert set(kept) == {ceiling.plan_key(r) for r in records if r.study == "s0"}


def test_the_kept_arms_note_names_the_commits_of_kept_and_measured_runs() -> None:
    runs = [{"arm": "tpe", "seed": 0, "kept_from": "a" * 40, "commit": "a" * 40},
            {"arm": "pretrained", "seed": 0, "commit": "b" * 40},
            {"arm": "online", "seed": 0, "commit": "c" * 40}]
    text = efficiency._kept_note({"runs": runs})[1]
    assert text.startswith("Arms tpe: kept") and f"measured at commit {'a' * 10})" in text
    assert text.endswith(f"The other arms ran at commit {'b' * 10}, {'c' * 10}.")
    assert efficiency._kept_note({"runs": runs[1:]}) == []


def test_the_damage_arm_is_compared_with_the_plain_pretrained_arm_against_the_noise_floor(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    import report

    monkeypatch.setattr(report, "noise_floors", lambda: {(0.7, "wanda"): 0.12})
    e = {"target": 0.7, "verify": {"pruner": "wanda"}}

    def stats(damage: float, plain: float) -> dict[tuple[str, str], Any]:
        return {("pretrained_damage", "best_wanda_ppl"): {"median": damage},
                ("pretrained", "best_wanda_ppl"): {"median": plain}}

    text = efficiency._damage_verdict(e, stats(126.3, 136.6))
    assert text == ", 0.925 times the pretrained arm's, within noise of it"
    assert efficiency._damage_verdict(e, stats(100.0, 136.6)).endswith("lower beyond the noise floor")
    at_50 = {"target": 0.5, "verify": {"pruner": "wanda"}}
    assert efficiency._damage_verdict(at_50, stats(100.0, 136.6)) == ""


def test_the_readme_block_is_a_paragraph_then_one_bullet_per_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "_ceiling_sentence", lambda: " Ceiling.")
    import _damage_render
    import _fresh_render
    import _probe_render

    monkeypatch.setattr(_damage_render, "render_sentence", lambda: "")
    monkeypatch.setattr(_probe_render, "render_sentence", lambda: " Probe.")
    monkeypatch.setattr(_fresh_render, "render_sentence", lambda: " Fresh.")
    monkeypatch.setattr(efficiency, "render_sentence", lambda: " Efficiency.")
    head, blank, *bullets = render.render_readme().split("\n")
    assert head.startswith("Short-listing uses the `") and blank == ""
    # One per check with a result, in the README's order; none for a check without one.
    assert bullets == ["- Ceiling.", "- Probe.", "- Fresh.", "- Efficiency."]
    monkeypatch.setattr(render, "_ceiling_sentence", lambda: "")
    monkeypatch.setattr(_probe_render, "render_sentence", lambda: "")
    monkeypatch.setattr(_fresh_render, "render_sentence", lambda: "")
    monkeypatch.setattr(efficiency, "render_sentence", lambda: "")
    assert "\n" not in render.render_readme()


def test_the_efficiency_bullet_nests_one_line_per_arm_then_the_goal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import report

    monkeypatch.setattr(report, "noise_floors", lambda: {(0.7, "wanda"): 0.12})

    def summary(arm: str, evals: int, ppl: float) -> list[dict[str, Any]]:
        return [{"arm": arm, "metric": "evals_to_ramp", "runs": 3, "reached": 3, "median": evals},
                {"arm": arm, "metric": "best_wanda_ppl", "runs": 3, "reached": 3, "median": ppl}]

    e = {"target": 0.7, "verify": {"pruner": "wanda"}, "default_model": "m",
         "settings": {"max_tokens": 98304, "evopress_tokens": 491520, "draws": 3},
         "summary": [*summary("tpe", 29, 200.0), *summary("pretrained", 3, 140.0),
                     *summary("evopress", 33, 150.0)]}
    (tmp_path / "predictor_efficiency_cpu.json").write_text(json.dumps(e))
    monkeypatch.setattr(efficiency, "result_path", lambda name: (tmp_path / name, False))
    lead, *arms = efficiency.render_sentence().split("\n")
    assert lead == (" At 70% with 98,304 search tokens per arm (`benchmarks/predictor_efficiency.py`, 3 "
                    "calibration draws; the noise floor at 70% is in BENCHMARKS.md):")
    assert [a[:14] for a in arms] == ["  - TPE alone:", "  - TPE with a", "  - The EvoPre", "  - Against th"]
    assert arms[0].endswith("(median 29 real evaluations), verified median 200.0.")
    assert arms[2] == ("  - The EvoPress-style sampler with 491,520 tokens: verified median 150.0 over "
                       "3 seeds.")
    assert "0.933 times the EvoPress-style sampler's, within noise of it" in arms[3]


def test_the_probed_arm_is_compared_with_the_damage_arm_of_its_own_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The probe variant's sentence: trials, probe tokens and reach of the probed arm, its
    verified median against the damage arm measured in the same run, paired by draw, with the
    verdict against the noise floor; nothing without the variant or one of its two arms."""
    import report

    monkeypatch.setattr(report, "noise_floors", lambda: {(0.7, "wanda"): 0.12})
    monkeypatch.setattr(efficiency, "result_path", lambda name: (tmp_path / name, False))
    assert efficiency.probe_sentence() == "" and efficiency._probe_lines() == []

    def run(arm: str, seed: int, ppl: float, draws: dict[str, float], **extra: Any) -> dict[str, Any]:
        return {"arm": arm, "seed": seed, "trials": 48, "screened_trials": 23, "probe_tokens": 0,
                "evals_to_ramp": 3, "best_fitness": 120.0, "best_wanda_ppl": ppl,
                "best_wanda_draws": draws} | extra

    probe = "pretrained_damage_probe"
    runs = [run(probe, 0, 110.0, {"0": 100.0, "1": 120.0}, trials=40, probe_tokens=20480),
            run(probe, 1, 115.0, {"0": 105.0, "1": 125.0}, trials=38, probe_tokens=24576),
            run("pretrained_damage", 0, 130.0, {"0": 120.0, "1": 140.0}),
            run("pretrained_damage", 1, 125.0, {"0": 115.0, "1": 135.0})]
    summary = [{"arm": a, "metric": m, "runs": 2, "reached": 2, "median": v}
               for a, m, v in [(probe, "evals_to_ramp", 3), (probe, "best_wanda_ppl", 112.5),
                               ("pretrained_damage", "evals_to_ramp", 3),
                               ("pretrained_damage", "best_wanda_ppl", 127.5)]]
    e = {"target": 0.7, "verify": {"pruner": "wanda"}, "settings": {"probe": 8, "k": 4, "max_tokens": 98304},
         "runs": runs, "summary": summary, "rows": [],
         "manifest": {"command": "python benchmarks/predictor_efficiency.py --variant probe",
                      "commit": "a" * 40, "dirty": False, "machine": {"threads": 1}, "date": "d",
                      "seeds": [0, 1]}}
    (tmp_path / efficiency.PROBE_VARIANT).write_text(json.dumps(e))
    text = efficiency.probe_sentence()
    assert text.startswith("Probed rounds (`predictor.probe: 8`, window 0;")
    assert "39 trials (median), the probes reading 22,528 of the 98,304 tokens" in text
    assert "verified median 112.5 against 127.5, 0.882 times, lower on 2 of 2 calibration draws, " \
        "within noise of it" in text
    assert text.endswith("Best verified per seed: 110.0/115.0 probed, 130.0/125.0 not.")
    table = efficiency._probe_lines()
    assert table[1].startswith("**A probed short-list at 70%**") and len(table) == 5 + len(runs)
    assert "| pretrained_damage_probe | 1 | 38 | 23 | 24,576 | 3 | 120.00 | 115.00 | - |" in table
    (tmp_path / efficiency.PROBE_VARIANT).write_text(json.dumps(e | {"runs": runs[:2]}))
    assert efficiency.probe_sentence() == ""
