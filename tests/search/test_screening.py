"""Predictor short-listing inside a tiny-model study, records from studies, the CLI around
them, and the train_predictor notebook executed on those records."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from optuna.trial import TrialState

from allocsearch.cli import main
from allocsearch.evaluate import Evaluator
from allocsearch.io import read_jsonl
from allocsearch.predictor import FeatureTable, Predictor, read_records
from allocsearch.search import StudyConfig, StudyConfigError, find_space, run_study, store, trial_plan
from allocsearch.search.layout import SpaceLayout
from allocsearch.search.mutation import mutate
from allocsearch.search.records import study_records
from allocsearch.search.screening import compact_key
from tests.helpers import tiny_evaluator

EVAL = {"seqlen": 32, "fidelities": [64, 128], "batch_size": 2}
PREDICTOR: dict[str, Any] = {"model": "xgboost", "pool": 60, "k": 3, "warmup": 6, "members": 2, "share": 1.0}


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return tiny_evaluator(_config(Path("x"), {}).evaluator)


def _config(out: Path, extra: dict[str, Any]) -> StudyConfig:
    data = {"name": "tiny", "target": 0.6, "space": "blocks", "n_trials": 14, "evaluator": EVAL,
            "warm_start": [{"method": "uniform"}], "sampler": "random",
            "verify": {"top": 1, "nsamples": 2, "seqlen": 32, "eval_windows": 2},
            "output": str(out), "predictor": PREDICTOR} | extra
    return StudyConfig.from_dict(data, out / "tiny.yaml")


@pytest.fixture(scope="module")
def screened(evaluator: Evaluator, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("screened")
    return run_study(_config(out, {}), evaluator=evaluator, progress=False, verify=False), out


def test_a_screened_study_runs_real_trials_that_meet_the_budget(screened: Any) -> None:
    run, out = screened
    trials = run.study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 14
    for t in trials:
        assert abs(trial_plan(run.study, t).budget() - 0.6) < 1e-6
    # Rounds start once 6 trials completed; each queues k = 3 candidates, and with share 1
    # every searched trial from then on takes the next one.
    views = [store.StoredTrial.of(t) for t in trials]
    rounds = [v.screened["round"] for v in views if v.screened is not None]
    assert rounds == [1, 1, 1, 2, 2, 2, 3, 3]
    assert all(v.screened is None for v in views[:6])
    # The log lists every screened candidate (pool 60 per round), far more than were evaluated.
    log = read_jsonl(out / "screening.jsonl")
    pool = [r for r in log if r.get("kind") != "proposed"]
    assert len(pool) == 3 * 60 and sum(r["queued"] for r in pool) == 9
    queued = [r for r in pool if r["queued"]]
    # The queued ones have the lowest optimistic bound of their round, but for plans a trial
    # already holds (two mutations can make the same plan, or a trial's own): any candidate
    # below the round's highest queued bound that was not queued is a plan some trial holds.
    held = {tuple(round(b, 4) for b in trial_plan(run.study, t).block_sparsity())
            for t in run.study.get_trials()}
    for r in (1, 2, 3):
        top = max(x["bound"] for x in queued if x["round"] == r)
        skipped = [x for x in pool if x["round"] == r and not x["queued"] and x["bound"] < top]
        assert all(tuple(x["blocks"]) in held for x in skipped)
        assert sum(x["queued"] for x in pool if x["round"] == r) == 3
    _check_proposals(run.study, log)


def _check_proposals(study: Any, log: list[dict[str, Any]], *, sampler_repeats: bool = False) -> None:
    """Each screened trial evaluated exactly the plan the log says was proposed to it, and no
    two trials of the study evaluated the same plan (with ``sampler_repeats``, no screened
    trial evaluated a plan an earlier trial holds: the wrapped sampler may repeat itself)."""
    proposed = {r["trial"]: r for r in log if r.get("kind") == "proposed"}
    views = store.trials(study)
    screened = [v for v in views if v.screened is not None]
    assert sorted(proposed) == [v.number for v in screened] and screened
    for v in screened:
        assert v.plan is not None
        assert v.plan["sparsities"] == proposed[v.number]["plan"]["sparsities"]
        assert v.params == proposed[v.number]["values"]
    if sampler_repeats:  # no screened plan repeats one an earlier trial holds
        before = {v.number: {compact_key(u.plan) for u in views if u.number < v.number and u.plan}
                  for v in screened}
        assert all(compact_key(v.plan) not in before[v.number] for v in screened if v.plan is not None)
    else:
        keys = [compact_key(v.plan) for v in views if v.plan is not None]
        assert len(keys) == len(set(keys))


def test_resuming_a_screened_study_continues_its_round_numbering(
    screened: Any, evaluator: Evaluator
) -> None:
    _, out = screened
    # Four more trials: round 4 proposes k = 3, round 5 the one trial left.
    cfg = _config(out, {"n_trials": 18})
    again = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
    new = again.study.get_trials(states=(TrialState.COMPLETE,))[14:]
    assert [(store.StoredTrial.of(t).screened or {}).get("round") for t in new] == [4, 4, 4, 5]


def test_study_records_are_the_complete_trials(screened: Any, tmp_path: Path) -> None:
    run, out = screened
    recs = study_records(run.study)
    assert len(recs) == len([t for t in run.study.trials if t.state == TrialState.COMPLETE])
    assert {r.tokens for r in recs} == {128} and {r.study for r in recs} == {"tiny"}
    assert main(["study", "records", str(out), "--out", str(tmp_path / "r.jsonl"), "--quiet"]) == 0
    assert [r.fitness for r in read_records(tmp_path / "r.jsonl")] == [r.fitness for r in recs]


def test_predictor_config_is_validated(tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError, match=r"predictor\.model must be one of"):
        _config(tmp_path, {"predictor": {"model": "forest"}})
    with pytest.raises(StudyConfigError, match="pool >= k"):
        _config(tmp_path, {"predictor": {"model": "hist", "pool": 2, "k": 4}})
    assert not _config(tmp_path, {"predictor": "none"}).predictor.enabled


def test_mutations_switch_levels_inside_the_bounds() -> None:
    space = find_space("blocks")
    spec = space.parameters["offset"]
    values = {f"offset_{b}": 0.0 for b in range(6)}
    rng = np.random.default_rng(0)
    for _ in range(50):
        out = mutate(values, space, SpaceLayout(6, (), (), ()), rng)
        assert all(spec.low <= v <= spec.high for v in out.values())  # type: ignore[operator]
        assert sum(out.values()) == pytest.approx(0.0, abs=1e-12)  # one up, one down


def test_rank_and_eval_cli_and_the_notebook(screened: Any, evaluator: Evaluator, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run, out = screened
    records_path = tmp_path / "records.jsonl"
    assert main(["study", "records", str(out), "--out", str(records_path), "--quiet"]) == 0
    table = FeatureTable.from_profile(evaluator.profile)
    table_path = tmp_path / "table.json"
    table.save(table_path)
    pred = Predictor.train(table, read_records(records_path), members=2)
    pred.save(tmp_path / "pred.json")
    plans = []
    for t in run.study.get_trials()[:3]:
        p = tmp_path / f"plan{t.number}.json"
        trial_plan(run.study, t).save(p)
        plans.append(str(p))
    capsys.readouterr()
    assert main(["predictor", "rank", str(tmp_path / "pred.json"), *plans]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and lines[2].split()[0] == "1"
    assert main(["predictor", "eval", str(tmp_path / "pred.json"), "--records", str(records_path),
                 "--json", str(tmp_path / "eval.json")]) == 0
    assert "not held out" in capsys.readouterr().out  # it was trained on that study
    assert json.loads((tmp_path / "eval.json").read_text())["overall"]["n"] == len(read_records(records_path))
    assert (tmp_path / "pred.parity.png").stat().st_size > 5000
    run_notebook(records_path, table_path, tmp_path)


def run_notebook(records: Path, table: Path, tmp: Path) -> None:
    """Execute notebooks/train_predictor.ipynb in a real kernel on these records."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(__file__).resolve().parents[2] / "notebooks" / "train_predictor.ipynb"
    nb = nbformat.read(path, as_version=4)
    env = {"ALLOCSEARCH_RECORDS": str(records), "ALLOCSEARCH_TABLE": str(table),
           "ALLOCSEARCH_PREDICTOR_OUT": str(tmp / "nb_predictor.json")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp)}}).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    outputs = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "held-out" in outputs and "rank" in outputs
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert Predictor.load(tmp / "nb_predictor.json").meta.n_train == len(read_records(records))


