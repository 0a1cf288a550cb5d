"""Tiny-model studies end to end: every sampler, two objectives, resume, configs, EvoPress."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from allocsearch.evaluate import Evaluator
from allocsearch.plan import Plan
from allocsearch.search import (
    StudyConfig,
    StudyConfigError,
    load_study,
    run_study,
    store,
    tokens_read,
    trial_plan,
)
from allocsearch.search.config import apply_overrides
from allocsearch.search.report import build_report, format_report, pareto_front
from allocsearch.search.samplers import EvoPressSampler
from tests.helpers import tiny_evaluator

EVAL = {"seqlen": 32, "fidelities": [64, 128], "batch_size": 2}


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return tiny_evaluator(_config(Path("x"), {}).evaluator)


def _config(out: Path, extra: dict[str, Any]) -> StudyConfig:
    data = {"name": "tiny", "target": 0.6, "space": "blocks", "n_trials": 6, "evaluator": EVAL,
            "warm_start": [{"method": "uniform"}, {"method": "ramp", "grid": {"slope": [0.1, 0.3]}}],
            "verify": {"top": 1, "nsamples": 2, "seqlen": 32, "eval_windows": 2},
            "output": str(out)} | extra
    return StudyConfig.from_dict(data, out / "tiny.yaml")


def _check_plans(study: optuna.Study, target: float | None = 0.6) -> int:
    n = 0
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        plan = trial_plan(study, t)
        assert abs(plan.budget() - (target if target is not None else t.values[1])) < 1e-6
        n += 1
    return n


@pytest.mark.parametrize("sampler", ["tpe", "cmaes", "gp", "random", "evopress"])
def test_each_sampler_runs_a_study_with_budget_exact_plans(
    sampler: str, evaluator: Evaluator, tmp_path: Path
) -> None:
    cfg = _config(tmp_path, {"sampler": sampler, "pruner": "median"})
    run = run_study(cfg, evaluator=evaluator, progress=False)
    trials = run.study.trials
    assert len(trials) == 6
    assert [store.StoredTrial.of(t).prior for t in trials[:3]] == ["uniform", "ramp slope=0.1",
                                                               "ramp slope=0.3"]
    assert _check_plans(run.study) >= 3
    best = min((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.values[0])
    assert best.number in run.verified and run.verified[best.number].ppl > 1.0
    for t in trials:  # fidelities were reported as intermediate values, in tokens
        if t.state == TrialState.COMPLETE:
            assert sorted(t.intermediate_values) == [64, 128]


def test_two_objectives_with_nsga2(evaluator: Evaluator, tmp_path: Path) -> None:
    cfg = _config(tmp_path, {"sampler": "nsga2", "space": "blocks_pareto", "warm_start": [],
                             "objectives": ["fitness", "sparsity"]})
    run = run_study(cfg, evaluator=evaluator, progress=False)
    assert len(run.study.directions) == 2
    assert _check_plans(run.study, target=None) == 6
    report = build_report(run.study, tmp_path, plots=True)
    assert (tmp_path / "pareto.png").stat().st_size > 5000
    assert report.counts["complete"] == 6
    # The report is the Pareto front, by sparsity, each point with its plan.
    front = [(r.second[1], r.fitness) for r in report.rows if r.second is not None]
    assert {r.kind for r in report.rows} == {"front"} and len(front) == len(report.rows)
    assert front == sorted(front)
    # Sorted by sparsity, each next point must be worse in fitness, or it would dominate.
    assert all(nxt[1] > prev[1] for prev, nxt in itertools.pairwise(front))
    for r in report.rows:
        plan = Plan.load(tmp_path / "front" / f"trial_{r.trial}.json")
        assert r.second is not None and r.second[0] == "sparsity"
        assert abs(plan.budget() - r.second[1]) < 1e-6
    assert not (tmp_path / "best_plan.json").exists()


def test_pareto_front_compares_sparsity_at_the_budget_tolerance() -> None:
    study = optuna.create_study(directions=["minimize", "maximize"])
    points = {"a": (10.0, 0.5 + 1e-12), "b": (9.0, 0.5), "c": (20.0, 0.7), "d": (25.0, 0.65),
              "e": (5.0, 0.4)}
    for values in points.values():
        study.add_trial(optuna.trial.create_trial(values=list(values)))
    # a ties b on sparsity (1e-12 apart) with a worse fitness; c beats d on both.
    names = list(points)
    assert [names[t.number] for t in pareto_front(study)] == ["e", "b", "c"]


def test_resume_after_interruption_keeps_completed_trials(evaluator: Evaluator, tmp_path: Path) -> None:
    cfg = _config(tmp_path, {"n_trials": 5, "sampler": "random"})
    calls = {"n": 0}
    real = evaluator.iter_fitness

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the user presses Ctrl-C during trial 3
        return real(*args, **kwargs)

    evaluator.iter_fitness = flaky  # type: ignore[method-assign]
    try:
        with pytest.raises(KeyboardInterrupt):
            run_study(cfg, evaluator=evaluator, progress=False)
    finally:
        del evaluator.iter_fitness  # type: ignore[method-assign]
    before = {t.number: t.values[0] for t in load_study(tmp_path).get_trials(
        states=(TrialState.COMPLETE,))}
    assert sorted(before) == [0, 1, 2]
    run = run_study(cfg, evaluator=evaluator, progress=False)  # same config: resumes
    after = run.study.get_trials()
    assert {t.number: t.values[0] for t in after if t.number in before} == before
    assert after[3].state == TrialState.FAIL
    # The interrupted trial failed and does not count: 5 complete trials in the end.
    assert sum(t.state == TrialState.COMPLETE for t in after) == 5
    assert run.new_trials == 2
    assert len(after) == 6


def test_max_tokens_stops_the_study_and_its_resume(evaluator: Evaluator, tmp_path: Path) -> None:
    # Fidelities 64/128: a trial read 128 tokens, or 64 when the pruner stopped it at rung one.
    # Random plans beat the median rarely, so some stop early; the budget ends the study.
    cfg = _config(tmp_path, {"sampler": "random", "n_trials": 50, "max_tokens": 1000,
                             "pruner": {"name": "median", "params": {"n_startup_trials": 1}}})
    run = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
    trials = run.study.get_trials()
    tokens = [store.StoredTrial.of(t).tokens for t in trials]
    assert set(tokens) == {64, 128} and tokens[0] == 128  # the first trial cannot be pruned
    assert sum(tokens[:-1]) < 1000 <= sum(tokens) == tokens_read(run.study)
    assert run.new_trials == len(trials) < 50
    again = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
    assert again.new_trials == 0 and len(again.study.get_trials()) == len(trials)


@pytest.mark.parametrize("bad", [0, -5, 2.5, "many"])
def test_max_tokens_must_be_a_positive_integer(bad: object, tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError, match="max_tokens must be a positive integer"):
        _config(tmp_path, {"max_tokens": bad})


def test_report_writes_best_plan_and_plots(evaluator: Evaluator, tmp_path: Path) -> None:
    cfg = _config(tmp_path, {"sampler": "tpe"})
    run_study(cfg, evaluator=evaluator, progress=False)
    report = build_report(load_study(tmp_path), tmp_path)
    text = format_report(report)
    assert "cached-mask evaluations" in text and "prior" in text
    # No pruner: every trial read both fidelities, 128 tokens.
    assert report.counts["search_tokens"] == 128 * report.counts["fitness_evaluations"] == 128 * 6
    assert "(768 search tokens)" in text
    for name in ("best_plan.json", "history.png", "best_vs_priors.png", "report.json"):
        assert (tmp_path / name).is_file(), name
    assert {r.kind for r in report.rows} == {"best", "prior"}


def test_config_errors_and_overrides(tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError, match=r"unknown key\(s\) \['trials'\]"):
        StudyConfig.from_dict({"trials": 3}, tmp_path / "s.yaml")
    with pytest.raises(StudyConfigError, match="objectives"):
        StudyConfig.from_dict({"objectives": ["sparsity"]}, tmp_path / "s.yaml")
    with pytest.raises(StudyConfigError, match="n_trials"):
        StudyConfig.from_dict({"n_trials": 0}, tmp_path / "s.yaml")
    with pytest.raises(StudyConfigError, match="fidelities"):
        StudyConfig.from_dict({"evaluator": {"fidelities": [8, 4]}}, tmp_path / "s.yaml")
    with pytest.raises(StudyConfigError, match="no study config"):
        StudyConfig.load(tmp_path / "missing.yaml")
    data = apply_overrides({"sampler": "tpe", "evaluator": {"fitness": "ppl"}},
                           ["sampler.name=cmaes", "evaluator.fidelities=[1024, 2048]", "n_trials=9"])
    assert data == {"sampler": {"name": "cmaes"}, "n_trials": 9,
                    "evaluator": {"fitness": "ppl", "fidelities": [1024, 2048]}}
    cfg = StudyConfig.from_dict(data, tmp_path / "s.yaml")
    assert cfg.sampler == "cmaes" and cfg.evaluator.fidelities == (1024, 2048)
    assert cfg.output == tmp_path / "s" and cfg.storage_url.endswith("/s/study.db")


def test_shipped_study_configs_load() -> None:
    studies = Path(__file__).resolve().parents[2] / "studies"
    names = sorted(p.name for p in studies.glob("*.yaml"))
    assert {"smollm2-70.yaml", "smollm2-60.yaml", "smollm2-70-seq.yaml"} <= set(names)
    for name in names:
        cfg = StudyConfig.load(studies / name)
        assert cfg.output == studies / cfg.name
    seq = StudyConfig.load(studies / "smollm2-70-seq.yaml")
    assert seq.anchor.rounds == 3 and seq.anchor.start is not None
    assert seq.anchor.start.label == "ramp slope=0.3"
    for pct in (70, 60):
        sg = StudyConfig.load(studies / f"smollm2-{pct}-sparsegpt.yaml")
        assert sg.evaluator.masks == "database" and sg.evaluator.pruner == "sparsegpt"
        assert sg.verify.pruner == "sparsegpt" and sg.target == pct / 100
        # The database is calibrated on the verification's windows.
        assert (sg.data.nsamples, sg.data.seqlen) == (sg.verify.nsamples, sg.verify.seqlen)


def test_evopress_level_switches_keep_the_offset_sum() -> None:
    study = optuna.create_study(sampler=EvoPressSampler(seed=0, step=0.025, max_switches=3))
    parent = {f"offset_{b}": 0.0 for b in range(8)}
    dist = optuna.distributions.FloatDistribution(-0.2, 0.2)
    study.add_trial(optuna.trial.create_trial(
        params=parent, distributions={k: dist for k in parent}, value=1.0))
    changed = 0
    for _ in range(20):
        trial = study.ask()
        child = {k: trial.suggest_float(k, -0.2, 0.2) for k in parent}
        moved = [v for v in child.values() if abs(v) > 1e-12]
        assert abs(sum(child.values())) < 1e-12  # every switch is +step on one, -step on another
        # At most 3 switches touch at most 6 blocks, each by whole levels (two may cancel).
        assert len(moved) <= 6
        assert all(abs(abs(v) / 0.025 - round(abs(v) / 0.025)) < 1e-9 for v in moved)
        changed += bool(moved)
        study.tell(trial, 2.0)  # worse than the parent: the parent stays
    assert changed >= 15


def test_the_notebook_runs_on_a_study_folder(
    evaluator: Evaluator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import matplotlib

    matplotlib.use("Agg")
    run_study(_config(tmp_path, {"sampler": "random"}), evaluator=evaluator, progress=False)
    monkeypatch.setenv("ALLOCSEARCH_STUDY", str(tmp_path))
    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "study_report.ipynb"
    cells = json.loads(notebook.read_text())["cells"]
    namespace: dict[str, Any] = {}
    for cell in cells:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), str(notebook), "exec"), namespace)
    assert "best" in {r.kind for r in namespace["report"].rows}
    assert len(namespace["frame"]) == 6


def test_a_saved_plan_warm_starts_a_study(evaluator: Evaluator, tmp_path: Path) -> None:
    from allocsearch.allocation import get_allocator

    saved = get_allocator("ramp", slope=0.2).allocate(evaluator.profile, 0.6)
    saved.save(tmp_path / "previous.json")
    cfg = _config(tmp_path, {"sampler": "random", "n_trials": 2,
                             "warm_start": [{"plan": str(tmp_path / "previous.json")}]})
    run = run_study(cfg, evaluator=evaluator, progress=False)
    first = run.study.trials[0]
    assert store.StoredTrial.of(first).prior == "plan previous.json"
    rebuilt = trial_plan(run.study, first)
    for name, choice in rebuilt.modules.items():
        assert choice.sparsity == pytest.approx(saved.modules[name].sparsity, abs=1e-6)
    with pytest.raises(StudyConfigError, match=r"unknown warm_start key\(s\) \[.plan., .seed.\]"):
        StudyConfig.from_dict({"warm_start": [{"plan": "a.json", "method": "x", "seed": 1}]},
                              tmp_path / "s.yaml")


def test_a_study_on_a_sparsegpt_level_database_scores_and_verifies_grid_plans(tmp_path: Path) -> None:
    from allocsearch.database import LevelGrid
    from tests.helpers import tiny_profile

    grid = LevelGrid((0.0, 0.3, 0.5, 0.6, 0.7, 0.9))
    ev_cfg = EVAL | {"masks": "database", "pruner": "sparsegpt", "levels": list(grid.levels)}
    cfg = _config(tmp_path, {"space": "levels", "evaluator": ev_cfg, "sampler": "random",
                             "predictor": {"model": "xgboost", "warmup": 4, "pool": 40, "k": 1},
                             "verify": {"pruner": "sparsegpt", "top": 1, "nsamples": 2, "seqlen": 32,
                                        "eval_windows": 2}, "n_trials": 8})
    prof = tiny_profile()
    assert prof.loaded is not None
    ev = Evaluator(prof.loaded, prof, cfg.evaluator, progress=False, cache_dir=tmp_path / "cache")
    run = run_study(cfg, evaluator=ev, progress=False)
    assert _check_plans(run.study) >= 4
    for t in run.study.get_trials(states=(TrialState.COMPLETE,)):
        assert set(trial_plan(run.study, t).sparsities().values()) <= set(grid.levels), t.number
    assert any(t.screened is not None for t in store.trials(run.study))  # the predictor proposed
    best = min((t for t in run.study.trials if t.state == TrialState.COMPLETE), key=lambda t: t.values[0])
    assert run.verified[best.number].pruner == "sparsegpt"
    ev.close()


def test_the_old_scores_key_is_refused_with_its_new_name(tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError, match=r"evaluator\.scores is now evaluator\.pruner"):
        StudyConfig.from_dict({"evaluator": {"scores": "wanda"}}, tmp_path / "s.yaml")


def test_a_study_file_that_is_not_a_mapping_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- name: tiny\n- target: 0.5\n")
    with pytest.raises(StudyConfigError, match="must be a YAML mapping, got list"):
        StudyConfig.load(path)
