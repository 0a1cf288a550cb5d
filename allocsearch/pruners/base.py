"""The pruner interface: a pure function of tensors.

``prune(weight, stats, sparsity, pattern) -> PruneResult`` with weight shaped
(out_features, in_features) in the layer's own orientation-free form (the model adapter
transposes GPT-2's Conv1D before and after). Pruners never walk models, load data, print,
or choose devices: they compute on whatever device the weight is on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from allocsearch.pruners.pattern import UNSTRUCTURED, Pattern
from allocsearch.pruners.stats import LayerStats


@dataclass(frozen=True)
class PruneResult:
    """``mask`` is True where a weight was removed; ``weight`` is the new weight (zeros at
    the mask; SparseGPT also updates the kept weights)."""

    mask: torch.Tensor  # (out, in) bool
    weight: torch.Tensor  # (out, in), the input's dtype

    @property
    def sparsity(self) -> float:
        return float(self.mask.sum().item()) / self.mask.numel()


class Pruner(ABC):
    """Base class for registered pruners."""

    name: ClassVar[str]
    #: Which statistics the engine must collect for this pruner.
    needs_norms: ClassVar[bool] = False
    needs_hessian: ClassVar[bool] = False

    @property
    def needs_data(self) -> bool:
        return self.needs_norms or self.needs_hessian

    def prune(
        self,
        weight: torch.Tensor,
        stats: LayerStats | None,
        sparsity: float | None,
        pattern: Pattern | str | None = None,
    ) -> PruneResult:
        """Prune one matrix. ``sparsity`` may be None for an N:M pattern (it is implied)."""
        pat = Pattern.parse(pattern)
        s = pat.resolve_sparsity(sparsity)
        self._check(weight, stats)
        if s == 0.0 and not pat.is_nm:
            return PruneResult(torch.zeros_like(weight, dtype=torch.bool), weight.clone())
        return self._prune(weight, stats, s, pat)

    def prune_levels(
        self, weight: torch.Tensor, stats: LayerStats | None, sparsities: Sequence[float]
    ) -> list[PruneResult]:
        """Unstructured prunes of one matrix at several sparsities, each equal to
        :meth:`prune` at that sparsity (a pruner may share work between them)."""
        levels = [UNSTRUCTURED.resolve_sparsity(s) for s in sparsities]
        self._check(weight, stats)
        dense = [s == 0.0 for s in levels]
        todo = [s for s, d in zip(levels, dense, strict=True) if not d]
        done = iter(self._prune_levels(weight, stats, todo) if todo else [])
        return [self.prune(weight, stats, 0.0) if d else next(done) for d in dense]

    def _check(self, weight: torch.Tensor, stats: LayerStats | None) -> None:
        if weight.ndim != 2:
            raise ValueError(f"expected a 2-D weight (out, in), got shape {tuple(weight.shape)}")
        if self.needs_data and stats is None:
            raise ValueError(f"pruner {self.name!r} needs calibration statistics")

    def _prune_levels(
        self, weight: torch.Tensor, stats: LayerStats | None, sparsities: list[float]
    ) -> list[PruneResult]:
        return [self._prune(weight, stats, s, UNSTRUCTURED) for s in sparsities]

    @abstractmethod
    def _prune(
        self, weight: torch.Tensor, stats: LayerStats | None, sparsity: float, pattern: Pattern
    ) -> PruneResult: ...


class RankingPruner(Pruner):
    """A pruner whose mask removes the lowest of a fixed per-weight score: within each output
    row (``rowwise``) or over the whole matrix. Its order does not depend on the sparsity, so
    a rank cache can reproduce any of its masks (:mod:`allocsearch.evaluate.backends`)."""

    rowwise: ClassVar[bool]

    @abstractmethod
    def scores(self, weight: torch.Tensor, stats: LayerStats | None) -> torch.Tensor:
        """(out, in) float scores; lower is pruned first, ties by position."""


def apply_mask(weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A copy of ``weight`` with the masked entries set to zero."""
    return weight.masked_fill(mask, 0)
