"""Per-type and per-module space parameters: names, exact prior reproduction, budgets, level
switches between modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from allocsearch.allocation import get_allocator
from allocsearch.budget import plan_from_values
from allocsearch.evaluate import Evaluator
from allocsearch.plan import Plan
from allocsearch.profile import Profile
from allocsearch.search import StudyConfig, run_study, trial_plan
from allocsearch.search.layout import SpaceLayout
from allocsearch.search.mutation import mutate
from allocsearch.search.samplers.evopress import EvoPressSampler
from allocsearch.search.space import SearchSpace, find_space
from tests.helpers import module_levels_study, tiny_profile

SPACES = Path(__file__).resolve().parents[2] / "spaces"
KINDS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
         "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def _priors(target: float) -> dict[str, Plan]:
    prof = tiny_profile("llama")
    return {"uniform": get_allocator("uniform").allocate(prof, target),
            "ramp": get_allocator("ramp", slope=0.3).allocate(prof, target),
            "owl": get_allocator("owl", M=5, lam=0.08).allocate(prof, target),
            "alpha": get_allocator("alpha", eps=0.2).allocate(prof, target)}


def _assert_reproduces(space: SearchSpace, method: str, prior: Plan, prof: Profile) -> None:
    """The space's values for ``prior`` rebuild it module by module (1e-6), at its budget."""
    values = space.params_for_prior(method, {}, prior)
    assert values is not None
    rebuilt = space.build_plan(values, prof, prior.target)
    assert abs(rebuilt.budget() - prior.target) < 1e-6
    for n, c in rebuilt.modules.items():
        assert c.sparsity == pytest.approx(prior.modules[n].sparsity, abs=1e-6), n


def test_layout_names_blocks_types_and_modules() -> None:
    layout = SpaceLayout.of(tiny_profile("llama").identity)
    assert list(layout.types) == KINDS
    spec = find_space(SPACES / "projections.yaml").parameters["type_offset"]
    assert spec.names(layout) == [f"type_offset_{k}" for k in KINDS]
    names = find_space(SPACES / "modules.yaml").parameters["offset"].names(layout)
    assert names == [f"offset_{b}.{k}" for b in range(2) for k in KINDS]  # identity order
    assert layout.part("model.layers.1.mlp.up_proj", "module") == "1.mlp.up_proj"
    assert layout.part("model.layers.1.mlp.up_proj", "type") == "mlp.up_proj"


def test_type_offsets_move_every_module_of_a_kind() -> None:
    prof = tiny_profile("llama")
    space = find_space(SPACES / "projections.yaml")
    layout = SpaceLayout.of(prof.identity)
    values = {n: 0.0 for spec in space.parameters.values() for n in spec.names(layout)}
    values["type_offset_self_attn.q_proj"] = 0.1
    values["type_offset_self_attn.o_proj"] = -0.1
    plan = space.build_plan(values, prof, 0.5)
    assert abs(plan.budget() - 0.5) < 1e-6
    s = {n: c.sparsity for n, c in plan.modules.items()}
    for b in range(2):
        q, k, o = (s[f"model.layers.{b}.self_attn.{p}_proj"] for p in "qko")
        # q and o hold the same number of weights (32 x 32), +-0.1 cancel: the rest is untouched.
        assert [q, k, o] == pytest.approx([0.6, 0.5, 0.4], abs=1e-9)


@pytest.mark.parametrize("space_name", ["projections", "modules"])
@pytest.mark.parametrize("method", ["uniform", "ramp", "owl", "alpha"])
def test_priors_map_exactly_into_per_type_and_per_module_spaces(space_name: str, method: str) -> None:
    prof = tiny_profile("llama")
    prior = _priors(0.6)[method]
    space = find_space(SPACES / f"{space_name}.yaml")
    _assert_reproduces(space, method, prior, prof)


