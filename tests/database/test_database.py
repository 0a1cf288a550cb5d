"""The level database on the tiny llama: entries equal a direct prune of each module on the
same inputs, bit for bit; the backend restores exactly; torn or mismatched entries are found
and rebuilt alone; the disk check refuses what cannot fit; anchored inputs reproduce a
sequential prune at the anchor."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from allocsearch.allocation import get_allocator
from allocsearch.apply import plan_targets
from allocsearch.budget import identity_from_adapter, random_plan, snap_to_levels
from allocsearch.data import DataConfig
from allocsearch.data.windows import calibration_windows
from allocsearch.database import (
    DatabaseError,
    DatabaseSpec,
    LevelGrid,
    anchor_digest,
    build_database,
    clear_databases,
    levels_root,
    list_databases,
)
from allocsearch.engine import LayerTarget, prune_sequential
from allocsearch.evaluate import Evaluator, EvaluatorConfig
from allocsearch.models import LoadedModel
from allocsearch.plan import PlanError
from allocsearch.pruners import get_pruner
from tests.helpers import tiny_loaded, tiny_profile

GRID = LevelGrid((0.0, 0.3, 0.5, 0.7))
DATA = DataConfig("embedded", 4, 32, 0)


def _spec(pruner: str = "sparsegpt", anchor: str | None = None) -> DatabaseSpec:
    return DatabaseSpec(pruner, GRID, DATA, anchor)


def _weights(lm: LoadedModel) -> dict[str, torch.Tensor]:
    return {n: lm.adapter.get_weight(m).detach().clone() for n, m in lm.adapter.prunable_layers().items()}


def _direct(
    lm: LoadedModel, pruner: str, targets: dict[str, LayerTarget], inputs: str
) -> dict[str, torch.Tensor]:
    """A direct prune of every module on the database's calibration windows (model restored)."""
    dense = _weights(lm)
    windows = calibration_windows(lm.tokenizer, DATA.source, DATA.nsamples, DATA.seqlen, DATA.seed)
    prune_sequential(lm.model, lm.adapter, get_pruner(pruner), targets, windows, progress=False,
                     inputs=inputs)
    out = _weights(lm)
    for n, m in lm.adapter.prunable_layers().items():
        lm.adapter.get_weight(m).copy_(dense[n])
    return out


def test_grid_parsing_and_lookup() -> None:
    g = LevelGrid.parse("0.3:0.95:0.05")
    assert g.levels[0] == 0.0 and g.levels[1] == 0.3 and g.levels[-1] == 0.95 and len(g.levels) == 15
    assert LevelGrid.parse("0.7,0.5") == LevelGrid((0.0, 0.5, 0.7))
    assert g.index(0.70000001) == g.levels.index(0.7)
    with pytest.raises(ValueError, match="not a level"):
        g.index(0.72)
    with pytest.raises(ValueError, match="lie in"):
        LevelGrid((0.5, 1.0))
    with pytest.raises(ValueError, match="start:stop:step"):
        LevelGrid.parse("0.3:0.9:0")


@pytest.mark.parametrize("pruner", ["sparsegpt", "wanda", "magnitude"])
def test_entries_equal_a_direct_one_shot_prune_bit_for_bit(tmp_path: Path, pruner: str) -> None:
    lm = tiny_loaded()
    before = _weights(lm)
    report = build_database(lm, _spec(pruner), cache_dir=tmp_path, progress=False)
    db = report.database
    assert sorted(report.built) == sorted(db.shapes) and report.reused == 0
    assert all(torch.equal(before[n], w) for n, w in _weights(lm).items()), "the build changed the model"
    for level in GRID.pruned:
        want = _direct(lm, pruner, {n: LayerTarget(level) for n in db.shapes}, inputs="dense")
        for name in db.shapes:
            assert torch.equal(db.load(name, level), want[name]), (name, level)
    errors = db.errors(next(iter(db.shapes)))
    assert errors[0] == 0.0 and errors == sorted(errors) and errors[-1] > 0  # more pruning, more error
    # A second build reuses every entry.
    again = build_database(lm, _spec(pruner), cache_dir=tmp_path, progress=False)
    assert again.built == [] and again.reused == len(db.shapes)


def test_anchor_inputs_reproduce_the_sequential_prune_at_the_anchor(tmp_path: Path) -> None:
    lm = tiny_loaded()
    ident = identity_from_adapter(lm.adapter, lm.name)
    plan = snap_to_levels(random_plan(ident, 0.5, seed=3), GRID.levels)
    targets = plan_targets(plan)
    digest = anchor_digest({n: t.sparsity for n, t in targets.items()})
    before = _weights(lm)
    db = build_database(lm, _spec(anchor=digest), anchor=targets, cache_dir=tmp_path, progress=False).database
    assert all(torch.equal(before[n], w) for n, w in _weights(lm).items())
    want = _direct(lm, "sparsegpt", dict(targets), inputs="pruned")
    for name, t in targets.items():
        got = before[name] if t.sparsity == 0 else db.load(name, t.sparsity)
        assert torch.equal(got, want[name]), name
    dense_key = build_database(lm, _spec(), cache_dir=tmp_path, progress=False).database.key
    assert dense_key != db.key
    with pytest.raises(ValueError, match="digest"):
        build_database(lm, _spec(anchor="0" * 16), anchor=targets, cache_dir=tmp_path, progress=False)


