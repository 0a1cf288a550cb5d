"""Many worker processes on one study: a real PostgreSQL server (and SQLite), study-wide
``n_trials``, priors evaluated once, a SIGKILLed worker's trial failed and retried."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
import yaml
from optuna.trial import TrialState

from allocsearch.search import store
from allocsearch.search.storage import StorageError, open_storage
from tests.helpers import save_tiny_model

PRIORS = ["uniform", "ramp slope=0.1", "ramp slope=0.2", "ramp slope=0.3"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Wide enough that a trial takes a while (a few ms per window), so workers overlap.
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny", hidden=256, blocks=4)


def _config(tmp: Path, model: Path, n_trials: int, fidelities: list[int]) -> Path:
    cfg = {"name": "workers", "model": str(model), "device": "cpu", "target": 0.6, "space": "blocks",
           "data": {"nsamples": 4, "seqlen": 128},
           "evaluator": {"seqlen": 128, "fidelities": fidelities, "batch_size": 8},
           "sampler": "random", "n_trials": n_trials,
           "warm_start": [{"method": "uniform"}, {"method": "ramp", "grid": {"slope": [0.1, 0.2, 0.3]}}],
           "verify": {"top": 1, "nsamples": 2, "seqlen": 128, "eval_windows": 2},
           "heartbeat": {"interval": 1, "grace": 3}, "output": str(tmp / "out")}
    path = tmp / "workers.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _worker(config: Path, storage: str | None, tmp: Path) -> subprocess.Popen[str]:
    env = os.environ | {"OMP_NUM_THREADS": "1", "ALLOCSEARCH_CACHE": str(tmp / "cache"),
                        "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    argv = [sys.executable, "-m", "allocsearch", "search", str(config), "--quiet"]
    argv += ["--storage", storage] if storage else []
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def _study(storage: str) -> optuna.Study:
    return optuna.load_study(study_name="workers", storage=open_storage(storage))


def test_three_workers_share_one_study_on_postgres(
    model_dir: Path, postgres_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, model_dir, n_trials=30, fidelities=[1024, 2048])
    workers = [_worker(config, postgres_url, tmp_path) for _ in range(3)]
    outputs = [_finish(w) for w in workers]
    trials = store.trials(_study(postgres_url))
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 30 and len(trials) == 30  # none failed, none beyond the total
    assert sorted(t.number for t in trials) == list(range(30))
    priors = Counter(t.prior for t in trials if t.prior is not None)
    assert priors == Counter(PRIORS)  # each enqueued prior evaluated once
    assert len({t.worker for t in trials}) >= 2, "the workers did not overlap"
    verified = store.verifications(_study(postgres_url))
    # One worker verifies; the others read its results (one verification per plan).
    assert len(verified) >= 1 and all(v.result.ppl > 1.0 for v in verified)
    assert len({v.trial for v in verified}) == len(verified)
    assert all("Traceback" not in out for out in outputs)


def _schema_ready(storage: str) -> bool:
    """Whether the worker has made the study's tables. A SQLite file is looked at read-only
    first: opening it through Optuna would create the schema, racing the worker doing so."""
    db = storage.removeprefix("sqlite:///")
    if db == storage:
        return True  # a server: Optuna's schema creation is transactional there
    if not Path(db).is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            return bool(con.execute("SELECT COUNT(*) FROM studies").fetchone()[0] > 0)
    except sqlite3.Error:  # no tables yet, or locked while the worker writes them
        return False


def _wait_for(storage: str, ready: Any, worker: subprocess.Popen[str],
              timeout: float = 300) -> list[optuna.trial.FrozenTrial]:
    """Poll the storage until ``ready(trials)``; the study is opened once it exists (opening a
    storage costs a tenth of a second of CPU, which the worker under test needs). A worker
    that exits first fails the test at once, with its output."""
    end = time.monotonic() + timeout
    study: optuna.Study | None = None
    while time.monotonic() < end:
        try:
            if study is None and _schema_ready(storage):
                study = _study(storage)
            trials = study.get_trials() if study is not None else []
        except (KeyError, StorageError, sqlalchemy.exc.OperationalError):  # not created yet
            trials = []
        if ready(trials):
            return trials
        if worker.poll() is not None:
            raise AssertionError(f"the worker exited ({worker.returncode}) first:\n{worker.communicate()[0]}")
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the worker")


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_killed_worker_trial_is_failed_and_retried(
    backend: str, model_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    storage = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    url = storage or f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    # Long trials (32k tokens, about a second or more), so the kill lands inside one.
    config = _config(tmp_path, model_dir, n_trials=4, fidelities=[16384, 32768])
    first = _worker(config, storage, tmp_path)

    def one_done_one_running(trials: list[optuna.trial.FrozenTrial]) -> bool:
        # The running trial must hold every parameter a finished one has: a kill while its
        # values are still being suggested leaves the retry to sample the missing ones.
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        running = [t for t in trials if t.state == TrialState.RUNNING]
        return bool(done and running) and set(running[0].params) >= set(done[0].params)

    before = _wait_for(url, one_done_one_running, first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    running = next(t for t in before if t.state == TrialState.RUNNING)
    # Read again after the kill: a trial may have completed in between, and the running one
    # may have been caught while its parameters were still being suggested.
    after_kill = _study(url).trials
    done = {t.number: t for t in after_kill if t.state == TrialState.COMPLETE}
    killed = after_kill[running.number]
    assert killed.state == TrialState.RUNNING

    _finish(_worker(config, storage, tmp_path))
    trials = _study(url).get_trials()
    assert trials[killed.number].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params
    assert store.StoredTrial.of(retries[0]).prior == store.StoredTrial.of(killed).prior
    for number, t in done.items():  # completed trials intact
        after = trials[number]
        assert after.state == TrialState.COMPLETE and after.values == t.values
        assert store.StoredTrial.of(after) == store.StoredTrial.of(t) and after.params == t.params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4
    assert sum(t.state == TrialState.FAIL for t in trials) == 1


def test_two_workers_share_the_predictor_short_list(
    model_dir: Path, postgres_url: str, tmp_path: Path
) -> None:
    """Rounds run under the study lock: numbered study-wide, each proposal evaluated once."""
    config = _config(tmp_path, model_dir, n_trials=20, fidelities=[512, 1024])
    cfg = yaml.safe_load(config.read_text())
    cfg["predictor"] = {"model": "xgboost", "warmup": 6, "k": 3, "pool": 100, "members": 2}
    config.write_text(yaml.safe_dump(cfg))
    workers = [_worker(config, postgres_url, tmp_path) for _ in range(2)]
    for w in workers:
        _finish(w)
    trials = _study(postgres_url).get_trials()
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 20
    assert len(trials) == 20
    screened = [t for t in store.trials(_study(postgres_url)) if t.screened is not None]
    rounds = Counter(t.screened["round"] for t in screened if t.screened is not None)
    assert screened and set(rounds) == set(range(1, max(rounds) + 1))  # no round number twice...
    assert all(n <= 3 for n in rounds.values())  # ...so no round holds more than k proposals
    keys = [tuple(sorted(t.params.items())) for t in screened]
    assert len(set(keys)) == len(keys)  # each proposal evaluated once


@pytest.mark.parametrize(("finished", "tokens", "max_tokens", "end"), [
    (5, 0, None, "done"),  # n_trials finished, whatever the tokens
    (5, 900, 100, "done"),  # both reached: n_trials is checked first, as the workers stop on it
    (4, 100, 100, "spent"),  # the token budget reached exactly
    (4, 99, 100, None),
    (4, 10**9, None, None),  # no token budget
])
def test_a_study_count_names_the_end_it_reached(finished: int, tokens: int, max_tokens: int | None,
                                                end: str | None) -> None:
    from allocsearch.search.workers import StudyCount

    count = StudyCount(finished=finished, running=3, waiting=1, tokens=tokens)
    assert count.end(5, max_tokens) == end
