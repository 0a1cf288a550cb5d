"""XGBoost gradient-boosted trees (the default model), saved as XGBoost's own JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import xgboost as xgb
from numpy.typing import NDArray

NAME = "xgboost"
#: Shallow trees, strong shrinkage and column subsampling: a few hundred rows, ~550 columns.
#: One thread and 32 bins: the ensemble is retrained every screening round beside a running
#: forward pass, and on a few hundred rows the default threads and 256 bins cost more time
#: than they return (the removal curves are smooth, so coarse bins lose little).
PARAMS: dict[str, Any] = {"objective": "reg:squarederror", "max_depth": 4, "eta": 0.05,
                          "subsample": 0.8, "colsample_bytree": 0.5, "min_child_weight": 1.0,
                          "lambda": 1.0, "nthread": 1, "max_bin": 32, "tree_method": "hist"}
ROUNDS = 300


class XGBoostRegressor:
    name = NAME

    def __init__(self, seed: int, booster: xgb.Booster | None = None) -> None:
        self.seed = seed
        self.booster = booster

    def fit(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> None:
        data = xgb.DMatrix(x, label=y)
        self.booster = xgb.train(PARAMS | {"seed": self.seed}, data, num_boost_round=ROUNDS)

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.booster is None:
            raise ValueError("this regressor is not fitted")
        return np.asarray(self.booster.predict(xgb.DMatrix(x)), dtype=np.float64)

    def to_data(self) -> dict[str, Any]:
        if self.booster is None:
            raise ValueError("this regressor is not fitted")
        return {"seed": self.seed, "booster": json.loads(bytes(self.booster.save_raw(raw_format="json")))}


def create(names: Sequence[str], seed: int) -> XGBoostRegressor:
    return XGBoostRegressor(seed)


def load(names: Sequence[str], data: dict[str, Any]) -> XGBoostRegressor:
    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps(data["booster"]).encode()))
    return XGBoostRegressor(int(data["seed"]), booster)
