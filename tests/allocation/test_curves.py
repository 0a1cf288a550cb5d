"""Allocation from block loss curves: the exact programme on hand-made curves, the budget,
the mix with a prior, the data round trip."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from allocsearch.allocation import get_allocator
from allocsearch.allocation.curves import BlockCurves, curve_allocation, curve_plan
from tests.helpers import tiny_profile

# Block 0: log-ppl rises 2 per unit of sparsity up to 0.5, then 5; block 1: 0.4, then 24.5.
TWO = BlockCurves(levels=(0.5, 0.9), delta=((1.0, 3.0), (0.2, 10.0)), tokens=64)


def test_two_blocks_take_the_cheapest_sparsity_first() -> None:
    # At 60% of two equal blocks (1.2 in all): block 1 to 0.5 costs 0.2, block 0 to 0.7 costs
    # 1.0 + 0.2 * 5; any other split costs more. A Lagrange multiplier would jump to (0.9, 0.5).
    s = curve_allocation(TWO, 0.6, [1.0, 1.0], step=0.1)
    assert s.tolist() == pytest.approx([0.7, 0.5])


def test_never_allocates_past_the_last_measured_level() -> None:
    with pytest.raises(ValueError, match="measured levels"):
        curve_allocation(TWO, 0.92, [1.0, 1.0])
    s = curve_allocation(TWO, 0.9, [1.0, 1.0])
    assert s.tolist() == pytest.approx([0.9, 0.9])


def test_matches_exhaustive_search_on_unequal_blocks() -> None:
    rng = np.random.default_rng(0)
    levels = (0.25, 0.5, 0.75)
    delta = tuple(tuple(np.sort(rng.uniform(0, 3, 3)).tolist()) for _ in range(3))
    curves = BlockCurves(levels, delta, tokens=64)
    weights = [1.0, 2.0, 1.0]
    step, target = 0.25, 0.5
    s = curve_allocation(curves, target, weights, step=step, bounds=(0.0, 0.75))
    grid = np.arange(4, dtype=np.float64) * step
    cost = curves.cost(grid)
    best = min((sum(cost[b, g] for b, g in enumerate(c)), c) for c in itertools.product(range(4), repeat=3)
               if abs(sum(w * grid[g] for w, g in zip(weights, c, strict=True)) - target * 4) < 1e-9)
    assert np.dot(weights, s) == pytest.approx(target * 4)
    assert sum(cost[b, round(v / step)] for b, v in enumerate(s)) == pytest.approx(best[0])


def test_plan_meets_the_budget_and_mix_zero_is_the_prior() -> None:
    prof = tiny_profile()
    ident = prof.identity
    curves = BlockCurves((0.3, 0.6, 0.9), ((0.5, 2.0, 4.0), (0.05, 0.2, 1.0)), tokens=64)
    pure = curve_plan(ident, curves, 0.6, mix=1.0)
    assert abs(pure.budget() - 0.6) < 1e-6
    assert pure.block_sparsity() == pytest.approx([0.3, 0.9])  # block 1 is the cheaper one
    ramp = get_allocator("ramp", slope=0.2).allocate(prof, 0.6)
    same = curve_plan(ident, curves, 0.6, prior=ramp, mix=0.0)
    assert same.block_sparsity() == pytest.approx(ramp.block_sparsity(), abs=1e-9)
    half = curve_plan(ident, curves, 0.6, prior=ramp, mix=0.5)
    assert abs(half.budget() - 0.6) < 1e-6
    with pytest.raises(ValueError, match="needs a prior"):
        curve_plan(ident, curves, 0.6, mix=0.5)


def test_curves_round_trip_and_refuse_bad_data() -> None:
    assert BlockCurves.from_dict(TWO.to_dict()) == TWO
    with pytest.raises(ValueError, match="schema"):
        BlockCurves.from_dict(TWO.to_dict() | {"schema_version": 99})
    with pytest.raises(ValueError, match="increase"):
        BlockCurves((0.5, 0.5), ((1.0, 2.0),), tokens=1)
    with pytest.raises(ValueError, match="one row"):
        BlockCurves((0.5, 0.9), ((1.0,),), tokens=1)
    # A noisy dip is flattened: pruning more never looks cheaper.
    dip = BlockCurves((0.5, 0.9), ((1.0, 0.5),), tokens=1)
    assert dip.cost(np.array([0.5, 0.9])).tolist() == [[1.0, 1.0]]


# Around a plan: the rise over that plan, negative below its level; block 0 gains 0.3 by going
# from 0.5 to 0.3 and loses 0.6 by going to 0.7; block 1 loses or gains 0.05 per 0.2.
AROUND = BlockCurves((0.3, 0.5, 0.7), ((-0.3, 0.0, 0.6), (-0.05, 0.0, 0.05)), tokens=64, around="uniform")


def test_curves_around_a_plan_start_at_their_lowest_level() -> None:
    assert AROUND.floor == 0.3 and TWO.floor == 0.0
    # No anchor at sparsity 0: the cost is the measured rise itself, flat below the lowest level.
    cost = AROUND.cost(np.array([0.3, 0.4, 0.7]))  # (blocks, grid)
    np.testing.assert_allclose(cost, [[-0.3, -0.15, 0.6], [-0.05, -0.025, 0.05]], atol=1e-12)
    # At 50% the cheapest split moves block 0 down to 0.3 and block 1 up to 0.7 (-0.25 in all).
    s = curve_allocation(AROUND, 0.5, [1.0, 1.0], step=0.1)
    assert s.tolist() == pytest.approx([0.3, 0.7])
    with pytest.raises(ValueError, match="measured levels"):  # below the lowest level: unknown
        curve_allocation(AROUND, 0.25, [1.0, 1.0], step=0.05)
    assert BlockCurves.from_dict(AROUND.to_dict()) == AROUND
    assert BlockCurves.from_dict(TWO.to_dict() | {"around": ""}).around == ""  # older files read as dense
