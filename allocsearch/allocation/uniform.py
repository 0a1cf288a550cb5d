"""Uniform: every prunable layer at the target."""

from __future__ import annotations

from collections.abc import Mapping

from allocsearch.allocation.base import Allocator
from allocsearch.profile import Profile


class UniformAllocator(Allocator):
    name = "uniform"

    def _values(self, profile: Profile, target: float) -> Mapping[str, float]:
        return {n: target for n in profile.identity.shapes}
