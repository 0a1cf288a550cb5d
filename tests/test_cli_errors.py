"""Every bad input a user can hand the CLI: one readable line, exit code 2, no traceback, and
nothing written. Internal bugs keep their traceback."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from allocsearch.cli import main
from tests.helpers import save_tiny_model

OFFSET = {"type": "float", "low": -0.3, "high": 0.25, "per": "block"}
SPACE: dict[str, Any] = {"schema_version": 1, "name": "bad", "bounds": [0.0, 0.95],
         "parameters": {"offset": OFFSET},
         "plan": {"base": "uniform", "offset": "offset"}}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models, plans, spaces and configs, good and bad, in one folder."""
    w = tmp_path_factory.mktemp("ws")
    save_tiny_model(w / "tiny")
    save_tiny_model(w / "tiny4", blocks=4)
    (w / "empty").mkdir()
    (w / "user").mkdir()
    (w / "user" / "notes.txt").write_text("mine")
    (w / "corrupt.gguf").write_bytes(b"GGUF" + bytes(60))
    _unsupported(w / "neox", w / "tiny")
    (w / "short.txt").write_text("far too short for a window")
    (w / "malformed.json").write_text("{not json")
    (w / "wrong_schema.json").write_text(json.dumps({"schema_version": 99}))
    assert main(["allocate", "--model", str(w / "tiny"), "--method", "uniform", "--sparsity", "0.5",
                 "--nsamples", "2", "--seqlen", "32", "--out", str(w / "plan.json"), "--quiet"]) == 0
    bad_key = SPACE | {"parameters": {"offset": OFFSET | {"colour": "red"}}}
    bad_bound = SPACE | {"parameters": {"offset": OFFSET | {"low": 0.3, "high": -0.25}}}
    (w / "badkey.yaml").write_text(yaml.safe_dump(bad_key))
    (w / "badbound.yaml").write_text(yaml.safe_dump(bad_bound))
    study = {"name": "s", "model": str(w / "tiny"), "device": "cpu", "data": {"nsamples": 2, "seqlen": 32},
             "evaluator": {"seqlen": 32, "fidelities": [64]}, "n_trials": 2, "output": str(w / "out")}
    (w / "study.yaml").write_text(yaml.safe_dump(study))
    (w / "done.yaml").write_text(yaml.safe_dump(study | {"name": "done", "output": str(w / "done")}))
    assert main(["search", str(w / "done.yaml"), "--no-verify", "--quiet"]) == 0
    return w


