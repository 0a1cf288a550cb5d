"""The typed-target ridge plus shallow trees boosted on its residual.

:mod:`allocsearch.predictor.typed_target` ranks plans by where in depth each projection kind
loses mass, smoothed over depth by three bumps: it cannot tell two plans apart that differ by
moving sparsity between neighbouring blocks, which is most of what separates the plans of a
converging CMA-ES or TPE study. Here trees boosted from its prediction (the base margin) read
the block sparsities (``attn:<b>``, ``mlp:<b>``), the typed columns and the budget. The ridge
still extrapolates below the training plans; the trees add a bounded correction for what the
smooth depth profile misses. Trees on these 81 columns, not on all ~800 (the per-module curves
let a few hundred plans fit noise), and without the monotone constraints of ``residual``: at a
fixed budget one block's sparsity never rises alone, so a constraint on each column alone
holds the trees back (held out, it ranked worse in scratch measurements on 27 studies).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xgboost as xgb
from numpy.typing import NDArray

from allocsearch.predictor import typed_target
from allocsearch.predictor.typed_target import TypedTargetRegressor
from allocsearch.predictor.xgb import booster_from_data, booster_predict, booster_to_data, train_booster

NAME = "typed_target_residual"
#: The residual is small next to the fitness: shallow trees and strong shrinkage.
TREE_PARAMS: dict[str, Any] = {"max_depth": 2, "eta": 0.03}
ROUNDS = 300
TREE_PREFIXES = ("attn:", "mlp:", "typed:")


def tree_columns(names: Sequence[str]) -> NDArray[np.int64]:
    """The columns the trees read: block sparsities, typed columns and the budget."""
    cols = [i for i, n in enumerate(names) if n.startswith(TREE_PREFIXES) or n == "budget"]
    if not cols:
        raise ValueError("this model needs attn:*, mlp:*, typed:* and budget features")
    return np.array(cols, dtype=np.int64)


class TypedTargetResidualRegressor:
    name = NAME

    def __init__(self, names: Sequence[str], seed: int, base: TypedTargetRegressor,
                 booster: xgb.Booster | None = None) -> None:
        self.seed = seed
        self.base = base
        self.booster = booster
        self.columns = tree_columns(names)
        self.params = dict(TREE_PARAMS)

    def fit(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> None:
        self.base.fit(x, y)
        self.booster = train_booster(x[:, self.columns], y, self.seed, params=self.params,
                                     margin=self.base.predict(x), rounds=ROUNDS)

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.booster is None:
            raise ValueError("this regressor is not fitted")
        return booster_predict(self.booster, x[:, self.columns], margin=self.base.predict(x))

    def to_data(self) -> dict[str, Any]:
        if self.booster is None:
            raise ValueError("this regressor is not fitted")
        return {"seed": self.seed, "base": self.base.to_data(), "booster": booster_to_data(self.booster)}


def create(names: Sequence[str], seed: int) -> TypedTargetResidualRegressor:
    return TypedTargetResidualRegressor(names, seed, typed_target.create(names, seed))


def load(names: Sequence[str], data: dict[str, Any]) -> TypedTargetResidualRegressor:
    return TypedTargetResidualRegressor(names, int(data["seed"]), typed_target.load(names, data["base"]),
                                        booster_from_data(data["booster"]))
