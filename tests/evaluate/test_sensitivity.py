"""Block loss curves on the tiny model: one fitness per (block, level), dense weights back."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from allocsearch.evaluate import EvaluatorConfig, sensitivity
from allocsearch.evaluate.sensitivity import cached_block_curves, measure_block_curves, single_block_plan
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


def test_cached_curves_are_measured_once_per_evaluator_setting(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ev = tiny_evaluator(CONFIG)
    ev.cache_dir = tmp_path
    first = cached_block_curves(ev, (0.3, 0.8), tokens=64, progress=False)
    assert len(list((tmp_path / "block_curves").glob("*.json"))) == 1

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("measured again")

    monkeypatch.setattr(sensitivity, "measure_block_curves", refuse)
    assert cached_block_curves(ev, (0.3, 0.8), tokens=64, progress=False) == first
    with pytest.raises(AssertionError, match="measured again"):  # other levels: another entry
        cached_block_curves(ev, (0.3, 0.9), tokens=64, progress=False)


def test_curve_levels_move_to_a_level_database_grid() -> None:
    from types import SimpleNamespace

    from allocsearch.database import LevelGrid
    from allocsearch.evaluate.sensitivity import backend_levels

    on_grid = SimpleNamespace(backend=SimpleNamespace(grid=LevelGrid((0.3, 0.5, 0.7, 0.95))))
    assert backend_levels(on_grid, (0.2, 0.4, 0.5, 0.9, 0.95)) == (0.3, 0.5, 0.95)  # type: ignore[arg-type]
    ranks = SimpleNamespace(backend=SimpleNamespace())
    assert backend_levels(ranks, (0.2, 0.4)) == (0.2, 0.4)  # type: ignore[arg-type]


def test_curves_around_a_plan_rise_over_that_plan(tmp_path: Path) -> None:
    from allocsearch.evaluate.sensitivity import Around

    ev = tiny_evaluator(CONFIG)
    ev.cache_dir = tmp_path
    ident = ev.profile.identity
    around = Around.reference("uniform", ev, 0.5)
    plan = single_block_plan(ident, 0, 0.8, around.plan)  # block 0 moved, block 1 at the plan's 0.5
    assert plan.block_sparsity() == pytest.approx([0.8, 0.5])
    base = ev.fitness(around.plan, 64)
    curves = cached_block_curves(ev, (0.3, 0.8), tokens=64, progress=False, around=around)
    assert curves.around == "uniform" and curves.floor == 0.3
    for b in range(2):
        for j, level in enumerate(curves.levels):
            value = ev.fitness(single_block_plan(ident, b, level, around.plan), 64)
            assert curves.delta[b][j] == pytest.approx(math.log(value) - math.log(base), abs=1e-9)
    dense = cached_block_curves(ev, (0.3, 0.8), tokens=64, progress=False)  # its own cache entry
    assert dense.around == "" and dense.delta != curves.delta
    assert len(list((tmp_path / "block_curves").glob("*.json"))) == 2
