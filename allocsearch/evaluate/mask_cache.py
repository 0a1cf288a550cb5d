"""Cached masks: apply any plan to a model as one threshold per row, and restore it exactly.

For each prunable layer the cache keeps the dense weight once and the *rank* of every weight's
pruning score inside its comparison group (its output row for Wanda, the whole matrix for
magnitude), in the smallest integer dtype that holds it. A plan then becomes, per layer,
``rank < k``: no statistics recomputed, no model copied per candidate. Because the ranks come
from the same stable sort the pruners use, the masks equal a fresh one-shot prune on the
profile's (dense) statistics, bit for bit.

Memory: the dense copy (the prunable weights once more, in the model dtype) plus the ranks
(2 bytes per weight while a group has at most 32,767 entries, else 4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from allocsearch.engine import LayerTarget
from allocsearch.models.adapters import ModelAdapter
from allocsearch.pruners.masks import nm_mask, num_pruned
from allocsearch.pruners.pattern import UNSTRUCTURED, Pattern
from allocsearch.pruners.wanda_sparsify import wanda_scores

ScoreFn = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _magnitude(weight: torch.Tensor, _sq_norm: torch.Tensor | None) -> torch.Tensor:
    return weight.abs().float()


def _wanda(weight: torch.Tensor, sq_norm: torch.Tensor | None) -> torch.Tensor:
    if sq_norm is None:
        raise ValueError("wanda scores need the profile's input-channel norms")
    return wanda_scores(weight, sq_norm.to(weight.device))


@dataclass(frozen=True)
class ScoreRule:
    """How one pruner ranks weights: its score and the group the ranking runs within."""

    score: ScoreFn
    rowwise: bool  # True: rank within each output row (Wanda); False: over the whole matrix


#: The pruners whose masks a rank cache reproduces exactly (SparseGPT updates the kept
#: weights, so it has no fixed order; plans are verified with it instead).
SCORE_RULES: dict[str, ScoreRule] = {
    "wanda": ScoreRule(_wanda, rowwise=True),
    "magnitude": ScoreRule(_magnitude, rowwise=False),
}


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


class MaskCache:
    """Dense weights and score ranks of every prunable layer; writes plans in place.

    The cache owns the model's prunable weights while it lives: :meth:`apply` rewrites only
    the layers whose target changed since the last call, :meth:`restore` puts the dense
    weights back bit for bit.
    """

    def __init__(
        self,
        adapter: ModelAdapter,
        sq_norm: Mapping[str, torch.Tensor] | None,
        *,
        scores: str = "wanda",
    ) -> None:
        if scores not in SCORE_RULES:
            raise ValueError(f"unknown score rule {scores!r}; known: {', '.join(SCORE_RULES)}")
        self.adapter = adapter
        self.scores = scores
        self.rule = SCORE_RULES[scores]
        self._layers = adapter.prunable_layers()
        self.dense: dict[str, torch.Tensor] = {}
        self.rank: dict[str, torch.Tensor] = {}
        self._current: dict[str, tuple[int, Pattern] | None] = {}
        for name, layer in self._layers.items():
            w = adapter.get_weight(layer)  # (out, in) view of the parameter
            self.dense[name] = w.detach().clone()
            self._current[name] = None  # None = dense
        self._rank_all(sq_norm)

    def rescore(self, sq_norm: Mapping[str, torch.Tensor] | None) -> None:
        """Rank every layer's dense weights again with new input norms (name -> (in,)).
        The weights in the model are left as they are; the next :meth:`apply` rewrites
        every layer with the new ranks."""
        self._rank_all(sq_norm)
        self.forget()

    def _rank_all(self, sq_norm: Mapping[str, torch.Tensor] | None) -> None:
        for name, w in self.dense.items():
            norm = sq_norm.get(name) if sq_norm is not None else None
            self.rank[name] = score_ranks(self.rule.score(w, norm), self.rule.rowwise)

    @property
    def names(self) -> list[str]:
        return list(self._layers)

    def nbytes(self) -> dict[str, int]:
        """Bytes held: the dense copy and the ranks."""
        return {
            "dense_copy": sum(t.numel() * t.element_size() for t in self.dense.values()),
            "ranks": sum(t.numel() * t.element_size() for t in self.rank.values()),
        }

    def mask(self, name: str, sparsity: float, pattern: Pattern = UNSTRUCTURED) -> torch.Tensor:
        """(out, in) bool removal mask of one layer at one target."""
        return rank_mask(self.rank[name], sparsity, pattern, self.rule.rowwise)

    def apply(self, targets: Mapping[str, LayerTarget]) -> int:
        """Write every layer at its target (layers not named go dense); returns how many
        layers were rewritten."""
        unknown = set(targets) - set(self._layers)
        if unknown:
            raise KeyError(f"targets name layers the model does not have: {sorted(unknown)[:5]}")
        changed = 0
        for name, layer in self._layers.items():
            t = targets.get(name)
            key = None
            if t is not None and (t.pattern.is_nm or t.sparsity > 0):
                key = (num_pruned(self.dense[name].numel(), t.sparsity), t.pattern)
            if key == self._current[name]:
                continue
            w = self.adapter.get_weight(layer)
            if t is not None and key is not None:
                # One pass over the layer, w = dense * keep: twice as fast on CPU as
                # torch.where. Removed negative weights become -0.0, which equals 0 for
                # every test of sparsity (== 0, nonzero, sparse formats).
                keep = rank_keep(self.rank[name], t.sparsity, t.pattern, self.rule.rowwise)
                torch.mul(self.dense[name], keep, out=w)
            else:
                w.copy_(self.dense[name])
            self._current[name] = key
            changed += 1
        return changed

    def restore(self) -> None:
        """Put every dense weight back (bit-identical to when the cache was built)."""
        for name, layer in self._layers.items():
            self.adapter.get_weight(layer).copy_(self.dense[name])
            self._current[name] = None

    def forget(self) -> None:
        """Mark the model's weights as unknown (someone else wrote them): the next
        :meth:`apply` rewrites every layer."""
        for name in self._current:
            self._current[name] = (-1, UNSTRUCTURED)
