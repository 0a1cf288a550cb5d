"""The target-aware typed ridge's robust (Huber) fit, on hand-made rows."""

from __future__ import annotations

import numpy as np

from allocsearch.predictor.typed_target import TypedTargetRegressor, huber_weights


def test_huber_weights_are_one_inside_delta_and_delta_over_the_residual_beyond() -> None:
    r = np.array([0.0, 0.05, -0.1, 0.2, -0.4])
    assert np.allclose(huber_weights(r, 0.1), [1.0, 1.0, 1.0, 0.5, 0.25], rtol=0, atol=1e-12)
    assert np.array_equal(huber_weights(r, None), np.ones(5))


def _rows(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) rows: one typed column, then the budget at 0.65 (so only the typed column and the
    intercept vary); log-fitness 2 + 3 * typed."""
    x = np.column_stack([np.linspace(0.0, 1.0, n), np.full(n, 0.65)])
    return x, 2.0 + 3.0 * x[:, 0]


def test_the_robust_fit_ignores_a_far_outlier_that_tilts_least_squares() -> None:
    x, y = _rows()
    y = y.copy()
    y[-1] += 5.0  # one start-up plan the additive profile cannot describe
    plain = TypedTargetRegressor(np.array([0]), 1)
    robust = TypedTargetRegressor(np.array([0]), 1, huber_delta=0.1)
    plain.fit(x, y)
    robust.fit(x, y)
    assert plain.coef is not None and robust.coef is not None
    # Least squares raises the slope by about 5 * 6 * (x - 0.5) / sum((x - 0.5)^2) ~ 0.24 per unit.
    assert abs(plain.coef[0] - 3.0) > 0.2
    assert abs(robust.coef[0] - 3.0) < 0.05
    clean = np.delete(np.arange(len(y)), -1)
    assert np.max(np.abs(robust.predict(x[clean]) - y[clean])) < 0.05


def test_the_robust_fit_equals_least_squares_when_every_residual_is_inside_delta() -> None:
    x, y = _rows()
    plain = TypedTargetRegressor(np.array([0]), 1)
    robust = TypedTargetRegressor(np.array([0]), 1, huber_delta=10.0)
    plain.fit(x, y)
    robust.fit(x, y)
    assert plain.coef is not None and robust.coef is not None
    assert np.allclose(plain.coef, robust.coef, rtol=0, atol=1e-12)
    assert robust.to_data()["huber_delta"] == 10.0 and "huber_delta" not in plain.to_data()
