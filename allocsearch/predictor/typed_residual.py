"""The typed ridge (:mod:`allocsearch.predictor.typed`) plus monotone trees boosted on its
residual (:mod:`allocsearch.predictor.residual`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from allocsearch.predictor import residual, typed

NAME = "typed_residual"


class TypedResidualRegressor(residual.ResidualRegressor):
    name = NAME


def create(names: Sequence[str], seed: int) -> residual.ResidualRegressor:
    reg = residual.create(names, seed, typed.PREFIX)
    return TypedResidualRegressor(names, seed, reg.base, None)


def load(names: Sequence[str], data: dict[str, Any]) -> residual.ResidualRegressor:
    reg = residual.load(names, data, typed.PREFIX)
    return TypedResidualRegressor(names, reg.seed, reg.base, reg.booster)
