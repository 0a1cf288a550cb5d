"""CLI argument handling that needs no model: clear errors, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from allocsearch.cli import main


@pytest.mark.parametrize(("argv", "message"), [
    (["prune", "--method", "obs", "--out", "x"], "argument --method: invalid choice: 'obs'"),
    (["prune", "--pattern", "5:4", "--out", "x"], "invalid N:M pattern 5:4"),
    (["prune", "--sparsity", "1.2", "--out", "x"], "sparsity must lie in [0, 1)"),
    (["prune", "--pattern", "2:4", "--sparsity", "0.7", "--out", "x"], "implies sparsity 0.5"),
    (["prune", "--nsamples", "0", "--out", "x"], "nsamples must be at least 1"),
    (["eval", "--model", "/no/such/dir/model.gguf"], "no such GGUF file"),
    (["prune", "--device", "tpu", "--out", "x"], "unknown device 'tpu'"),
    (["database", "build", "--pruner", "obs", "--cache-dir", "x"], "--pruner: invalid choice: 'obs'"),
    (["database", "build", "--levels", "0.3:0.9:0", "--cache-dir", "x"], "start:stop:step"),
    (["database", "build", "--levels", "0.5,1.5", "--cache-dir", "x"], "levels must lie in [0, 1)"),
    (["database", "info", "nokey", "--cache-dir", "x"], "no level database with key 'nokey'"),
    (["evaluate", "p.json", "--masks", "ranks", "--pruner", "sparsegpt"], "use masks: database"),
])
def test_bad_arguments_fail_clearly(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "x"
    argv = [str(out) if a == "x" else a for a in argv]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not out.exists()


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "prune" in out and "eval" in out


def test_search_set_takes_several_overrides() -> None:
    from allocsearch.cli import build_parser

    args = build_parser().parse_args(
        ["search", "s.yaml", "--set", "seed=1", "space=hybrid", "--n-trials", "5", "--set", "x=2"])
    assert args.set == ["seed=1", "space=hybrid", "x=2"] and args.n_trials == 5
