"""Task accuracy through lm-evaluation-harness on the model in memory (a tiny random LLaMA
with a byte tokenizer: every request is real, the accuracies are near chance)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from allocsearch.cli import main
from allocsearch.data.continuation import CONTINUATION_TASK, ContinuationConfig
from allocsearch.evaluate.tasks import TaskConfig, TaskError, continuation_task_dir, task_accuracy
from allocsearch.models import LoadedModel, load_model
from tests.helpers import save_tiny_model

SMALL = ContinuationConfig(examples=12)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tasks") / "tiny")


@pytest.fixture(scope="module")
def tiny(tiny_dir: Path) -> LoadedModel:
    return load_model(str(tiny_dir), device="cpu")


def test_local_task_files_are_written_once(tmp_path: Path) -> None:
    folder = continuation_task_dir(SMALL, tmp_path)
    spec = yaml.safe_load((folder / "task.yaml").read_text())
    assert spec["task"] == CONTINUATION_TASK and spec["output_type"] == "multiple_choice"
    assert spec["dataset_kwargs"]["data_files"]["test"] == str(folder / "examples.jsonl")
    rows = [json.loads(line) for line in (folder / "examples.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(len(r["choices"]) == 4 for r in rows)
    mtime = (folder / "task.yaml").stat().st_mtime_ns
    assert continuation_task_dir(SMALL, tmp_path) == folder
    assert (folder / "task.yaml").stat().st_mtime_ns == mtime  # reused, not rewritten
    assert continuation_task_dir(ContinuationConfig(examples=13), tmp_path) != folder


def test_local_task_runs_on_the_model_in_memory(tiny: LoadedModel, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    config = TaskConfig(limit=8, batch_size=4, continuation=SMALL)
    monkeypatch.chdir(tmp_path)  # not a git checkout: lm-eval's `git describe` would print "fatal"
    (score,) = task_accuracy(tiny, config, progress=False, cache_dir=tmp_path).values()
    assert "not a git repository" not in capfd.readouterr().err
    assert score.task == CONTINUATION_TASK and score.examples == 8 and score.chance == 0.25
    assert score.acc in {k / 8 for k in range(9)} and score.acc_norm is not None
    assert 0.0 < score.acc_stderr < 0.5
    # The model object itself is scored: with lm_head zeroed every byte token has log-prob
    # -log V, so acc picks the choice of fewest bytes (the first of equals), exactly.
    lm_head = tiny.model.get_submodule("lm_head")
    assert isinstance(lm_head, torch.nn.Linear)
    head = lm_head.weight.data  # (vocab, hidden)
    saved = head.clone()
    head.zero_()
    try:
        (flat,) = task_accuracy(tiny, config, progress=False, cache_dir=tmp_path).values()
    finally:
        head.copy_(saved)
    rows = [json.loads(line) for line in
            (continuation_task_dir(SMALL, tmp_path) / "examples.jsonl").read_text().splitlines()]

    def fewest_bytes(choices: list[str]) -> int:
        sizes = [len((" " + c).encode()) for c in choices]  # lm-eval prefixes the delimiter
        return sizes.index(min(sizes))

    hits = [fewest_bytes(r["choices"]) == r["label"] for r in rows[:8]]
    assert flat.acc == sum(hits) / 8


def test_a_user_task_yaml_over_local_jsonl(tiny: LoadedModel, tmp_path: Path) -> None:
    rows = [{"q": f"{i} plus one is", "options": [str(i + 1), str(i + 7)], "answer": 0} for i in range(6)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"task": "my_sums", "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(tmp_path / "data.jsonl")}},
            "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "q",
            "doc_to_choice": "options", "doc_to_target": "answer",
            "metric_list": [{"metric": "acc"}]}
    (tmp_path / "sums.yaml").write_text(yaml.safe_dump(spec))
    config = TaskConfig((str(tmp_path / "sums.yaml"),))
    (score,) = task_accuracy(tiny, config, progress=False, cache_dir=tmp_path).values()
    assert score.task == "my_sums" and score.examples == 6 and score.chance is None
    assert score.acc_norm is None and score.acc in {k / 6 for k in range(7)}


def test_bad_task_names_fail_in_one_line(tiny: LoadedModel, tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="unknown task"):
        task_accuracy(tiny, TaskConfig(("no_such_task_anywhere",)), progress=False, cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        task_accuracy(tiny, TaskConfig((str(tmp_path / "x.yaml"),)), progress=False)
    (tmp_path / "bad.yaml").write_text("dataset_path: json\n")
    with pytest.raises(TaskError, match="needs a 'task: <name>' key"):
        task_accuracy(tiny, TaskConfig((str(tmp_path / "bad.yaml"),)), progress=False)
    with pytest.raises(ValueError, match="names no task"):
        TaskConfig.parse_names(" , ")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main([*argv, "--quiet"]) == 0
    return capsys.readouterr().out


def test_cli_eval_and_evaluate_report_task_accuracy(
    tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = ["--tasks", CONTINUATION_TASK, "--tasks-limit", "4", "--tasks-batch-size", "4"]
    out = _run(["eval", "--model", str(tiny_dir), "--device", "cpu", "--nsamples", "2",
                "--seqlen", "32", "--json", str(tmp_path / "eval.json"), *tasks], capsys)
    assert f"{CONTINUATION_TASK}: acc " in out and "(4 examples, chance 0.25)" in out
    saved: dict[str, Any] = json.loads((tmp_path / "eval.json").read_text())
    assert saved["tasks"][CONTINUATION_TASK]["examples"] == 4
    plan = tmp_path / "plan.json"
    _run(["allocate", "--model", str(tiny_dir), "--device", "cpu", "--method", "uniform",
          "--sparsity", "0.5", "--nsamples", "4", "--seqlen", "32", "--out", str(plan)], capsys)
    common = ["evaluate", str(plan), "--model", str(tiny_dir), "--device", "cpu", "--nsamples", "4",
              "--seqlen", "32", "--fidelity", "64", *tasks]
    out = _run(common, capsys)
    assert f"cached masks: {CONTINUATION_TASK}: acc" in out
    out = _run([*common, "--verify", "wanda", "--verify-nsamples", "2",
                "--json", str(tmp_path / "ev.json")], capsys)
    assert f"verified {CONTINUATION_TASK}: acc" in out
    row = json.loads((tmp_path / "ev.json").read_text())["results"][0]
    assert row["verification"]["tasks"][CONTINUATION_TASK]["examples"] == 4


def test_a_hub_task_without_the_hub_is_one_line(tiny_dir: Path) -> None:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}  # fail fast, no retries
    done = subprocess.run(
        [sys.executable, "-m", "allocsearch", "eval", "--model", str(tiny_dir), "--device", "cpu",
         "--nsamples", "1", "--seqlen", "32", "--tasks", "boolq", "--tasks-limit", "2", "--quiet"],
        capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("allocsearch: error: tasks ['boolq']: cannot load their data")
    assert last.endswith("hub tasks need the Hugging Face hub or its cache")
