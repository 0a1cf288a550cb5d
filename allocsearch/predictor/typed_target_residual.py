"""The typed-target ridge plus shallow trees boosted on its residual.

:mod:`allocsearch.predictor.typed_target` ranks plans by where in depth each projection kind
loses mass, smoothed over depth by three bumps: it cannot tell two plans apart that differ by
moving sparsity between neighbouring blocks, which is most of what separates the plans of a
converging CMA-ES or TPE study. Here trees boosted from its prediction (the base margin,
:class:`allocsearch.predictor.residual.ResidualRegressor`) read the block sparsities
(``attn:<b>``, ``mlp:<b>``), the typed columns and the budget. The ridge still extrapolates
below the training plans; the trees add a bounded correction for what the smooth depth
profile misses. Trees on these 81 columns, not on all ~800 (the per-module curves let a few
hundred plans fit noise), and without the monotone constraints of ``residual``: at a fixed
budget one block's sparsity never rises alone, so a constraint on each column alone holds the
trees back (held out, the constrained form ranked worse in unpublished scratch runs; the
quality benchmark compares only this unconstrained form).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xgboost as xgb
from numpy.typing import NDArray

from allocsearch.predictor import typed_target
from allocsearch.predictor.base import Regressor
from allocsearch.predictor.residual import ResidualRegressor
from allocsearch.predictor.xgb import booster_from_data

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


class TypedTargetResidualRegressor(ResidualRegressor):
    name = NAME


def regressor(cls: type[TypedTargetResidualRegressor], names: Sequence[str], seed: int,
              base: Regressor, booster: xgb.Booster | None = None) -> TypedTargetResidualRegressor:
    """The one place that gives this model (and the models built on it: the robust form, the
    per-module correction) its tree columns, parameters and rounds."""
    return cls(names, seed, base, booster, columns=tree_columns(names), params=TREE_PARAMS, rounds=ROUNDS)


def create(names: Sequence[str], seed: int) -> TypedTargetResidualRegressor:
    return regressor(TypedTargetResidualRegressor, names, seed, typed_target.create(names, seed))


def load(names: Sequence[str], data: dict[str, Any]) -> TypedTargetResidualRegressor:
    return regressor(TypedTargetResidualRegressor, names, int(data["seed"]),
                     typed_target.load(names, data["base"]), booster_from_data(data["booster"]))