def test_a_per_module_prior_maps_exactly_into_per_module_offsets() -> None:
    """Modules of one block at different sparsities (as EvoPress's profiles): the block offset
    takes the block's share, the module offsets what is left, to 1e-6."""
    prof = tiny_profile("llama")
    ident = prof.identity
    rng = np.random.default_rng(0)
    raw = {n: 0.6 + float(rng.uniform(-0.15, 0.15)) for n in ident.shapes}
    total = sum(ident.numel(n) for n in ident.shapes)
    shift = 0.6 - sum(raw[n] * ident.numel(n) for n in ident.shapes) / total
    prior = plan_from_values(ident, 0.6, [raw[n] + shift for n in ident.shapes])
    space = SearchSpace.from_dict({
        "parameters": {"offset": {"type": "float", "low": -0.3, "high": 0.25, "per": "block"},
                       "m": {"type": "float", "low": -0.3, "high": 0.3, "per": "module"}},
        "plan": {"offset": "offset", "module_offset": "m"}})
    _assert_reproduces(space, "evopress", prior, prof)


def test_a_level_switch_between_two_modules_keeps_the_budget() -> None:
    """One module a level up, another of the same size a level down: the per-module values
    move by exactly one step each and the budget holds to 1e-6 (the projection absorbs any
    rest of switches between modules of different sizes)."""
    prof = tiny_profile("llama")
    space = find_space(SPACES / "module_levels.yaml")
    layout = SpaceLayout.of(prof.identity)
    names = space.parameters["offset"].names(layout)
    base = {n: 0.0 for n in names}
    switched = dict(base, **{"offset_0.self_attn.q_proj": 0.05, "offset_1.self_attn.o_proj": -0.05})
    a, b = (space.build_plan(v, prof, 0.6) for v in (base, switched))
    assert abs(b.budget() - 0.6) < 1e-6
    diff = {n: b.modules[n].sparsity - a.modules[n].sparsity for n in a.modules}
    assert diff["model.layers.0.self_attn.q_proj"] == pytest.approx(0.05, abs=1e-9)
    assert diff["model.layers.1.self_attn.o_proj"] == pytest.approx(-0.05, abs=1e-9)
    assert sum(abs(d) for n, d in diff.items()) == pytest.approx(0.1, abs=1e-9)
    rng = np.random.default_rng(0)
    for _ in range(30):  # the short-lister's mutations switch inside the grid's bounds
        out = mutate(base, space, layout, rng)
        assert all(-0.3 - 1e-12 <= v <= 0.25 + 1e-12 for v in out.values())
        plan = space.build_plan(out, prof, 0.6)
        assert abs(plan.budget() - 0.6) < 1e-6


def test_evopress_switches_levels_between_modules() -> None:
    prof = tiny_profile("llama")
    space = find_space(SPACES / "module_levels.yaml")
    layout = SpaceLayout.of(prof.identity)
    study = optuna.create_study(sampler=EvoPressSampler(seed=0, max_switches=1))
    parent = {n: 0.0 for n in space.parameters["offset"].names(layout)}
    study.enqueue_trial(parent)
    t = study.ask()
    space.suggest(t, layout)
    study.tell(t, 1.0)
    for _ in range(5):
        t = study.ask()
        values = space.suggest(t, layout)
        moved = {n: v for n, v in values.items() if v != 0.0}
        assert sorted(moved.values()) == pytest.approx([-0.05, 0.05])  # one switch of one step
        study.tell(t, 2.0)  # worse: the parent stays the parent


def test_evopress_switches_between_projection_kinds_or_blocks() -> None:
    """In ``projections`` (block and per-type offsets) each offspring makes one switch
    inside one group: two blocks, or two projection kinds."""
    prof = tiny_profile("llama")
    space = find_space(SPACES / "projections.yaml")
    layout = SpaceLayout.of(prof.identity)
    study = optuna.create_study(sampler=EvoPressSampler(seed=0, max_switches=1, step=0.05, other_rate=0.0))
    names = {p: space.parameters[p].names(layout) for p in ("offset", "type_offset")}
    study.enqueue_trial({n: 0.0 for group in names.values() for n in group})
    t = study.ask()
    space.suggest(t, layout)
    study.tell(t, 1.0)
    groups = set()
    for _ in range(12):
        t = study.ask()
        values = space.suggest(t, layout)
        moved = {n: v for n, v in values.items() if abs(v) > 1e-12}
        assert sorted(moved.values()) == pytest.approx([-0.05, 0.05])
        [group] = [p for p, group in names.items() if set(moved) <= set(group)]
        groups.add(group)
        study.tell(t, 2.0)
    assert groups == {"offset", "type_offset"}


