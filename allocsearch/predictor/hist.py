"""scikit-learn's HistGradientBoostingRegressor, saved with skops (never pickle)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingRegressor

NAME = "hist"
PARAMS: dict[str, Any] = {"max_iter": 300, "learning_rate": 0.05, "max_depth": 4,
                          "min_samples_leaf": 5, "max_features": 0.5, "l2_regularization": 1.0}
#: Only types from these packages may be rebuilt from a saved file.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "builtins.")


class HistRegressor:
    name = NAME

    def __init__(self, model: HistGradientBoostingRegressor) -> None:
        self.model = model

    def fit(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> None:
        self.model.fit(x, y)

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(self.model.predict(x), dtype=np.float64)

    def to_data(self) -> dict[str, Any]:
        import skops.io as sio

        return {"skops": base64.b64encode(sio.dumps(self.model)).decode("ascii")}


def create(names: Sequence[str], seed: int) -> HistRegressor:
    return HistRegressor(HistGradientBoostingRegressor(random_state=seed, **PARAMS))


def load(names: Sequence[str], data: dict[str, Any]) -> HistRegressor:
    import skops.io as sio

    raw = base64.b64decode(data["skops"])
    types = sio.get_untrusted_types(data=raw)
    bad = [t for t in types if not t.startswith(TRUSTED_PREFIXES)]
    if bad:
        raise ValueError(f"refusing to load a scikit-learn model holding untrusted types: {bad[:5]}")
    model = sio.loads(raw, trusted=types)
    if not isinstance(model, HistGradientBoostingRegressor):
        raise ValueError(f"expected a HistGradientBoostingRegressor, got {type(model).__name__}")
    return HistRegressor(model)
