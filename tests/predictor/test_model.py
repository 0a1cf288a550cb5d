"""Contract of every registered predictor model: fits, ranks synthetic plans, saves to JSON
and loads back predicting the same values; records files round-trip; held-out scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from allocsearch.budget import random_plan
from allocsearch.predictor import (
    FeatureTable,
    PlanRecord,
    Predictor,
    PredictorError,
    RecordsError,
    leave_one_study_out,
    read_records,
    score,
    write_records,
)
from allocsearch.predictor.base import DEFAULT_MODEL, regressor_names
from allocsearch.predictor.evaluation import extrapolation_margin, top_recall
from tests.helpers import tiny_profile


@pytest.fixture(scope="module")
def table() -> FeatureTable:
    return FeatureTable.from_profile(tiny_profile())


def synthetic_records(table: FeatureTable, n: int = 60, seed: int = 0) -> list[PlanRecord]:
    """Plans at two targets whose fitness grows with the removed score mass (plus noise)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        target = (0.5, 0.7)[i % 2]
        plan = random_plan(table.identity, target, block_spread=0.2, seed=seed * 1000 + i)
        removed = table.features([plan])[0][table.names.index("score_mean")]
        fitness = float(np.exp(3.0 + 8.0 * removed + rng.normal(0, 0.02)))
        out.append(PlanRecord(plan, fitness, "ppl", 128, f"study{i % 3}", i, "random"))
    return out


def test_the_registry_holds_the_models() -> None:
    assert regressor_names() == ["additive", "hist", "lightgbm_linear", "ranker", "residual", "typed",
                                 "typed_residual", "typed_target", "typed_target_modules_residual",
                                 "typed_target_residual", "typed_target_robust_residual", "xgboost",
                                 "xgboost_monotone"]
    assert DEFAULT_MODEL in regressor_names()


@pytest.mark.parametrize("kind", regressor_names())
def test_each_model_ranks_fits_and_round_trips(kind: str, table: FeatureTable, tmp_path: Path) -> None:
    train = synthetic_records(table, seed=0)
    test = synthetic_records(table, n=30, seed=1)
    pred = Predictor.train(table, train, model=kind, members=3)
    mean, std = pred.predict([r.plan for r in test])
    true = np.log([r.fitness for r in test])
    assert mean.shape == std.shape == (30,) and np.all(std >= 0)
    assert score(mean, true).spearman > 0.8
    path = pred.save(tmp_path / "p.json")
    again = Predictor.load(path)
    mean2, std2 = again.predict([r.plan for r in test])
    assert np.array_equal(mean, mean2) and np.array_equal(std, std2)
    assert again.meta == pred.meta and again.meta.studies == ("study0", "study1", "study2")
    assert json.loads(path.read_text())["format"] == "allocsearch-predictor"
    # The file carries its records: retraining on them plus more gives a predictor of the same kind.
    assert [r.fitness for r in again.records] == [r.fitness for r in train]
    more = again.retrain(test[:5], seed=1)
    assert more.model == kind and more.meta.n_train == len(train) + 5


def test_training_mixes_fidelities_but_refuses_mixed_fitnesses_and_too_few_plans(
    table: FeatureTable,
) -> None:
    recs = synthetic_records(table, n=8)
    mixed = recs[:5] + [PlanRecord(r.plan, r.fitness, "ppl", 256, r.study) for r in recs[5:]]
    assert Predictor.train(table, mixed, members=1).meta.tokens == 128  # most records read 128
    other = recs[:4] + [PlanRecord(r.plan, r.fitness, "accuracy", 128, r.study) for r in recs[4:]]
    with pytest.raises(PredictorError, match="mix fitnesses"):
        Predictor.train(table, other)
    with pytest.raises(PredictorError, match="at least 4"):
        Predictor.train(table, recs[:3])


