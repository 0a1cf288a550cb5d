"""XGBoost with a pairwise ranking objective: trained to order plans, not to fit their
fitness, then mapped back to log-fitness by a straight line fitted on the training plans
(the screening bound needs predictions on that scale). Monotone like ``xgboost_monotone``,
with the signs flipped: a higher ranking score is a better plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from allocsearch.predictor.monotone import monotone_signs
from allocsearch.predictor.xgb import booster_from_data, booster_predict, booster_to_data, train_booster

NAME = "ranker"


class RankRegressor:
    name = NAME

    def __init__(self, names: Sequence[str], seed: int, booster: Any = None,
                 line: tuple[float, float] = (1.0, 0.0)) -> None:
        self.seed = seed
        self.booster = booster
        self.line = line  # log-fitness = line[0] * score + line[1]
        signs = ",".join(str(-s) for s in monotone_signs(names))
        self.params = {"objective": "rank:pairwise", "monotone_constraints": f"({signs})",
                       "lambdarank_pair_method": "mean", "lambdarank_num_pair_per_sample": 8}

    def fit(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> None:
        # One query group holding every plan; relevance is minus the log-fitness (higher is better).
        self.booster = train_booster(x, -y, self.seed, params=self.params,
                                     qid=np.zeros(len(y), dtype=np.int64))
        score = booster_predict(self.booster, x)
        slope, intercept = np.polyfit(score, y, 1) if np.ptp(score) > 0 else (0.0, float(y.mean()))
        self.line = (float(slope), float(intercept))

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.booster is None:
            raise ValueError("this regressor is not fitted")
        return self.line[0] * booster_predict(self.booster, x) + self.line[1]

    def to_data(self) -> dict[str, Any]:
        if self.booster is None:
            raise ValueError("this regressor is not fitted")
        return {"seed": self.seed, "line": list(self.line), "booster": booster_to_data(self.booster)}


def create(names: Sequence[str], seed: int) -> RankRegressor:
    return RankRegressor(names, seed)


def load(names: Sequence[str], data: dict[str, Any]) -> RankRegressor:
    slope, intercept = data["line"]
    return RankRegressor(names, int(data["seed"]), booster_from_data(data["booster"]),
                         (float(slope), float(intercept)))
