"""Pruners: pure tensor functions ``(weight, stats, sparsity, pattern) -> PruneResult``.

``PRUNERS`` is the registry: a plain dict from name to class.
"""

from __future__ import annotations

from typing import Any

from allocsearch._registry import lookup
from allocsearch.pruners.base import Pruner, PruneResult, RankingPruner
from allocsearch.pruners.magnitude_sparsify import MagnitudePruner
from allocsearch.pruners.pattern import UNSTRUCTURED, Pattern
from allocsearch.pruners.sparsegpt_sparsify import SparseGPTPruner
from allocsearch.pruners.stats import LayerStats, StatsAccumulator
from allocsearch.pruners.wanda_sparsify import WandaPruner

PRUNERS: dict[str, type[Pruner]] = {
    MagnitudePruner.name: MagnitudePruner,
    WandaPruner.name: WandaPruner,
    SparseGPTPruner.name: SparseGPTPruner,
}


def get_pruner(name: str, **params: Any) -> Pruner:
    """Instantiate a registered pruner by name."""
    return lookup(PRUNERS, name, "pruner")(**params)


def ranking_pruners() -> list[str]:
    """The pruners whose masks follow a fixed score order (a rank cache reproduces them)."""
    return [n for n, cls in PRUNERS.items() if issubclass(cls, RankingPruner)]


__all__ = [
    "PRUNERS",
    "UNSTRUCTURED",
    "LayerStats",
    "MagnitudePruner",
    "Pattern",
    "PruneResult",
    "Pruner",
    "RankingPruner",
    "SparseGPTPruner",
    "StatsAccumulator",
    "WandaPruner",
    "get_pruner",
    "ranking_pruners",
]