def _unsupported(path: Path, tokenizer_from: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model("gpt_neox", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=4, vocab_size=256)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    for f in tokenizer_from.glob("tokenizer*"):
        (path / f.name).write_bytes(f.read_bytes())


ROWS = [
    ("sparsity outside [0, 1)", "prune --model {w}/tiny --sparsity 1.0 --out {w}/o",
     "sparsity must lie in [0, 1)"),
    ("unknown method", "prune --model {w}/tiny --method obs --out {w}/o",
     "prune: argument --method: invalid choice: 'obs' (choose from 'magnitude', 'sparsegpt', 'wanda')"),
    ("unknown prior", "allocate --model {w}/tiny --method evo --sparsity 0.5 --out {w}/p.json",
     "invalid choice: 'evo' (choose from 'alpha', 'besa', 'block_influence', 'flap', 'owl',"),
    ("zero timing repeats", "eval --model {w}/tiny --latency --repeats 0",
     "latency needs prefill, prompt, repeats >= 1"),
    ("unknown task", "eval --model {w}/tiny --tasks nosuchtask_xyz", "unknown task(s) ['nosuchtask_xyz']"),
    ("missing task file", "eval --model {w}/tiny --tasks {w}/nothere.yaml",
     "task file {w}/nothere.yaml does not exist"),
    ("repeated calibration draw", "evaluate {w}/plan.json --model {w}/tiny --verify wanda --verify-seeds 1 1",
     "calibration_seeds repeat a seed: [1, 1]"),
    ("invalid N:M", "prune --model {w}/tiny --pattern 2:x --out {w}/o", "invalid pattern '2:x'"),
    ("N:M above one", "prune --model {w}/tiny --pattern 5:4 --out {w}/o", "invalid N:M pattern 5:4"),
    ("missing model path", "eval --model {w}/nothere", "no model at {w}/nothere"),
    ("missing GGUF", "eval --model {w}/nothere.gguf", "no such GGUF file: {w}/nothere.gguf"),
    ("folder without a model", "eval --model {w}/empty", "{w}/empty has no config.json"),
    ("corrupt GGUF", "eval --model {w}/corrupt.gguf", "{w}/corrupt.gguf is GGUF v0"),
    ("unsupported architecture", "eval --model {w}/neox", "unsupported architecture 'gpt_neox'"),
    ("unknown data source", "eval --model {w}/tiny --data nosuchsource",
     "unknown data source 'nosuchsource'"),
    ("text too short", "eval --model {w}/tiny --data {w}/short.txt --seqlen 64",
     "the evaluation part of '{w}/short.txt' holds 0 tokens = 0 windows of 64"),
    ("malformed plan", "evaluate {w}/malformed.json --model {w}/tiny", "{w}/malformed.json: not valid JSON"),
    ("malformed plan, shown", "plan show {w}/malformed.json", "{w}/malformed.json: not valid JSON"),
    ("wrong-schema plan", "evaluate {w}/wrong_schema.json --model {w}/tiny",
     "{w}/wrong_schema.json: unsupported schema_version 99"),
    ("other model's plan", "evaluate {w}/plan.json --model {w}/tiny4", "plan is for another model"),
    ("other model's plan, pruned", "prune --plan {w}/plan.json --model {w}/tiny4 --out {w}/o",
     "plan is for another model"),
    ("space with a bad key", "search {w}/study.yaml --set space={w}/badkey.yaml",
     "parameters.offset: unknown key(s) ['colour']"),
    ("space with a bad bound", "search {w}/study.yaml --set space={w}/badbound.yaml",
     "low (0.3) must be below high (-0.25)"),
    ("unknown space", "search {w}/study.yaml --set space=nosuchspace", "no search space 'nosuchspace'"),
    ("unknown sampler", "search {w}/study.yaml --sampler nope", "argument --sampler: invalid choice: 'nope'"),
    ("unknown sampler in the config", "search {w}/study.yaml --set sampler.name=nope",
     "unknown sampler 'nope'"),
    ("unknown --set key", "search {w}/study.yaml --set nokey=1", "unknown key(s) ['nokey']"),
    ("missing predictor file", "search {w}/study.yaml --predictor-file {w}/nope.json",
     "predictor.file: no such file"),
    ("a plan as predictor file", "search {w}/study.yaml --predictor-file {w}/plan.json --no-verify",
     "not an allocsearch predictor file"),
    ("unknown sampler parameter", "search {w}/study.yaml --set sampler.name=tpe sampler.params.nope=1",
     "sampler 'tpe': TPESampler.__init__() got an unexpected keyword argument 'nope'"),
    ("sampler seed", "search {w}/study.yaml --set sampler.name=tpe sampler.params.seed=3",
     "the study's seed seeds the sampler; set seed=3"),
    ("unknown nested --set key", "search {w}/study.yaml --set evaluator.nokey=1",
     "evaluator: got an unexpected keyword argument 'nokey'"),
    ("unreachable storage", "search {w}/study.yaml --storage postgresql://nobody@127.0.0.1:1/x",
     "cannot open storage postgresql://nobody@127.0.0.1:1/x: connection failed"),
    ("missing study config", "search {w}/nothere.yaml", "no study config at {w}/nothere.yaml"),
    ("resume at other fidelities", "search {w}/done.yaml --set evaluator.fidelities=[32]",
     "study 'done' was run with another protocol, so its fitness values would not compare: "
     "fidelities: [64] -> [32]"),
    ("resume at another target", "search {w}/done.yaml --target 0.6 --n-trials 4",
     "target: 0.7 -> 0.6"),
    ("report folder without a study", "study report {w}/empty", "no study in {w}/empty"),
    ("output over a user's folder", "prune --model {w}/tiny --sparsity 0.5 --out {w}/user",
     "--out {w}/user exists and is not an earlier allocsearch output"),
]


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.mark.parametrize(("what", "argv", "message"), ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    what: str, argv: str, message: str, workspace: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALLOCSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = _files(workspace)
    capsys.readouterr()
    code = main([*argv.format(w=workspace).split(), "--quiet"])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2, err
    assert lines == [lines[-1]] and lines[0].startswith("allocsearch: error: "), err
    assert message.format(w=workspace) in lines[0]
    assert "Traceback" not in err
    assert _files(workspace) == before  # nothing written, nothing touched


def test_an_internal_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise KeyError("a bug, not a user error")

    from allocsearch.cli import plans

    monkeypatch.setattr(plans, "cmd_plan_show", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["plan", "show", "x.json"])