def test_a_module_levels_study_on_the_reference_database(tmp_path: Path) -> None:
    """The shipped per-module level space, the EvoPress-style sampler and a database
    calibrated at the uniform plan: priors enqueued exactly, every plan on the grid at the
    budget, offspring one or more module switches away from their parent."""
    prof = tiny_profile("llama")
    assert prof.loaded is not None
    warm: list[dict[str, Any]] = [{"method": "uniform"}, {"method": "ramp", "grid": {"slope": [0.2]}}]
    cfg = StudyConfig.from_dict(module_levels_study(tmp_path / "out", warm, 8), tmp_path / "mods.yaml")
    ev = Evaluator(prof.loaded, prof, cfg.evaluator, progress=False, cache_dir=tmp_path / "cache")
    run = run_study(cfg, evaluator=ev, progress=False)
    assert ev.anchor_plan is not None
    assert {c.sparsity for c in ev.anchor_plan.modules.values()} == {0.5}
    ramp = ev.prepare(get_allocator("ramp", slope=0.2).allocate(prof, 0.5))
    trials = [t for t in run.study.trials if t.state == TrialState.COMPLETE]
    plans = {t.number: trial_plan(run.study, t) for t in trials}
    assert plans[1].sparsities() == pytest.approx(ramp.sparsities(), abs=1e-6)  # the prior, exactly
    grid = set(cfg.evaluator.levels)
    for plan in plans.values():
        assert abs(plan.budget() - 0.5) < 1e-6
        assert all(min(abs(c.sparsity - g) for g in grid) < 1e-9 for c in plan.modules.values())
    layout = SpaceLayout.of(prof.identity)
    names = find_space("module_levels").parameters["offset"].names(layout)
    assert set(trials[-1].params) == set(names)  # one value per module
    ev.close()


def test_a_level_switch_moves_one_value_up_and_one_down_inside_bounds() -> None:
    from allocsearch.search.mutation import Level, level_switch

    rng = np.random.default_rng(0)
    levels = dict.fromkeys("abc", Level(0.3, 0.9, 0.05))
    # a sits at the floor (can only go up), b at the ceiling (only down), c can go either way.
    values = {"a": 0.3, "b": 0.9, "c": 0.6}
    seen = set()
    for _ in range(40):
        v = dict(values)
        moved = level_switch(v, ["a", "b", "c"], levels, rng)
        assert sum(v.values()) == pytest.approx(sum(values.values()), abs=1e-12)
        up = [k for k in v if v[k] > values[k] + 1e-12]
        down = [k for k in v if v[k] < values[k] - 1e-12]
        assert len(up) == len(down) == 1 and up[0] != "b" and down[0] != "a"
        assert moved == (up[0], down[0])
        assert v[up[0]] == pytest.approx(values[up[0]] + 0.05)
        assert v[down[0]] == pytest.approx(values[down[0]] - 0.05)
        seen.add((up[0], down[0]))
    assert seen == {("a", "b"), ("a", "c"), ("c", "b")}
    # One Level for every name is the same as the mapping that gives it to each.
    one, each = dict(values), dict(values)
    moves = [level_switch(one, ["a", "b", "c"], Level(0.3, 0.9, 0.05), np.random.default_rng(s))
             for s in range(8)]
    assert moves == [level_switch(each, ["a", "b", "c"], levels, np.random.default_rng(s)) for s in range(8)]
    assert one == each
    stuck = {"a": 0.3, "b": 0.3}  # neither can go down: no legal pair, nothing moves
    assert level_switch(stuck, ["a", "b"], levels, rng) is None and stuck == {"a": 0.3, "b": 0.3}