@pytest.mark.parametrize(("sampler", "mark"), [("tpe", None), ("cmaes", "cma:"), ("nsga2", "NSGAIISampler:")])
def test_the_short_list_wraps_a_sampler_that_keeps_proposing(
    sampler: str, mark: str | None, evaluator: Evaluator, tmp_path: Path
) -> None:
    cfg = _config(tmp_path, {"sampler": sampler, "n_trials": 16,
                             "predictor": PREDICTOR | {"share": 0.5, "warmup": 4}})
    run = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
    views = store.trials(run.study)
    assert len(views) == 16 and all(v.state == TrialState.COMPLETE for v in views)
    screened = [v.number for v in views if v.screened is not None]
    # Trials 1-3 are the warm-up (the uniform prior is trial 0); from trial 4 on, every
    # other searched trial comes from the short list and the rest from the wrapped sampler.
    assert screened == [4, 6, 8, 10, 12, 14]
    _check_proposals(run.study, read_jsonl(tmp_path / "screening.jsonl"))
    if mark is not None:  # the wrapped sampler counted the screened trials in its generations
        frozen = {t.number: t for t in run.study.trials}
        assert all(any(k.startswith(mark) for k in frozen[n].system_attrs) for n in screened)


def test_a_predictor_file_screens_from_the_first_searched_trial(
    screened: Any, evaluator: Evaluator, tmp_path: Path
) -> None:
    run, _ = screened
    table = FeatureTable.from_profile(evaluator.profile)
    trained = Predictor.train(table, study_records(run.study), model="residual", members=2)
    path = trained.save(tmp_path / "pred.json")
    assert len(Predictor.load(path).records) == len(study_records(run.study))
    cfg = StudyConfig.load(_write(tmp_path, _config(tmp_path / "out", {"n_trials": 6})),
                           [f"predictor.file={path}", "predictor.model=none", "predictor.share=1.0"])
    assert cfg.predictor.enabled and cfg.predictor.file == str(path)
    again = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
    views = store.trials(again.study)
    # No warm-up: every searched trial (all but the uniform prior) is screened, and the first
    # round already trained on the file's records plus the one completed trial.
    assert [v.number for v in views if v.screened is not None] == [1, 2, 3, 4, 5]
    assert views[1].screened is not None
    assert views[1].screened["trained_on"] == 1  # the study's own records; the file's come on top
    _check_proposals(again.study, read_jsonl(tmp_path / "out" / "screening.jsonl"))
    with pytest.raises(StudyConfigError, match="no such file"):
        StudyConfig.load(_write(tmp_path, _config(tmp_path / "out2", {})), ["predictor.file=nope.json"])


