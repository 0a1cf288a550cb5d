"""A linear model plus monotone trees on what it misses.

``residual``: log-fitness = ridge(removed Wanda-score share per module) + trees(features);
``typed_residual``: the same on the typed model's ridge (per projection kind and depth). The trees
boosted from the ridge prediction as their base margin and constrained monotone in the
removed-mass features. The linear part extrapolates: a plan that removes less mass than any
training plan is predicted below all of them, where plain trees flatten out at the lowest
leaf. The trees add what one coefficient per module cannot say (interactions, the shape of
the depth profile, N:M choices).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xgboost as xgb
from numpy.typing import NDArray

from allocsearch.predictor import additive
from allocsearch.predictor.base import Regressor
from allocsearch.predictor.xgb import booster_from_data, booster_predict, booster_to_data, train_booster
from allocsearch.predictor.xgb_monotone import constraints

NAME = "residual"
#: The residual is small next to the fitness: fewer, shallower trees than the plain model.
TREE_PARAMS: dict[str, Any] = {"max_depth": 3, "eta": 0.05}
ROUNDS = 200


class ResidualRegressor:
    name = NAME

    def __init__(self, names: Sequence[str], seed: int, base: Regressor,
                 booster: xgb.Booster | None = None, *, columns: NDArray[np.int64] | None = None,
                 params: dict[str, Any] | None = None, rounds: int = ROUNDS) -> None:
        self.seed = seed
        self.base = base  # the linear part, fitted first; its prediction is the trees' margin
        self.booster = booster
        self.columns = columns  # the columns the trees read (None: every feature)
        self.params = TREE_PARAMS | constraints(names) if params is None else params
        self.rounds = rounds

    def _tree_x(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return x if self.columns is None else x[:, self.columns]

    def fit(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> None:
        self.base.fit(x, y)
        self.booster = train_booster(self._tree_x(x), y, self.seed, params=self.params,
                                     margin=self.base.predict(x), rounds=self.rounds)

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.booster is None:
            raise ValueError("this regressor is not fitted")
        return booster_predict(self.booster, self._tree_x(x), margin=self.base.predict(x))

    def to_data(self) -> dict[str, Any]:
        if self.booster is None:
            raise ValueError("this regressor is not fitted")
        return {"seed": self.seed, "base": self.base.to_data(), "booster": booster_to_data(self.booster)}


def create(names: Sequence[str], seed: int, prefix: str = additive.PREFIX) -> ResidualRegressor:
    return ResidualRegressor(names, seed, additive.create(names, seed, prefix))


def load(names: Sequence[str], data: dict[str, Any], prefix: str = additive.PREFIX) -> ResidualRegressor:
    return ResidualRegressor(names, int(data["seed"]), additive.load(names, data["base"], prefix),
                             booster_from_data(data["booster"]))
