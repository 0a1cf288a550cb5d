"""Ramp: sparsity rising linearly with depth, a cheap structural prior.

Block b of B gets ``target + slope * (b / (B - 1) - 1/2)``: slope 0.3 at 70% runs from 0.55
in the first block to 0.85 in the last (a negative slope prunes early blocks more).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from allocsearch.allocation.base import Allocator, AllocatorParams, spread_blocks
from allocsearch.profile import Profile


@dataclass(frozen=True)
class RampParams(AllocatorParams):
    slope: float = 0.2


def ramp_sparsities(num_blocks: int, target: float, slope: float) -> np.ndarray:
    depth = np.linspace(0.0, 1.0, num_blocks) if num_blocks > 1 else np.array([0.5])
    return target + slope * (depth - 0.5)


class RampAllocator(Allocator):
    name = "ramp"
    Params = RampParams

    def _values(self, profile: Profile, target: float) -> Mapping[str, float]:
        assert isinstance(self.params, RampParams)
        per_block = ramp_sparsities(profile.identity.num_blocks, target, self.params.slope)
        return spread_blocks(profile, per_block)
