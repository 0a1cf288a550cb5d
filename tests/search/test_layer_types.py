"""Layer types only where the budget allows: which pins are undone, in which order."""

from __future__ import annotations

from allocsearch.plan import ModelIdentity
from allocsearch.search.layer_types import repair_layer_types

# Four blocks of one 10 x 10 module each: every block weighs a quarter of the budget.
IDENT = ModelIdentity("toy", "llama", 4, {f"model.layers.{b}.mlp.down_proj": (10, 10)
                                          for b in range(4)})
BOUNDS = (0.0, 0.95)


def test_feasible_pins_are_kept() -> None:
    pins = {0: 0.0, 1: 0.5}
    assert repair_layer_types(IDENT, 0.5, pins, {}, BOUNDS) == pins  # reach [0.125, 0.6125]


def test_too_high_a_target_undoes_dense_blocks_first_largest_offset_first() -> None:
    pins = {0: 0.0, 1: 0.5, 2: 0.0}
    offsets = {0: 0.1, 2: -0.1}
    # Reach at most (0 + .5 + 0 + .95) / 4 = .3625. Undoing dense block 0 (offset .1 > -.1)
    # gives .6: enough for 55%, not for 70%, which also needs block 2 (then .8375).
    assert repair_layer_types(IDENT, 0.55, pins, offsets, BOUNDS) == {1: 0.5, 2: 0.0}
    assert repair_layer_types(IDENT, 0.7, pins, offsets, BOUNDS) == {1: 0.5}


def test_too_low_a_target_undoes_the_sparsest_pins_smallest_offset_first() -> None:
    pins = {0: 0.5, 1: 0.5, 3: 0.5}
    offsets = {0: -0.2, 1: 0.0, 3: 0.3}
    # At least 1.5 / 4 = .375 is pruned; 20% needs two of the 2:4 blocks undone (.125).
    assert repair_layer_types(IDENT, 0.2, pins, offsets, BOUNDS) == {3: 0.5}


def test_everything_undone_when_nothing_else_fits() -> None:
    assert repair_layer_types(IDENT, 0.9, {b: 0.0 for b in range(4)}, {}, BOUNDS) == {}
