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
from allocsearch.search.records import study_records
from allocsearch.search.screening import mutate
from tests.helpers import tiny_evaluator

EVAL = {"seqlen": 32, "fidelities": [64, 128], "batch_size": 2}
PREDICTOR = {"model": "xgboost", "pool": 60, "k": 3, "warmup": 6, "members": 2}


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
    # Round 3 had two trials left: it proposed two, so none is left waiting unevaluated.
    assert run.study.get_trials(states=(TrialState.WAITING,)) == []
    for t in trials:
        assert abs(trial_plan(run.study, t).budget() - 0.6) < 1e-6
    # Rounds start once 6 trials completed; each enqueues k = 3 screened proposals (at most
    # the trials left).
    views = [store.StoredTrial.of(t) for t in trials]
    rounds = [v.screened["round"] for v in views if v.screened is not None]
    assert rounds == [1, 1, 1, 2, 2, 2, 3, 3]
    assert all(v.screened is None for v in views[:6])
    # The log lists every screened candidate (pool 60 per round), far more than were evaluated.
    log = read_jsonl(out / "screening.jsonl")
    assert len(log) == 3 * 60 and sum(r["chosen"] for r in log) == 8 == len(rounds)
    chosen = [r for r in log if r["chosen"]]
    # The chosen ones have the lowest optimistic bound of their round.
    for r, k in ((1, 3), (2, 3), (3, 2)):
        bounds = sorted(x["bound"] for x in log if x["round"] == r)
        assert sorted(x["bound"] for x in chosen if x["round"] == r) == bounds[:k]


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
        out = mutate(values, space, 6, rng)
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
