"""XGBoost gradient-boosted trees, saved as XGBoost's own JSON.

``xgboost``: plain trees on the features. They cannot predict below the lowest fitness they
were trained on, so they cannot rank the plans a search finds last (see
:mod:`allocsearch.predictor.residual`, which can). ``train_booster`` is shared with the
monotone and residual variants.
"""

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


def train_booster(x: NDArray[np.float64], y: NDArray[np.float64], seed: int, *,
                  params: dict[str, Any] | None = None, margin: NDArray[np.float64] | None = None,
                  rounds: int = ROUNDS, qid: NDArray[np.int64] | None = None) -> xgb.Booster:
    """Boost ``rounds`` trees on (rows, features) ``x``; ``margin`` (rows,) is a base
    prediction the trees add to (the residual model's linear part); ``qid`` (rows,) the
    query groups of a ranking objective."""
    data = xgb.DMatrix(x, label=y, base_margin=margin, qid=qid)
    return xgb.train(PARAMS | (params or {}) | {"seed": seed}, data, num_boost_round=rounds)


def booster_predict(booster: xgb.Booster, x: NDArray[np.float64],
                    margin: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    return np.asarray(booster.predict(xgb.DMatrix(x, base_margin=margin)), dtype=np.float64)


def booster_to_data(booster: xgb.Booster) -> dict[str, Any]:
    return dict(json.loads(bytes(booster.save_raw(raw_format="json"))))


def booster_from_data(data: dict[str, Any]) -> xgb.Booster:
    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps(data).encode()))
    return booster


class XGBoostRegressor:
    name = NAME

    def __init__(self, seed: int, booster: xgb.Booster | None = None,
                 params: dict[str, Any] | None = None) -> None:
        self.seed = seed
        self.booster = booster
        self.params = params or {}

    def fit(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> None:
        self.booster = train_booster(x, y, self.seed, params=self.params)

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.booster is None:
            raise ValueError("this regressor is not fitted")
        return booster_predict(self.booster, x)

    def to_data(self) -> dict[str, Any]:
        if self.booster is None:
            raise ValueError("this regressor is not fitted")
        return {"seed": self.seed, "booster": booster_to_data(self.booster)}


def create(names: Sequence[str], seed: int) -> XGBoostRegressor:
    return XGBoostRegressor(seed)


def load(names: Sequence[str], data: dict[str, Any]) -> XGBoostRegressor:
    return XGBoostRegressor(int(data["seed"]), booster_from_data(data["booster"]))
