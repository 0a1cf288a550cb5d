"""LightGBM trees with linear leaves (``linear_tree``): each leaf fits a line in the features
its path split on, so predictions can go below the lowest training fitness. Saved as
LightGBM's own text model. Needs the ``lightgbm`` extra (``pip install allocsearch[lightgbm]``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

NAME = "lightgbm_linear"
PARAMS: dict[str, Any] = {"objective": "regression", "linear_tree": True, "linear_lambda": 1.0,
                          "num_leaves": 8, "learning_rate": 0.05, "min_data_in_leaf": 10,
                          "feature_fraction": 0.5, "bagging_fraction": 0.8, "bagging_freq": 1,
                          "num_threads": 1, "max_bin": 32, "verbose": -1}
ROUNDS = 300


def _lightgbm() -> Any:
    try:
        import lightgbm
    except ImportError:
        raise ValueError("predictor model 'lightgbm_linear' needs LightGBM: "
                         "pip install 'allocsearch[lightgbm]'") from None
    return lightgbm


class LinearLeavesRegressor:
    name = NAME

    def __init__(self, seed: int, booster: Any = None) -> None:
        self.seed = seed
        self.booster = booster

    def fit(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> None:
        lgb = _lightgbm()
        params = PARAMS | {"seed": self.seed}
        self.booster = lgb.train(params, lgb.Dataset(x, label=y, params={"verbose": -1}), ROUNDS)

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.booster is None:
            raise ValueError("this regressor is not fitted")
        return np.asarray(self.booster.predict(x), dtype=np.float64)

    def to_data(self) -> dict[str, Any]:
        if self.booster is None:
            raise ValueError("this regressor is not fitted")
        return {"seed": self.seed, "model": self.booster.model_to_string()}


def create(names: Sequence[str], seed: int) -> LinearLeavesRegressor:
    return LinearLeavesRegressor(seed)


def load(names: Sequence[str], data: dict[str, Any]) -> LinearLeavesRegressor:
    return LinearLeavesRegressor(int(data["seed"]), _lightgbm().Booster(model_str=str(data["model"])))