def test_torn_and_mismatched_entries_are_detected_and_rebuilt_alone(tmp_path: Path) -> None:
    lm = tiny_loaded()
    db = build_database(lm, _spec(), cache_dir=tmp_path, progress=False).database
    names = list(db.shapes)
    torn, foreign = names[1], names[5]
    good = {n: [db.load(n, lv).clone() for lv in GRID.pruned] for n in (torn, foreign)}
    data = db.entry_path(torn).read_bytes()
    db.close()
    db.entry_path(torn).write_bytes(data[: len(data) // 2])  # a write cut short
    # Another module's entry under this name: same key, wrong module and shape.
    db.entry_path(foreign).write_bytes(db.entry_path(names[0]).read_bytes())
    problems = db.problems()
    assert set(problems) == {torn, foreign}
    assert problems[torn].startswith("unreadable")
    assert problems[foreign].startswith("mismatched")
    with pytest.raises(DatabaseError, match="unreadable entry"):
        db.load(torn, 0.5)
    report = build_database(lm, _spec(), cache_dir=tmp_path, progress=False)
    assert sorted(report.built) == sorted([torn, foreign]) and report.reused == len(names) - 2
    db.close()
    for n in (torn, foreign):  # rebuilt to the same weights
        assert all(torch.equal(db.load(n, lv), w) for lv, w in zip(GRID.pruned, good[n], strict=True))
    # An entry whose metadata names another key (another grid or data) is rebuilt too.
    other = DatabaseSpec("sparsegpt", GRID, DataConfig("embedded", 4, 32, 1))
    odb = build_database(lm, other, cache_dir=tmp_path, progress=False).database
    db.entry_path(names[2]).write_bytes(odb.entry_path(names[2]).read_bytes())
    assert db.problems() == {names[2]: db.problems()[names[2]]}
    assert "mismatched key" in db.problems()[names[2]]
    # A flipped byte in the data keeps the header valid: the digest check finds it.
    raw = bytearray(db.entry_path(names[3]).read_bytes())
    raw[-5] ^= 0xFF
    db.entry_path(names[3]).write_bytes(bytes(raw))
    db.close()
    assert not db.verify_data(names[3]) and db.verify_data(names[4])


def test_disk_check_refuses_a_build_that_cannot_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    class Usage:
        free = 1024

    monkeypatch.setattr(shutil, "disk_usage", lambda _p: Usage())
    with pytest.raises(DatabaseError, match=r"needs 0\.00 GiB .* only 0\.00 GiB are free"):
        build_database(tiny_loaded(), _spec(), cache_dir=tmp_path, progress=False)
    assert not list((levels_root(tmp_path)).glob("*/*.safetensors"))


def test_list_and_clear(tmp_path: Path) -> None:
    lm = tiny_loaded()
    a = build_database(lm, _spec(), cache_dir=tmp_path, progress=False).database
    b = build_database(lm, _spec("magnitude"), cache_dir=tmp_path, progress=False).database
    assert {d.key for d in list_databases(levels_root(tmp_path))} == {a.key, b.key}
    assert clear_databases(levels_root(tmp_path), a.key[:6]) == [a.folder]
    assert [d.key for d in list_databases(levels_root(tmp_path))] == [b.key]


def test_snap_meets_the_budget_on_the_grid() -> None:
    lm = tiny_loaded()
    ident = identity_from_adapter(lm.adapter, lm.name)
    for seed in range(5):
        plan = random_plan(ident, 0.5, seed=seed)
        snapped = snap_to_levels(plan, GRID.levels)
        assert all(c.sparsity in GRID.levels for c in snapped.modules.values())
        assert abs(snapped.budget() - 0.5) <= 1e-6
        assert snap_to_levels(snapped, GRID.levels).modules == snapped.modules  # idempotent
    uniform = snap_to_levels(random_plan(ident, 0.7, block_spread=0, module_spread=0), GRID.levels)
    assert {c.sparsity for c in uniform.modules.values()} == {0.7}


def test_evaluator_on_the_database_scores_snapped_plans_and_restores(tmp_path: Path) -> None:
    prof = tiny_profile()
    lm = prof.loaded
    assert lm is not None
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    cfg = EvaluatorConfig(masks="database", pruner="sparsegpt", levels=GRID.levels, seqlen=32,
                          fidelities=(64, 128))
    ev = Evaluator(lm, prof, cfg, progress=False, cache_dir=tmp_path)
    plan = random_plan(ev.identity, 0.5, seed=1)
    with pytest.raises(PlanError, match="off the level grid"):
        ev.fitness(plan)
    snapped = ev.prepare(plan)
    assert ev.prepare(snapped) is snapped
    value = ev.fitness(snapped)
    db = ev.backend.db  # type: ignore[attr-defined]
    layers = lm.adapter.prunable_layers()
    for n, c in snapped.modules.items():
        w = lm.adapter.get_weight(layers[n])
        assert torch.equal(w, before[n + ".weight"] if c.sparsity == 0 else db.load(n, c.sparsity)), n
    assert ev.backend.apply(plan_targets(snapped)) == 0  # nothing changed, nothing written
    assert ev.fitness(snapped) == value
    assert value > ev.fitness(None)
    ev.close()
    for k, v in lm.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(PlanError, match="N:M patterns"):
        ev.prepare(random_plan(ev.identity, 0.5).__class__.from_dict(
            {**snapped.to_dict(), "modules": {n: {"sparsity": 0.5, "pattern": "2:4"}
                                              for n in snapped.modules}}))


def test_evaluator_anchor_switches_database(tmp_path: Path) -> None:
    prof = tiny_profile()
    lm = prof.loaded
    assert lm is not None
    cfg = EvaluatorConfig(masks="database", pruner="sparsegpt", levels=GRID.levels, seqlen=32,
                          fidelities=(64,))
    ev = Evaluator(lm, prof, cfg, progress=False, cache_dir=tmp_path)
    plan = ev.prepare(random_plan(ev.identity, 0.5, seed=2))
    one_shot = ev.fitness(plan)
    ev.anchor(plan, DATA)
    anchored = ev.fitness(plan)
    assert anchored != one_shot and ev.anchor_plan is plan
    ev.anchor(None)
    assert ev.fitness(plan) == one_shot
    off_grid = random_plan(ev.identity, 0.5, seed=2)
    ev.anchor(off_grid, DATA)  # prepared first: the anchor is the snapped plan
    assert ev.anchor_plan is not None and ev.anchor_plan.modules == plan.modules
    assert ev.fitness(plan) == anchored  # the same anchor's database, reused from the cache
    ev.close()


def test_the_reference_database_holds_the_sequential_prune_at_the_reference(tmp_path: Path) -> None:
    """``reference: uniform``: the database is calibrated on a sequential prune at the uniform
    plan at the target, so its entries at that level are that prune, bit for bit."""
    prof = tiny_profile()
    lm = prof.loaded
    assert lm is not None
    cfg = EvaluatorConfig(masks="database", pruner="sparsegpt", levels=GRID.levels, seqlen=32,
                          fidelities=(64,), profile=DATA, reference="uniform")
    ev = Evaluator(lm, prof, cfg, progress=False, cache_dir=tmp_path)
    one_shot = ev.fitness(ev.prepare(random_plan(ev.identity, 0.5, seed=4)))
    ref = ev.use_reference(0.5)
    assert ref is not None and {c.sparsity for c in ref.modules.values()} == {0.5}
    assert ev.anchor_plan is ref
    before = _weights(lm)
    want = _direct(lm, "sparsegpt", dict(plan_targets(ref)), inputs="pruned")
    db = ev.backend.db  # type: ignore[attr-defined]
    for name in want:
        assert torch.equal(db.load(name, 0.5), want[name]), name
    assert ev.fitness(ev.prepare(random_plan(ev.identity, 0.5, seed=4))) != one_shot
    assert ev.use_reference(0.5) is ref  # the same target: kept
    at_70 = ev.use_reference(0.7)  # another target (a shared evaluator): its own reference
    assert at_70 is not None and {c.sparsity for c in at_70.modules.values()} == {0.7}
    # Another allocator named by the caller (a benchmark comparing references): its own plan
    # and database, and the config's reference comes back when asked again.
    ramp = ev.use_reference(0.5, "ramp")
    assert ramp is not None and ev.reference_name == "ramp"
    assert ramp.modules == ev.prepare(get_allocator("ramp").allocate(prof, 0.5)).modules != ref.modules
    # With parameters: the allocator's plan at them, under the canonical label.
    steep = ev.use_reference(0.5, "ramp slope=0.4")
    assert steep is not None and ev.reference_name == "ramp slope=0.4"
    assert steep.modules == ev.prepare(get_allocator("ramp", slope=0.4).allocate(prof, 0.5)).modules
    assert steep.modules != ramp.modules
    again = ev.use_reference(0.5)
    assert again is not None and again.modules == ref.modules and ev.reference_name == "uniform"
    ev.anchor(ref, DATA)  # a caller's own anchor is not a reference
    assert ev.reference_target is None
    ev.close()
    assert all(torch.equal(before[n], w) for n, w in _weights(lm).items())  # dense again
    none = Evaluator(lm, prof, dataclasses.replace(cfg, reference="none"), progress=False, cache_dir=tmp_path)
    assert none.use_reference(0.5) is None and none.anchor_plan is None
    none.close()
    with pytest.raises(ValueError, match="reference must be 'none' or an allocator"):
        dataclasses.replace(cfg, reference="magic")
