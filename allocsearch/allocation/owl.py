"""OWL: outlier-weighted layer-wise sparsity (Yin et al., 2024).

Per block (or per module), the outlier ratio D is the share of Wanda scores above
M times the group's mean score. Ratios are min-max scaled into [0, 2*lambda] and centred
on the target *keep* ratio, so groups with more outliers keep more weights:
``sparsity = 1 - (scaled - mean(scaled) + 1 - target)``. Then projected to the exact
parameter-weighted budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from allocsearch.allocation.base import Allocator, GroupedParams, allocate_by_group, min_max
from allocsearch.profile import Profile


@dataclass(frozen=True)
class OwlParams(GroupedParams):
    M: float = 5.0
    lam: float = 0.08

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.M <= 0 or self.lam < 0:
            raise ValueError(f"OWL needs M > 0 and lam >= 0, got M={self.M}, lam={self.lam}")


def outlier_ratio(scores: Sequence[torch.Tensor], m: float) -> float:
    """Share of all the given scores above ``m`` times their joint mean."""
    flat = torch.cat([s.reshape(-1).float() for s in scores])
    return float((flat > m * flat.mean()).sum()) / flat.numel()


def owl_sparsities(ratios: Sequence[float] | np.ndarray, target: float, lam: float) -> np.ndarray:
    """The OWL formula on outlier ratios (one per group)."""
    scaled = min_max(np.asarray(ratios, dtype=np.float64)) * 2.0 * lam
    keep = scaled - scaled.mean() + (1.0 - target)
    return np.asarray(1.0 - keep, dtype=np.float64)


class OwlAllocator(Allocator):
    name = "owl"
    Params = OwlParams
    needs_model = True

    def _values(self, profile: Profile, target: float) -> Mapping[str, float]:
        p = self.params
        assert isinstance(p, OwlParams)
        return allocate_by_group(
            profile,
            p.granularity,
            lambda names: outlier_ratio([profile.wanda_scores(n) for n in names], p.M),
            lambda ratios: owl_sparsities(ratios, target, p.lam),
        )