def _write(folder: Path, config: StudyConfig) -> Path:
    """A YAML config file for ``config`` (built from a dict by ``_config``)."""
    import yaml

    data = {"name": config.name, "target": config.target, "space": config.space,
            "n_trials": config.n_trials, "evaluator": EVAL, "warm_start": [{"method": "uniform"}],
            "sampler": "random", "output": str(config.output), "predictor": PREDICTOR,
            "verify": {"top": 1, "nsamples": 2, "seqlen": 32, "eval_windows": 2}}
    path = folder / f"{config.output.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_candidate_any_trial_holds_is_never_proposed(screened: Any, evaluator: Evaluator) -> None:
    """Keys are of prepared plans, from every trial whatever its state: an enqueued (waiting)
    trial's fixed values count, and a queued candidate equal to one is skipped."""
    from allocsearch.search.screening import Screener, plan_key
    from allocsearch.search.settings import PredictorSettings

    run, out = screened
    screener = Screener(PredictorSettings(**PREDICTOR), run.space, evaluator.profile, 0.6, out,
                        prepare=evaluator.prepare)
    done = store.trials(run.study)[3]
    values = {k: v + 0.01 if k == "offset_0" else v for k, v in done.params.items()}
    store.enqueue(run.study, values)  # a waiting trial, never evaluated
    waiting = screener._candidate(values, "trial")
    measured = screener._candidate(done.params, "trial")
    assert waiting is not None and measured is not None
    seen = screener.study_keys(store.trials(run.study))
    assert plan_key(waiting.plan) in seen and plan_key(measured.plan) in seen
    assert compact_key(done.plan or {}) == plan_key(measured.plan)  # stored plan = prepared plan
    # Raising block 1's offset is lowering block 0's after the budget projection: the same plan.
    same = screener._candidate({k: v - 0.01 if k == "offset_1" else v for k, v in done.params.items()},
                               "trial")
    fresh = screener._candidate({k: v + 0.05 if k == "offset_0" else v for k, v in done.params.items()},
                                "trial")
    assert same is not None and fresh is not None and same.values != waiting.values
    screener._queue = [waiting, measured, same, fresh]
    assert screener._pop(seen) is fresh


