"""The plain baseline: log-fitness as a sum over modules of their removed Wanda-score share,
one coefficient per module, fitted by one ridge regression (RidgeCV over a few penalties).
:class:`AdditiveRegressor` is a ridge on any group of columns: the ``typed`` model uses it on
the per-projection-kind depth features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import RidgeCV

from allocsearch.predictor.monotone import removed_mass_columns

NAME = "additive"
PREFIX = "score:"
ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


class AdditiveRegressor:
    name = NAME

    def __init__(self, columns: NDArray[np.int64], coef: NDArray[np.float64] | None = None,
                 intercept: float = 0.0) -> None:
        self.columns = columns  # the feature columns it reads
        self.coef = coef
        self.intercept = intercept

    def fit(self, x: NDArray[np.float64], y: NDArray[np.float64],
            sample_weight: NDArray[np.float64] | None = None) -> None:
        ridge = RidgeCV(alphas=ALPHAS).fit(x[:, self.columns], y, sample_weight=sample_weight)
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


def columns(names: Sequence[str], prefix: str = PREFIX) -> NDArray[np.int64]:
    return np.array(removed_mass_columns(names, prefix), dtype=np.int64)


def create(names: Sequence[str], seed: int, prefix: str = PREFIX) -> AdditiveRegressor:
    return AdditiveRegressor(columns(names, prefix))


def load(names: Sequence[str], data: dict[str, Any], prefix: str = PREFIX) -> AdditiveRegressor:
    return AdditiveRegressor(columns(names, prefix), np.array(data["coef"], dtype=np.float64),
                             float(data["intercept"]))
