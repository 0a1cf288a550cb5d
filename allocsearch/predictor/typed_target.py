"""The typed ridge with coefficients that move with the target sparsity.

The plain ``typed`` ridge gives each typed column (a projection kind's removed score share
at a depth) one coefficient for every target, so the fit is spent on the large differences
between targets (log-perplexity 3.4 at 50% to 8.5 at 75%), and ranks the plans of one target
with coefficients that fit none. Here each typed column ``x_k`` also enters as
``x_k * (b - CENTRE)`` (``b``: the plan's budget, its target), so a module's damage can grow
with sparsity, and the level of each target is a cubic in ``b - CENTRE``, scaled by
``LEVEL_SCALE`` so the ridge penalty leaves it nearly free. For n typed columns the design is
(rows, 2n + 3); one ridge (RidgeCV over the additive model's penalties) fits it. Chosen by
held-out rank quality (``benchmarks/predictor.py --suite quality``).

With ``huber_delta`` set, the ridge is fitted as a Huber regression by iteratively reweighted
least squares: plans the fit misses by more than ``delta`` in log-fitness (start-up plans of
1e4-1e5 perplexity, a study's outliers) get weight ``delta / |residual|``, so the few plans the
smooth depth profile cannot describe stop pulling the coefficients away from the many it can
(:mod:`allocsearch.predictor.typed_target_robust_residual`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import RidgeCV

from allocsearch.predictor import additive, typed

NAME = "typed_target"
CENTRE = 0.65  # the middle of the targets searched (50-75%): keeps x_k and x_k * (b - CENTRE) apart
LEVEL_SCALE = 100.0  # (b - CENTRE)^j is at most ~0.15: scaled up, its coefficient is barely penalised
#: Reweighted ridge fits of the robust form (``huber_delta`` set): the weights settle within a few.
IRLS_STEPS = 5


class TypedTargetRegressor:
    name = NAME

    def __init__(self, columns: NDArray[np.int64], budget: int, coef: NDArray[np.float64] | None = None,
                 intercept: float = 0.0, *, huber_delta: float | None = None) -> None:
        self.columns = columns  # the typed feature columns
        self.budget = budget  # the budget column
        self.coef = coef
        self.intercept = intercept
        self.huber_delta = huber_delta  # None: plain least squares; else the robust fit's delta

    def design(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """(rows, features) -> (rows, 2n + 3): typed, typed * (b - CENTRE), the cubic level."""
        t = x[:, self.budget:self.budget + 1] - CENTRE  # (rows, 1)
        typed_x = x[:, self.columns]
        return np.hstack([typed_x, typed_x * t, LEVEL_SCALE * np.hstack([t, t**2, t**3])])

    def fit(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> None:
        z = self.design(x)
        ridge = RidgeCV(alphas=additive.ALPHAS).fit(z, y)
        for _ in range(0 if self.huber_delta is None else IRLS_STEPS - 1):
            weights = huber_weights(y - ridge.predict(z), self.huber_delta)
            ridge = RidgeCV(alphas=additive.ALPHAS).fit(z, y, sample_weight=weights)
        self.coef = np.asarray(ridge.coef_, dtype=np.float64)
        self.intercept = float(ridge.intercept_)

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.coef is None:
            raise ValueError("this regressor is not fitted")
        return np.asarray(self.design(x) @ self.coef + self.intercept, dtype=np.float64)

    def to_data(self) -> dict[str, Any]:
        if self.coef is None:
            raise ValueError("this regressor is not fitted")
        data: dict[str, Any] = {"coef": self.coef.tolist(), "intercept": self.intercept}
        if self.huber_delta is not None:  # kept so that online training refits the same way
            data["huber_delta"] = self.huber_delta
        return data


def huber_weights(residual: NDArray[np.float64], delta: float | None) -> NDArray[np.float64]:
    """Each row's weight in the next reweighted least-squares step of a Huber fit: 1 where
    ``|residual| <= delta``, ``delta / |residual|`` beyond (shape of ``residual``). None: all 1."""
    size = np.abs(residual)
    if delta is None:
        return np.ones_like(size)
    return np.where(size <= delta, 1.0, delta / np.maximum(size, 1e-12))


def create(names: Sequence[str], seed: int, huber_delta: float | None = None) -> TypedTargetRegressor:
    return TypedTargetRegressor(additive.columns(names, typed.PREFIX), list(names).index("budget"),
                                huber_delta=huber_delta)


def load(names: Sequence[str], data: dict[str, Any]) -> TypedTargetRegressor:
    delta = data.get("huber_delta")
    return TypedTargetRegressor(additive.columns(names, typed.PREFIX), list(names).index("budget"),
                                np.array(data["coef"], dtype=np.float64), float(data["intercept"]),
                                huber_delta=None if delta is None else float(delta))
