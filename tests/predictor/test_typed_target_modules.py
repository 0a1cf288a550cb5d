"""The per-module correction on the robust typed ridge's residual, on hand-made rows."""

from __future__ import annotations

import numpy as np

from allocsearch.predictor import typed_target_modules_residual as tmr
from allocsearch.predictor.additive import AdditiveRegressor
from allocsearch.predictor.typed_target import TypedTargetRegressor

NAMES = ["typed:self_attn.q_proj:0", "score:0.self_attn.q_proj", "score:1.self_attn.q_proj", "budget"]


def _rows(n: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """(n, 4) rows at one budget: the typed column is the mean of the two module columns, so
    the typed ridge sees only their sum; log-fitness 2 + 3 * typed + 0.5 * (m0 - m1), a
    difference between the two modules that no typed coefficient can express."""
    rng = np.random.default_rng(0)
    m = rng.uniform(0.2, 0.8, size=(n, 2))
    x = np.column_stack([m.mean(axis=1), m, np.full(n, 0.65)])
    return x, 2.0 + 3.0 * x[:, 0] + 0.5 * (m[:, 0] - m[:, 1])


def _correction(delta: float | None = 0.1) -> tmr.ModuleCorrection:
    return tmr.ModuleCorrection(TypedTargetRegressor(np.array([0]), 3, huber_delta=delta),
                                AdditiveRegressor(np.array([1, 2])))


def test_the_module_ridge_fits_what_the_typed_ridge_cannot_tell_apart() -> None:
    x, y = _rows()
    typed_only = TypedTargetRegressor(np.array([0]), 3, huber_delta=0.1)
    typed_only.fit(x, y)
    both = _correction()
    both.fit(x, y)
    assert np.max(np.abs(typed_only.predict(x) - y)) > 0.1  # the module difference is left over
    assert np.max(np.abs(both.predict(x) - y)) < 0.01
    coef = both.modules.coef
    assert coef is not None and abs((coef[0] - coef[1]) - 1.0) < 0.02  # 0.5 * (m0 - m1) = coef . m


def test_a_far_outlier_sets_neither_ridge() -> None:
    x, y = _rows()
    y = y.copy()
    y[0] += 5.0  # one start-up plan far off every profile
    both = _correction()
    both.fit(x, y)
    rest = np.arange(1, len(y))
    assert np.max(np.abs(both.predict(x[rest]) - y[rest])) < 0.05
    plain = _correction(delta=None)
    plain.fit(x, y)
    assert np.max(np.abs(plain.predict(x[rest]) - y[rest])) > 0.05  # least squares is pulled by it


def test_the_regressor_round_trips_through_its_data() -> None:
    x, y = _rows()
    model = tmr.create(NAMES, seed=0)
    model.fit(x, y)
    again = tmr.load(NAMES, model.to_data())
    assert np.array_equal(model.predict(x), again.predict(x))
    assert again.name == tmr.NAME
