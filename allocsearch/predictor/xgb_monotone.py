"""XGBoost with monotone constraints: more removed mass (or sparsity) in any module never
predicts a better plan (:func:`allocsearch.predictor.monotone.monotone_signs`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from allocsearch.predictor.monotone import monotone_signs
from allocsearch.predictor.xgb import XGBoostRegressor, booster_from_data

NAME = "xgboost_monotone"


def constraints(names: Sequence[str]) -> dict[str, Any]:
    """XGBoost's ``monotone_constraints`` parameter for this feature layout."""
    return {"monotone_constraints": "(" + ",".join(map(str, monotone_signs(names))) + ")"}


class MonotoneRegressor(XGBoostRegressor):
    name = NAME


def create(names: Sequence[str], seed: int) -> MonotoneRegressor:
    return MonotoneRegressor(seed, params=constraints(names))


def load(names: Sequence[str], data: dict[str, Any]) -> MonotoneRegressor:
    return MonotoneRegressor(int(data["seed"]), booster_from_data(data["booster"]), constraints(names))
