"""The ``curves`` warm start: measured once per study, counted in its tokens, reproduced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from allocsearch.allocation import get_allocator
from allocsearch.allocation.curves import BlockCurves, curve_plan
from allocsearch.evaluate import Evaluator
from allocsearch.evaluate.sensitivity import DEFAULT_CURVE_LEVELS
from allocsearch.search import StudyConfig, StudyConfigError, run_study, store, tokens_read, trial_plan
from tests.helpers import tiny_evaluator

EVAL = {"seqlen": 32, "fidelities": [64, 128], "batch_size": 2}
CURVES = {"method": "curves", "grid": {"mix": [0.5, 1.0]}, "params": {"prior": "ramp slope=0.2"}}


def _config(out: Path, extra: dict[str, Any]) -> StudyConfig:
    data = {"name": "tiny", "target": 0.6, "space": "blocks", "n_trials": 3, "evaluator": EVAL,
            "sampler": "random", "warm_start": [{"method": "uniform"}, CURVES],
            "verify": {"top": 1, "nsamples": 2, "seqlen": 32, "eval_windows": 2},
            "output": str(out)} | extra
    return StudyConfig.from_dict(data, out / "tiny.yaml")


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> Evaluator:
    ev = tiny_evaluator(_config(Path("x"), {}).evaluator)
    ev.cache_dir = tmp_path_factory.mktemp("cache")  # the block curves' cache, not the user's
    return ev


def test_a_study_warm_starts_from_its_block_curves(evaluator: Evaluator, tmp_path: Path) -> None:
    run = run_study(_config(tmp_path, {}), evaluator=evaluator, progress=False, verify=False)
    stored = store.block_curves(run.study)
    assert stored is not None
    curves = BlockCurves.from_dict(stored)
    assert curves.levels == DEFAULT_CURVE_LEVELS and curves.num_blocks == 2 and curves.tokens == 64
    setup = (2 * len(DEFAULT_CURVE_LEVELS) + 1) * 64
    assert store.setup_tokens(run.study) == setup
    trials = run.study.trials
    assert tokens_read(run.study) == setup + sum(store.StoredTrial.of(t).tokens for t in trials)
    ramp = get_allocator("ramp", slope=0.2).allocate(evaluator.profile, 0.6)
    labels = [store.StoredTrial.of(t).prior for t in trials]
    assert labels == ["uniform", "curves mix=0.5 prior=ramp slope=0.2", "curves mix=1.0 prior=ramp slope=0.2"]
    for t, mix in zip(trials[1:], (0.5, 1.0), strict=True):
        want = curve_plan(evaluator.identity, curves, 0.6, prior=ramp, mix=mix)
        got = trial_plan(run.study, t)
        assert abs(got.budget() - 0.6) < 1e-6
        for name, choice in got.modules.items():
            assert choice.sparsity == pytest.approx(want.modules[name].sparsity, abs=1e-6)


def test_curves_around_a_plan_beside_the_curves_from_dense(evaluator: Evaluator, tmp_path: Path) -> None:
    """Warm starts from the curves around the uniform plan and from dense in one study: each
    set stored under its own label, the tokens of both counted once, each plan allocated from
    its own curves; a resumed study reads them back."""
    around = {"method": "curves", "params": {"prior": "ramp slope=0.2", "mix": 0.5, "around": "uniform"}}
    cfg = _config(tmp_path, {"warm_start": [{"method": "uniform"}, CURVES, around], "n_trials": 4})
    run = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
    dense_raw, around_raw = store.block_curves(run.study), store.block_curves(run.study, "uniform")
    assert dense_raw is not None and around_raw is not None
    dense, near = BlockCurves.from_dict(dense_raw), BlockCurves.from_dict(around_raw)
    assert dense.around == "" and near.around == "uniform" and near.levels != dense.levels
    assert store.setup_tokens(run.study) == dense.tokens_read + near.tokens_read
    trials = run.study.trials
    assert store.StoredTrial.of(trials[3]).prior == "curves around=uniform mix=0.5 prior=ramp slope=0.2"
    ramp = get_allocator("ramp", slope=0.2).allocate(evaluator.profile, 0.6)
    want = curve_plan(evaluator.identity, near, 0.6, prior=ramp, mix=0.5)
    assert trial_plan(run.study, trials[3]).sparsities() == pytest.approx(want.sparsities(), abs=1e-6)
    again = run_study(cfg, evaluator=evaluator, progress=False, verify=False)  # resumed: nothing added
    assert store.setup_tokens(again.study) == dense.tokens_read + near.tokens_read


def test_a_second_round_is_measured_around_the_first_rounds_best(evaluator: Evaluator,
                                                                  tmp_path: Path) -> None:
    """``rounds: 2``: the reference is the first round's mix of lowest full-fidelity fitness
    (with the prior), the second curves are those measured around it (independently here), the
    warm start steps from it, every token counts once, and a resumed study adds nothing."""
    from allocsearch.evaluate.sensitivity import (
        AROUND_CURVE_LEVELS,
        Around,
        curve_mixes,
        measure_block_curves,
    )
    from allocsearch.plan import Plan
    from allocsearch.search.curve_start import ROUND_MIXES

    params = {"prior": "ramp slope=0.2", "mix": 0.5, "around": "uniform", "rounds": 2}
    cfg = _config(tmp_path, {"warm_start": [{"method": "uniform"}, {"method": "curves", "params": params}],
                             "n_trials": 2})
    run = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
    label = "round 2 from uniform with ramp slope=0.2"
    first_raw, second_raw = store.block_curves(run.study, "uniform"), store.block_curves(run.study, label)
    assert first_raw is not None and second_raw is not None
    first, second = BlockCurves.from_dict(first_raw), BlockCurves.from_dict(second_raw)
    ramp = get_allocator("ramp", slope=0.2).allocate(evaluator.profile, 0.6)
    mixes = curve_mixes(evaluator, first, 0.6, ramp, ROUND_MIXES)
    best = min(mixes, key=lambda m: m.fitness)
    reference = Plan.from_dict(second_raw["reference"])
    assert reference.sparsities() == best.plan.sparsities()
    again = measure_block_curves(evaluator, evaluator.identity, AROUND_CURVE_LEVELS, progress=False,
                                 around=Around(label, best.plan))
    assert second.delta == again.delta and second.around == label
    tokens = first.tokens_read + second.tokens_read + len(ROUND_MIXES) * evaluator.config.fidelities[-1]
    assert store.setup_tokens(run.study) == tokens
    trial = run.study.trials[1]
    assert store.StoredTrial.of(trial).prior == "curves around=uniform mix=0.5 prior=ramp slope=0.2 rounds=2"
    want = curve_plan(evaluator.identity, second, 0.6, prior=reference, mix=0.5)
    assert trial_plan(run.study, trial).sparsities() == pytest.approx(want.sparsities(), abs=1e-6)
    resumed = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
    assert store.setup_tokens(resumed.study) == tokens


def test_curves_warm_start_errors_at_config_load(tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError, match="needs a prior"):
        _config(tmp_path, {"warm_start": [{"method": "curves", "params": {"mix": 0.5}}]})
    with pytest.raises(StudyConfigError, match="not \\['slope'\\]"):
        _config(tmp_path, {"warm_start": [{"method": "curves", "params": {"slope": 0.5}}]})
    with pytest.raises(StudyConfigError, match=r"an allocator \(uniform.*got 'nosuch'"):
        _config(tmp_path, {"warm_start": [{"method": "curves", "params": {"around": "nosuch"}}]})
    with pytest.raises(StudyConfigError, match="rounds must be a whole number"):
        _config(tmp_path, {"warm_start": [{"method": "curves", "params": {"rounds": 0}}]})
    with pytest.raises(StudyConfigError, match="more than one round needs a prior"):
        _config(tmp_path, {"warm_start": [{"method": "curves", "params": {"rounds": 2}}]})
    with pytest.raises(StudyConfigError, match=r"anchor\.start cannot be a curves"):
        _config(tmp_path, {"anchor": {"rounds": 2, "start": {"method": "curves"}}})


def test_curves_warm_start_on_a_level_database_study(tmp_path: Path) -> None:
    """A per-module level study on a sequential-aware database: the curves are measured at the
    database's grid levels, and each curves plan is enqueued as the database can write it (on
    the grid, at the budget: the Evaluator's prepared ``curve_plan``)."""
    from optuna.trial import TrialState

    from tests.helpers import module_levels_study, tiny_profile

    prof = tiny_profile("llama")
    assert prof.loaded is not None
    cfg = StudyConfig.from_dict(module_levels_study(tmp_path / "out", [{"method": "uniform"}, CURVES], 4),
                                tmp_path / "mods.yaml")
    ev = Evaluator(prof.loaded, prof, cfg.evaluator, progress=False, cache_dir=tmp_path / "cache")
    run = run_study(cfg, evaluator=ev, progress=False, verify=False)
    stored = store.block_curves(run.study)
    assert stored is not None
    curves = BlockCurves.from_dict(stored)
    grid = set(cfg.evaluator.levels)
    assert all(min(abs(v - g) for g in grid) < 1e-9 for v in curves.levels)
    assert max(curves.levels) == pytest.approx(0.7)  # 0.8..0.95 fall to the grid's top
    ramp = get_allocator("ramp", slope=0.2).allocate(prof, 0.5)
    trials = [t for t in run.study.trials if t.state == TrialState.COMPLETE]
    assert [store.StoredTrial.of(t).prior for t in trials[:3]] == [
        "uniform", "curves mix=0.5 prior=ramp slope=0.2", "curves mix=1.0 prior=ramp slope=0.2"]
    for t, mix in zip(trials[1:3], (0.5, 1.0), strict=True):
        want = ev.prepare(curve_plan(prof.identity, curves, 0.5, prior=ramp, mix=mix))
        got = trial_plan(run.study, t)
        assert abs(got.budget() - 0.5) < 1e-6
        assert got.sparsities() == pytest.approx(want.sparsities(), abs=1e-9)
        assert all(min(abs(c.sparsity - g) for g in grid) < 1e-9 for c in got.modules.values())
    ev.close()
