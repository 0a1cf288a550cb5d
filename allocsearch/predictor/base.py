"""The regressor protocol behind a predictor, and its registry.

A :class:`Regressor` maps feature rows to log-fitness. It is one ensemble member: the
predictor trains several on different subsamples and seeds and reads their spread as the
uncertainty. Each regressor serialises to plain JSON data (XGBoost's own JSON, skops bytes
for scikit-learn, coefficients for the linear baseline): nothing is ever pickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from allocsearch._registry import lookup

#: The model ``Predictor.train``, ``predictor train`` and study short-listing use unless told
#: otherwise: the one that ranked held-out studies best in ``benchmarks/predictor.py --suite
#: quality`` (``default_model`` in its JSON; the README gives the figures).
DEFAULT_MODEL = "typed_target_modules_residual"


class Regressor(Protocol):
    """One member: ``fit`` on (rows, features) and log-fitness, ``predict`` rows."""

    name: str

    def fit(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> None: ...

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.float64]: ...

    def to_data(self) -> dict[str, Any]: ...


def _backends() -> dict[str, ModuleType]:
    """The registry: name -> module with ``create(names, seed)`` and ``load(names, data)``.
    Imported on first use, since the modules import xgboost and scikit-learn."""
    from allocsearch.predictor import (
        additive,
        hist,
        lgbm_linear,
        ranker,
        residual,
        typed,
        typed_residual,
        typed_target,
        typed_target_modules_residual,
        typed_target_residual,
        typed_target_robust_residual,
        xgb,
        xgb_monotone,
    )

    modules = (xgb, xgb_monotone, residual, typed_residual, lgbm_linear, ranker, hist, additive, typed,
               typed_target, typed_target_residual, typed_target_robust_residual,
               typed_target_modules_residual)
    return {m.NAME: m for m in modules}


def make_regressor(name: str, names: Sequence[str], seed: int) -> Regressor:
    return cast(Regressor, lookup(_backends(), name, "predictor model").create(names, seed))


def load_regressor(name: str, names: Sequence[str], data: dict[str, Any]) -> Regressor:
    return cast(Regressor, lookup(_backends(), name, "predictor model").load(names, data))


def regressor_names() -> list[str]:
    return sorted(_backends())
