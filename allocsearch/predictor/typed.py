"""Ridge on the typed features: per projection kind, its removed score share weighted
smoothly over depth (``typed:<projection>:<k>``, 21 columns for LLaMA instead of the additive
model's 210). Fewer, shared coefficients: it generalises across studies where one coefficient
per module overfits the plans it saw."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from allocsearch.predictor import additive

NAME = "typed"
PREFIX = "typed:"


class TypedRegressor(additive.AdditiveRegressor):
    name = NAME


def create(names: Sequence[str], seed: int) -> TypedRegressor:
    return TypedRegressor(additive.columns(names, PREFIX))


def load(names: Sequence[str], data: dict[str, Any]) -> TypedRegressor:
    base = additive.load(names, data, PREFIX)
    return TypedRegressor(base.columns, base.coef, base.intercept)
