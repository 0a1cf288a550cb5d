"""Verification is what the CLI gives: `allocsearch prune --plan` then `allocsearch eval` on a
saved model measure the study's verified number for the same plan and settings, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from allocsearch.cli import main
from allocsearch.evaluate import VerifyConfig, verify_plan
from tests.helpers import saved_tiny_with_ramp


@pytest.mark.parametrize("pruner", ["wanda", "sparsegpt"])
def test_the_cli_measures_the_verified_number(pruner: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOCSEARCH_CACHE", str(tmp_path / "cache"))
    model, lm, cal, plan = saved_tiny_with_ramp(tmp_path, 0.7)
    config = VerifyConfig(pruner, cal, seqlen=32, nsamples=6, threads=1, source="embedded")
    verified = verify_plan(lm, plan, config, progress=False)
    argv = ["prune", "--model", str(model), "--plan", str(tmp_path / "plan.json"), "--method", pruner,
            "--nsamples", "4", "--seqlen", "32", "--seed", "1", "--out", str(tmp_path / "pruned"), "--quiet"]
    assert main(argv) == 0
    assert main(["eval", "--model", str(tmp_path / "pruned"), "--nsamples", "6", "--seqlen", "32",
                 "--json", str(tmp_path / "eval.json"), "--quiet"]) == 0
    cli = json.loads((tmp_path / "eval.json").read_text())["ppl"]
    assert cli == verified.ppl == verified.by_seed[1]
