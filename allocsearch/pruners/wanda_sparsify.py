"""Wanda: score |W_ij| * ||X_j||_2, compared within each output row (Sun et al., 2023)."""

from __future__ import annotations

import torch

from allocsearch.pruners.base import PruneResult, RankingPruner, apply_mask
from allocsearch.pruners.masks import nm_mask, row_lowest_mask
from allocsearch.pruners.pattern import Pattern
from allocsearch.pruners.stats import LayerStats


def wanda_scores(weight: torch.Tensor, sq_norm: torch.Tensor) -> torch.Tensor:
    """(out, in) scores from the weight and the (in,) squared input-channel norms."""
    return weight.abs().float() * sq_norm.float().sqrt().unsqueeze(0)


def wanda_mask(scores: torch.Tensor, sparsity: float, pattern: Pattern) -> torch.Tensor:
    if pattern.is_nm:
        return nm_mask(scores, pattern)
    return row_lowest_mask(scores, sparsity)


class WandaPruner(RankingPruner):
    name = "wanda"
    needs_norms = True
    rowwise = True

    def scores(self, weight: torch.Tensor, stats: LayerStats | None) -> torch.Tensor:
        if stats is None:
            raise ValueError("wanda scores need the input-channel norms")
        return wanda_scores(weight, stats.require_sq_norm(self.name).to(weight.device))

    def _prune(
        self, weight: torch.Tensor, stats: LayerStats | None, sparsity: float, pattern: Pattern
    ) -> PruneResult:
        assert stats is not None  # checked by Pruner.prune
        mask = wanda_mask(self.scores(weight, stats), sparsity, pattern)
        return PruneResult(mask, apply_mask(weight, mask))
