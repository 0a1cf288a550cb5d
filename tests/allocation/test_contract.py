"""Contract every registered allocator must honour: exact budget, bounds, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from allocsearch.allocation import ALLOCATORS, get_allocator
from allocsearch.allocation.base import unit_cost
from allocsearch.plan import Plan
from allocsearch.profile import Profile
from tests.helpers import tiny_profile

FAST = {"besa": {"steps": 3, "nsamples": 2, "seqlen": 16, "progress": False}}


@pytest.fixture(scope="module")
def profile() -> Profile:
    return tiny_profile("llama")


@pytest.mark.parametrize("name", sorted(ALLOCATORS))
@pytest.mark.parametrize("target", [0.3, 0.5, 0.7])
def test_budget_exact_and_bounds(profile: Profile, name: str, target: float) -> None:
    params = {**FAST.get(name, {}), "min_sparsity": 0.05, "max_sparsity": 0.9}
    allocator = get_allocator(name, **params)
    plan = allocator.allocate(profile, target)
    if allocator.structured:
        # Whole heads and channels: the requested target is met to within half a unit (a KV
        # group of the tiny model is 1/12 of a block's parameters), the plan's own exactly.
        ident = profile.identity
        total = sum(ident.numel(n) for n in ident.shapes)
        half_unit = max(unit_cost(ident, 0, k) for k in ("attention", "mlp")) / total / 2
        assert abs(plan.budget() - target) <= half_unit + 1e-12
        assert plan.target == pytest.approx(plan.budget(), abs=1e-12)
        assert plan.provenance["requested_target"] == target
        assert plan.structured()
    else:
        assert abs(plan.budget() - target) <= 1e-6
        values = np.array(list(plan.sparsities().values()))
        assert values.min() >= 0.05 - 1e-12 and values.max() <= 0.9 + 1e-12
    assert set(plan.modules) == set(profile.identity.shapes)
    assert plan.provenance["method"] == name
    again = get_allocator(name, **params).allocate(profile, target)
    assert again.sparsities() == pytest.approx(plan.sparsities(), abs=1e-9)
    assert Plan.from_dict(plan.to_dict()).sparsities() == plan.sparsities()
    assert Plan.from_dict(plan.to_dict()).blocks == plan.blocks


@pytest.mark.parametrize("name", sorted(ALLOCATORS))
def test_unknown_parameter_is_named(name: str) -> None:
    with pytest.raises(ValueError, match="no parameter"):
        get_allocator(name, bogus=1)


def test_unknown_allocator() -> None:
    with pytest.raises(ValueError, match="alpha, besa, block_influence, flap, owl, ramp, uniform"):
        get_allocator("evopress")