def test_the_default_model_extrapolates_below_every_plan_it_was_trained_on(table: FeatureTable) -> None:
    """Trained only on plans no better than some fitness, the default model ranks a plan that
    removes less mass in every module ahead of all of them (plain trees cannot: they predict
    no lower than their lowest leaf)."""
    recs = synthetic_records(table, n=80)
    for kind, extrapolates in ((DEFAULT_MODEL, True), ("typed_target_residual", True),
                               ("typed_target_robust_residual", True),
                               ("typed_target_modules_residual", True), ("xgboost", False)):
        margin = extrapolation_margin(table, recs, model=kind, members=3, quantile=0.3, step=0.05)
        assert (margin > 0.01) == extrapolates, kind


def test_coverage_counts_measurements_inside_one_std() -> None:
    pred = np.array([0.0, 1.0, 2.0, 3.0])
    true = np.array([0.05, 1.5, 2.0, 2.0])
    std = np.array([0.1, 0.1, 0.1, 2.0])
    assert score(pred, true, std).coverage == 0.75
    assert np.isnan(score(pred, true).coverage)


def test_a_pickle_or_foreign_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"format": "something else"}')
    with pytest.raises(PredictorError, match="not an allocsearch predictor"):
        Predictor.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_bytes(b"\x80\x04K\x01.")  # a pickle
    with pytest.raises(PredictorError, match="not valid JSON"):
        Predictor.load(tmp_path / "y.json")


def test_records_round_trip_and_bad_lines_are_named(table: FeatureTable, tmp_path: Path) -> None:
    recs = synthetic_records(table, n=5)
    path = write_records(recs, tmp_path / "r.jsonl")
    back = read_records(path)
    assert [r.fitness for r in back] == [r.fitness for r in recs]
    assert [r.plan.sparsities() for r in back] == [r.plan.sparsities() for r in recs]
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1].replace('"fitness": ', '"fitness": -')]) + "\n")
    with pytest.raises(RecordsError, match=r"r.jsonl:2: fitness must be a positive"):
        read_records(path)


def test_top_recall_and_leave_one_study_out(table: FeatureTable) -> None:
    true = np.arange(20.0)
    assert top_recall(true, true) == 1.0
    assert top_recall(-true, true) == 0.0
    held = leave_one_study_out(table, synthetic_records(table), model="additive", members=1)
    scores = held.scores()
    assert set(scores["per_study"]) == {"study0", "study1", "study2"}
    assert set(scores["per_target"]) == {"0.5", "0.7"}
    assert scores["overall"]["n"] == 60 and scores["overall"]["spearman"] > 0.9


def test_a_group_is_held_out_together(table: FeatureTable) -> None:
    """With ``group``, a study is predicted by a model trained without any study of its group:
    study1's and study2's predictions are those of a model trained on study0 alone."""
    recs = synthetic_records(table)
    held = leave_one_study_out(table, recs, model="additive", members=1,
                               group=lambda r: "a" if r.study == "study0" else "b")
    alone = Predictor.train(table, [r for r in recs if r.study == "study0"], model="additive", members=1)
    rest = [i for i, r in enumerate(recs) if r.study != "study0"]
    mean, _ = alone.predict([recs[i].plan for i in rest])
    np.testing.assert_allclose(held.mean[rest], mean)
    plain = leave_one_study_out(table, recs, model="additive", members=1)
    assert not np.allclose(plain.mean[rest], mean)  # held out one study at a time, they differ


@pytest.mark.parametrize("kind", regressor_names())
def test_every_model_has_importances_or_none(kind: str, table: FeatureTable) -> None:
    from allocsearch.predictor.evaluation import importances

    pred = Predictor.train(table, synthetic_records(table, n=30), model=kind, members=2)
    imp = importances(pred, top=5)
    assert len(imp) <= 5 and all(name in table.names and share >= 0 for name, share in imp)
    if kind in ("xgboost", "additive", "typed", "residual", "lightgbm_linear"):
        assert imp and sum(s for _, s in imp) <= 1.0 + 1e-9
