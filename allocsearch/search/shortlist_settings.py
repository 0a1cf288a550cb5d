"""How a study short-lists with the accuracy predictor: the ``predictor:`` section of a study
config (``model: none`` and no ``file``: off)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from allocsearch.predictor.base import regressor_names
from allocsearch.predictor.model import Predictor


@dataclass(frozen=True)
class PredictorSettings:
    """Short-listing: a share of the searched trials comes from the predictor's short list,
    the rest from the configured sampler (which learns from every trial, screened or not).

    Each **round** trains the predictor on the study's completed trials (every
    ``retrain_every`` rounds; with ``file``, on the file's records plus the study's), screens a
    ``pool`` of candidates (``mutations`` of them level-switch mutations of the study's best
    plans, the rest a surrogate evolution minimising the optimistic bound mean - ``kappa`` *
    std) and queues the best ``k``. ``share`` of the searched (not warm-start) trials take the
    next queued candidate. Without ``file``, rounds start once ``warmup`` trials completed;
    with one (a predictor JSON from ``allocsearch predictor train``), at the first searched
    trial, and ``model`` is the file's."""

    model: str = "none"
    file: str | None = None
    share: float = 0.5
    pool: int = 2000
    k: int = 4
    warmup: int = 16
    retrain_every: int = 1
    members: int = 5
    kappa: float = 1.0
    mutations: float = 0.5

    def __post_init__(self) -> None:
        known = ["none", *regressor_names()] if self.model != "none" else ["none"]
        if self.model not in known:
            raise ValueError(f"predictor.model must be one of {known}, got {self.model!r}")
        if self.pool < 1 or not 1 <= self.k <= self.pool or self.warmup < 4 or self.retrain_every < 1 \
                or self.members < 1:
            raise ValueError("predictor needs pool >= k >= 1, warmup >= 4 (a predictor needs data), "
                             "retrain_every >= 1 and members >= 1")
        if self.kappa < 0 or not 0.0 <= self.mutations <= 1.0 or not 0.0 < self.share <= 1.0:
            raise ValueError("predictor needs kappa >= 0, 0 <= mutations <= 1 and 0 < share <= 1")
        if self.file is not None:
            if not Path(self.file).is_file():
                raise ValueError(f"predictor.file: no such file {self.file!r} (train one with "
                                 f"'allocsearch predictor train ... --out P.json')")
            Predictor.load(self.file)  # a foreign or broken file fails here, before any study exists

    @property
    def enabled(self) -> bool:
        return self.model != "none" or self.file is not None
