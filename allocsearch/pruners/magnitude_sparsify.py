"""Magnitude pruning: remove the smallest |W| across the whole matrix (layer-wise)."""

from __future__ import annotations

import torch

from allocsearch.pruners.base import PruneResult, RankingPruner, apply_mask
from allocsearch.pruners.masks import lowest_mask, nm_mask, num_pruned
from allocsearch.pruners.pattern import Pattern
from allocsearch.pruners.stats import LayerStats


def magnitude_scores(weight: torch.Tensor) -> torch.Tensor:
    """(out, in) float32 |W|."""
    return weight.abs().float()


def magnitude_mask(weight: torch.Tensor, sparsity: float, pattern: Pattern) -> torch.Tensor:
    scores = magnitude_scores(weight)
    if pattern.is_nm:
        return nm_mask(scores, pattern)
    return lowest_mask(scores, num_pruned(scores.numel(), sparsity))


class MagnitudePruner(RankingPruner):
    """The data-free baseline; comparison group is the whole layer, as in the Wanda paper."""

    name = "magnitude"
    rowwise = False

    def scores(self, weight: torch.Tensor, stats: LayerStats | None) -> torch.Tensor:
        return magnitude_scores(weight)

    def _prune(
        self, weight: torch.Tensor, stats: LayerStats | None, sparsity: float, pattern: Pattern
    ) -> PruneResult:
        mask = magnitude_mask(weight, sparsity, pattern)
        return PruneResult(mask, apply_mask(weight, mask))
