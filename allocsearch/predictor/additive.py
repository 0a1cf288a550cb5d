"""The plain baseline: log-fitness as a sum over modules of their removed Wanda-score share,
one coefficient per module, fitted by one ridge regression (RidgeCV over a few penalties)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import RidgeCV

from allocsearch.predictor.monotone import removed_mass_columns

NAME = "additive"
ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


class AdditiveRegressor:
    name = NAME

    def __init__(self, columns: NDArray[np.int64], coef: NDArray[np.float64] | None = None,
                 intercept: float = 0.0) -> None:
        self.columns = columns  # the ``score:<module>`` feature columns
        self.coef = coef
        self.intercept = intercept

    def fit(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> None:
        ridge = RidgeCV(alphas=ALPHAS).fit(x[:, self.columns], y)
        self.coef = np.asarray(ridge.coef_, dtype=np.float64)
        self.intercept = float(ridge.intercept_)

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.coef is None:
            raise ValueError("this regressor is not fitted")
        return np.asarray(x[:, self.columns] @ self.coef + self.intercept, dtype=np.float64)

    def to_data(self) -> dict[str, Any]:
        if self.coef is None:
            raise ValueError("this regressor is not fitted")
        return {"coef": self.coef.tolist(), "intercept": self.intercept}


def _columns(names: Sequence[str]) -> NDArray[np.int64]:
    return np.array(removed_mass_columns(names), dtype=np.int64)


def create(names: Sequence[str], seed: int) -> AdditiveRegressor:
    return AdditiveRegressor(_columns(names))


def load(names: Sequence[str], data: dict[str, Any]) -> AdditiveRegressor:
    return AdditiveRegressor(_columns(names), np.array(data["coef"], dtype=np.float64),
                             float(data["intercept"]))
