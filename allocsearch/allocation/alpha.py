"""AlphaPruning: allocate by the heavy-tail exponent of each weight spectrum (Lu et al., 2024).

Heavier tails (smaller Hill alpha) mark better-trained layers, which are pruned less:
alpha is min-max mapped linearly into [target - eps, target + eps] per block (mean of its
modules' alphas) or per module, then projected to the exact budget. No calibration data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from allocsearch.allocation.base import Allocator, GroupedParams, allocate_by_group, min_max
from allocsearch.profile import Profile


@dataclass(frozen=True)
class AlphaParams(GroupedParams):
    eps: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.eps < 0:
            raise ValueError(f"eps must be non-negative, got {self.eps}")


def alpha_sparsities(alphas: np.ndarray, target: float, eps: float) -> np.ndarray:
    return target - eps + 2.0 * eps * min_max(np.asarray(alphas, dtype=np.float64))


class AlphaAllocator(Allocator):
    name = "alpha"
    Params = AlphaParams

    def _values(self, profile: Profile, target: float) -> Mapping[str, float]:
        p = self.params
        assert isinstance(p, AlphaParams)
        return allocate_by_group(
            profile,
            p.granularity,
            lambda names: float(np.mean([profile.alpha[n] for n in names])),
            lambda alphas: alpha_sparsities(alphas, target, p.eps),
        )
