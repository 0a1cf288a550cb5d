"""Block influence and FLAP-like allocators: the rules they implement, on the tiny llama."""

from __future__ import annotations

import dataclasses

import pytest

from allocsearch.actions import BlockAction
from allocsearch.allocation import get_allocator
from tests.helpers import tiny_profile


def test_block_influence_drops_the_least_influential_blocks() -> None:
    prof = tiny_profile(blocks=4)
    prof.influence = {**prof.influence, "block": [0.5, 0.1, 0.3, 0.2]}
    plan = get_allocator("block_influence").allocate(prof, 0.5)
    assert plan.blocks == {1: BlockAction(drop="block"), 3: BlockAction(drop="block")}
    assert plan.budget() == 0.5
    # 0.6 of 4 blocks = 2 blocks plus 0.4 of a block: taken from block 2's MLP channels first.
    plan = get_allocator("block_influence").allocate(prof, 0.6)
    assert plan.blocks[1].drop == plan.blocks[3].drop == "block"
    # a block: 3072 attention + 6144 MLP weights; 0.4 of it = 3686.4 -> 38 channels of 96
    assert plan.blocks[2] == BlockAction(mlp_channels=64 - 38)


def test_profile_influence_is_one_minus_cosine() -> None:
    prof = tiny_profile()
    assert set(prof.influence) == {"block", "attention", "mlp"}
    assert all(0.0 <= v <= 2.0 for vals in prof.influence.values() for v in vals)
    assert len(prof.influence["block"]) == prof.identity.num_blocks


def test_flap_ranks_units_by_their_standardised_fluctuation_in_their_layer() -> None:
    prof = tiny_profile()
    # Block 1's MLP channels 0..31 get (near) zero input variance: lowest in their layer.
    name = "model.layers.1.mlp.down_proj"
    sq = prof.sq_norm[name].clone()
    sq[:32] = (prof.total[name][:32] / prof.tokens).square() * prof.tokens * (1 + 1e-7)
    prof = dataclasses.replace(prof, sq_norm={**prof.sq_norm, name: sq})
    # The rule, written out: z-score each layer's column fluctuations, rank all channels.
    z = []
    for b in range(2):
        layer = f"model.layers.{b}.mlp.down_proj"
        _, var = prof.channel_moments(layer)
        f = (var.double() * prof.weight(layer).double().square().sum(0))
        z += [(float(v), b) for v in (f - f.mean()) / f.std()]
    for k in (10, 32, 50):
        target = k * 96 / (2 * 9216)  # k channels of 96 weights out of 2 blocks
        plan = get_allocator("flap", kinds="mlp").allocate(prof, target)
        cut = [b for _, b in sorted(z)[:k]]
        want = {b: BlockAction(mlp_channels=64 - cut.count(b)) for b in range(2) if b in cut}
        assert plan.blocks == want
        assert abs(plan.budget() - target) < 1e-12
    # the near-constant channels are block 1's lowest z (so they go first there)
    block1 = [v for v, b in z if b == 1]
    assert max(block1[:32]) < min(block1[32:])


def test_structured_allocators_refuse_models_without_structure() -> None:
    prof = tiny_profile("opt")
    with pytest.raises(ValueError, match="LLaMA-like"):
        get_allocator("flap").allocate(prof, 0.3)
