"""Cached ranks: apply any plan to a model as one threshold per row, and restore it exactly.

For each prunable layer the backend keeps the dense weight once and the *rank* of every
weight's pruning score inside its comparison group (its output row for Wanda, the whole matrix
for magnitude), in the smallest integer dtype that holds it. Scores come from the pruner itself
(:meth:`allocsearch.pruners.RankingPruner.scores`). A plan then becomes, per layer,
``rank < k``: no statistics recomputed, no model copied per candidate. Because the ranks come
from the same stable sort the pruners use, the masks equal a fresh one-shot prune on the
profile's (dense) statistics, bit for bit.

Memory: the dense copy (the prunable weights once more, in the model dtype) plus the ranks
(2 bytes per weight while a group has at most 32,767 entries, else 4).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from allocsearch.apply import plan_targets
from allocsearch.data.windows import DataConfig
from allocsearch.engine import LayerTarget
from allocsearch.evaluate.anchor import anchored_norms
from allocsearch.evaluate.backends.base import Backend, BackendSettings, StateKey
from allocsearch.models.loading import LoadedModel
from allocsearch.plan import Plan
from allocsearch.profile import Profile
from allocsearch.pruners import RankingPruner, get_pruner, ranking_pruners
from allocsearch.pruners.masks import nm_mask, num_pruned
from allocsearch.pruners.pattern import Pattern
from allocsearch.pruners.stats import LayerStats


def index_dtype(group_size: int) -> torch.dtype:
    """The smallest signed dtype that holds ranks 0 .. group_size - 1."""
    return torch.int16 if group_size <= torch.iinfo(torch.int16).max + 1 else torch.int32


def score_ranks(scores: torch.Tensor, rowwise: bool) -> torch.Tensor:
    """(out, in) rank of each score in its group (0 = lowest = pruned first), ties by position."""
    rows, cols = scores.shape
    flat = scores if rowwise else scores.reshape(1, -1)
    n = flat.shape[1]
    order = torch.argsort(flat, dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=scores.device).expand_as(order))
    return rank.to(index_dtype(n)).reshape(rows, cols)


def rank_mask(rank: torch.Tensor, sparsity: float, pattern: Pattern, rowwise: bool) -> torch.Tensor:
    """The (out, in) removal mask for one layer from its ranks, with exact counts."""
    return ~rank_keep(rank, sparsity, pattern, rowwise)


def rank_keep(rank: torch.Tensor, sparsity: float, pattern: Pattern, rowwise: bool) -> torch.Tensor:
    """The (out, in) *keep* mask (True = stays) for one layer from its ranks.

    Unstructured: row-wise groups prune ``k`` or ``k + 1`` each (the first rows take the
    remainder), exactly as :func:`allocsearch.pruners.masks.row_lowest_mask`; a layer-wise
    group prunes its ``num_pruned`` lowest. N:M: the lowest ``M - N`` ranks of each group of
    ``M`` inputs; ranks order a row like its scores, so this equals ``nm_mask`` on scores.
    """
    rows, cols = rank.shape
    if pattern.is_nm:
        return ~nm_mask(rank, pattern)
    total = num_pruned(rows * cols, sparsity)
    if not rowwise:
        return rank >= total
    base, extra = divmod(total, rows)
    # The rank dtype holds cols - 1; a count of cols (prune a whole row) needs one more.
    dtype = rank.dtype if base + 1 <= torch.iinfo(rank.dtype).max else torch.int32
    per_row = torch.full((rows, 1), base, dtype=dtype, device=rank.device)
    per_row[:extra] += 1
    return rank >= per_row


class RankBackend(Backend):
    """Score ranks of every prunable layer under a ranking pruner (Wanda, magnitude)."""

    name = "ranks"

    def __init__(self, loaded: LoadedModel, profile: Profile, settings: BackendSettings) -> None:
        self.check_pruner(settings.pruner)
        super().__init__(loaded, profile, settings)
        pruner = get_pruner(settings.pruner)
        assert isinstance(pruner, RankingPruner)
        self.pruner = pruner
        self.rank: dict[str, torch.Tensor] = {}
        self._rank_all(profile.sq_norm)

    @staticmethod
    def check_pruner(pruner: str) -> None:
        known = ranking_pruners()
        if pruner not in known:
            raise ValueError(f"the ranks backend reproduces the ranking pruners "
                             f"({', '.join(known)}), not {pruner!r}; for SparseGPT use "
                             f"masks: database")

    def rescore(self, sq_norm: Mapping[str, torch.Tensor] | None) -> None:
        """Rank every layer's dense weights again with new input norms (name -> (in,)).
        The weights in the model are left as they are; the next :meth:`apply` rewrites
        every layer with the new ranks."""
        self._rank_all(sq_norm)
        self.forget()

    def _rank_all(self, sq_norm: Mapping[str, torch.Tensor] | None) -> None:
        for name, w in self.dense.items():
            norm = sq_norm.get(name) if sq_norm is not None else None
            stats = LayerStats(1, sq_norm=norm) if norm is not None else None
            if self.pruner.needs_norms and stats is None:
                raise ValueError(f"{self.pruner.name} ranks need the profile's input-channel norms")
            self.rank[name] = score_ranks(self.pruner.scores(w, stats), self.pruner.rowwise)

    def nbytes(self) -> dict[str, int]:
        return super().nbytes() | {
            "ranks": sum(t.numel() * t.element_size() for t in self.rank.values())}

    def mask(self, name: str, sparsity: float, pattern: Pattern) -> torch.Tensor:
        """(out, in) bool removal mask of one layer at one target."""
        return rank_mask(self.rank[name], sparsity, pattern, self.pruner.rowwise)

    def check(self, plan: Plan) -> None:
        """Any plan: every sparsity and N:M pattern has a rank threshold."""

    def _key(self, name: str, target: LayerTarget) -> StateKey:
        return (num_pruned(self.dense[name].numel(), target.sparsity), target.pattern)

    def _write(self, name: str, weight: torch.Tensor, target: LayerTarget) -> None:
        # One pass over the layer, w = dense * keep: twice as fast on CPU as torch.where.
        # Removed negative weights become -0.0, which equals 0 for every test of sparsity.
        keep = rank_keep(self.rank[name], target.sparsity, target.pattern, self.pruner.rowwise)
        torch.mul(self.dense[name], keep, out=weight)

    def anchor(self, plan: Plan | None, calibration: DataConfig) -> None:
        """Score masks with the input norms a sequential Wanda prune at ``plan`` sees on the
        ``calibration`` windows (:mod:`allocsearch.evaluate.anchor`)."""
        if self.pruner.name != "wanda":
            raise ValueError(f"anchored ranks need Wanda scores, not {self.pruner.name!r}")
        if plan is None:
            self.rescore(self.profile.sq_norm)
            return
        try:
            norms = anchored_norms(self.loaded, plan_targets(plan), calibration,
                                   batch_size=self.settings.batch_size,
                                   progress=self.settings.progress)
        finally:
            self.restore()
        # Layers after the plan's last pruned block never reach the pruner: dense norms.
        self.rescore({**self.profile.sq_norm, **norms})
