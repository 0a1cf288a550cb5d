"""AlphaPruning: allocate by the heavy-tail exponent of each weight spectrum (Lu et al., 2024).

Heavier tails (smaller Hill alpha) mark better-trained layers, which are pruned less:
alpha is min-max mapped linearly into [target - eps, target + eps] per block (mean of its
modules' alphas) or per module, then projected to the exact budget. No calibration data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from allocsearch.allocation.base import (
    Allocator,
    AllocatorParams,
    check_granularity,
    min_max,
    spread_blocks,
)
from allocsearch.profile import Profile


@dataclass(frozen=True)
class AlphaParams(AllocatorParams):
    eps: float = 0.1
    granularity: str = "block"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_granularity(self.granularity)
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
        if p.granularity == "block":
            per_block = np.array([
                np.mean([profile.alpha[n] for n in names]) for names in profile.blocks()
            ])
            return spread_blocks(profile, alpha_sparsities(per_block, target, p.eps))
        names = list(profile.identity.shapes)
        values = alpha_sparsities(np.array([profile.alpha[n] for n in names]), target, p.eps)
        return dict(zip(names, values.tolist(), strict=True))