def test_a_proposal_is_taken_before_its_trial_suggests_it(screened: Any, evaluator: Evaluator) -> None:
    """A screened trial is asked under the study lock, its parameters suggested after: another
    worker's screener must skip the proposal from the screened mark alone (two workers once
    measured one plan twice)."""
    import optuna

    from allocsearch.search.screening import Screener, plan_key
    from allocsearch.search.settings import PredictorSettings

    run, out = screened
    study = optuna.create_study()  # the finished trials of the screened study, in memory
    study.add_trials([t for t in run.study.get_trials() if t.state.is_finished()])
    for name, value in run.study.user_attrs.items():  # the model, profile and fitness facts
        study.set_user_attr(name, value)
    first, second = (Screener(PredictorSettings(**PREDICTOR), run.space, evaluator.profile, 0.6, out,
                              prepare=evaluator.prepare) for _ in range(2))
    done = store.trials(study)[3]
    fresh = first._candidate({k: v + 0.05 if k == "offset_0" else v for k, v in done.params.items()},
                             "trial")
    assert fresh is not None and plan_key(fresh.plan) not in first.study_keys(store.trials(study))
    first._queue, second._queue = [fresh], [fresh]
    asked = study.ask()
    assert first.propose(study, study._storage.get_trial(asked._trial_id)) == fresh.values
    assert not store.trials(study)[asked.number].params  # proposed, not suggested yet
    other = study.ask()
    seen = second.study_keys(store.trials(study), exclude=other.number)
    assert plan_key(fresh.plan) in seen
    assert second._pop(seen) is None and not second._queue
    # A screened trial that failed before its parameters were suggested took nothing.
    study.tell(asked, state=TrialState.FAIL)
    assert plan_key(fresh.plan) not in second.study_keys(store.trials(study), exclude=other.number)


def test_short_listing_trains_on_the_first_fidelity_when_the_pruner_stops_trials_there(
    evaluator: Evaluator, tmp_path: Path
) -> None:
    """With the EvoPress-style pruner most trials stop at the first fidelity: records at the
    full fidelity are few, at the first one every finished trial has one, and the screener
    (``predictor.tokens``) starts its rounds from them."""
    with pytest.raises(StudyConfigError, match=r"predictor\.tokens 100 is not one of"):
        _config(tmp_path, {"predictor": PREDICTOR | {"tokens": 100}})
    cfg = _config(tmp_path, {"sampler": "evopress", "pruner": "evopress", "n_trials": 16,
                             "predictor": PREDICTOR | {"share": 0.5, "warmup": 4, "tokens": 64}})
    run = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
    views = store.trials(run.study)
    finished = [v for v in views if v.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    first = study_records(run.study, tokens=64)
    assert {r.trial for r in first} == {v.number for v in finished if 64 in v.intermediate}
    assert all(r.tokens == 64 and r.fitness == views[r.trial].intermediate[64] for r in first)
    full = study_records(run.study)
    assert len(full) < len(first) and all(r.tokens == 128 for r in full)
    out = tmp_path / "first.jsonl"
    assert main(["study", "records", str(tmp_path), "--out", str(out), "--tokens", "64", "--quiet"]) == 0
    assert [(r.trial, r.fitness) for r in read_records(out)] == [(r.trial, r.fitness) for r in first]
    assert any(v.state == TrialState.PRUNED for v in views[4:])  # the pruner stopped some
    assert any(v.screened is not None for v in views)  # rounds ran on first-fidelity records
    # EvoPress repeats its parent's plan now and then in a 2-block model; the short list never.
    _check_proposals(run.study, read_jsonl(tmp_path / "screening.jsonl"), sampler_repeats=True)


def test_measured_damage_joins_every_predictor_a_study_trains(
    screened: Any, evaluator: Evaluator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from allocsearch.predictor.damage import DamageCurves, measure_damage
    from allocsearch.search.screening import Screener
    from allocsearch.search.settings import PredictorSettings

    run, _ = screened
    monkeypatch.setattr(evaluator, "cache_dir", tmp_path)  # the curves' cache: this test's own
    curves = DamageCurves((measure_damage(evaluator, 0.6, "uniform", progress=False),))
    path = curves.save(tmp_path / "damage.json")
    settings = PredictorSettings(**PREDICTOR, damage=str(path))
    assert settings.curves == curves
    screener = Screener(settings, run.space, evaluator.profile, 0.6, tmp_path, prepare=evaluator.prepare)
    records = study_records(run.study)
    pred = screener._train(records)
    plain = Predictor.train(screener.table, records, model="xgboost", members=2, seed=0)
    assert pred.damage == curves and pred.damage_scale > 0
    plans = [r.plan for r in records[:4]]
    assert pred.predict(plans)[0] == pytest.approx(
        plain.predict(plans)[0] + pred.damage_scale * curves.of_plans(plans), abs=1e-9)
    # A study with it screens as before (the rounds train with the damage).
    cfg = StudyConfig.load(_write(tmp_path, _config(tmp_path / "dmg", {"n_trials": 9})),
                           [f"predictor.damage={path}"])
    again = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
    assert sum(v.screened is not None for v in store.trials(again.study)) >= 1
    with pytest.raises(StudyConfigError, match="no such file"):
        StudyConfig.load(_write(tmp_path, _config(tmp_path / "dmg2", {})), ["predictor.damage=nope.json"])
    with pytest.raises(StudyConfigError, match="joins a short-list"):
        StudyConfig.load(_write(tmp_path, _config(tmp_path / "dmg3", {})),
                         ["predictor.model=none", f"predictor.damage={path}"])
