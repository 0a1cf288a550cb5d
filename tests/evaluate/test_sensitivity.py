"""Block loss curves on the tiny model: one fitness per (block, level), dense weights back."""

from __future__ import annotations

import math

import pytest

from allocsearch.evaluate import EvaluatorConfig
from allocsearch.evaluate.sensitivity import measure_block_curves, single_block_plan
from tests.helpers import tiny_evaluator

CONFIG = EvaluatorConfig(seqlen=32, fidelities=(64, 128), topk=8, batch_size=2)


def test_single_block_plan_prunes_only_that_block() -> None:
    ev = tiny_evaluator(CONFIG)
    ident = ev.profile.identity
    plan = single_block_plan(ident, 1, 0.5)
    assert plan.block_sparsity() == pytest.approx([0.0, 0.5])
    assert plan.budget() == pytest.approx(0.25)  # two blocks of equal size


def test_curves_are_the_fitness_of_each_single_block_plan() -> None:
    ev = tiny_evaluator(CONFIG)
    ident = ev.profile.identity
    dense = ev.fitness(None, 64)
    curves = measure_block_curves(ev, ident, (0.3, 0.8), tokens=64, progress=False)
    assert curves.num_blocks == 2 and curves.levels == (0.3, 0.8) and curves.tokens == 64
    assert curves.model == ident.fingerprint
    for b in range(2):
        for j, level in enumerate(curves.levels):
            value = ev.fitness(single_block_plan(ident, b, level), 64)
            assert curves.delta[b][j] == pytest.approx(math.log(value) - math.log(dense), abs=1e-9)
    assert ev.fitness(None, 64) == pytest.approx(dense, abs=1e-9)  # the dense weights are back
