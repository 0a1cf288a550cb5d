"""Verification is what the CLI gives: `allocsearch prune --plan` then `allocsearch eval` on a
saved model measure the study's verified number for the same plan and settings, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from allocsearch.allocation import get_allocator
from allocsearch.cli import main
from allocsearch.data import DataConfig
from allocsearch.evaluate import VerifyConfig, verify_plan
from allocsearch.models import load_model
from allocsearch.profile import build_profile
from tests.helpers import save_tiny_model


@pytest.mark.parametrize("pruner", ["wanda", "sparsegpt"])
def test_the_cli_measures_the_verified_number(pruner: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOCSEARCH_CACHE", str(tmp_path / "cache"))
    model = save_tiny_model(tmp_path / "tiny")
    lm = load_model(str(model), device="cpu")
    cal = DataConfig("embedded", 4, 32, 1)
    plan = get_allocator("ramp", slope=0.3).allocate(build_profile(lm, cal, progress=False), 0.7)
    plan.save(tmp_path / "plan.json")
    config = VerifyConfig(pruner, cal, seqlen=32, nsamples=6, threads=1, source="embedded")
    verified = verify_plan(lm, plan, config, progress=False)
    argv = ["prune", "--model", str(model), "--plan", str(tmp_path / "plan.json"), "--method", pruner,
            "--nsamples", "4", "--seqlen", "32", "--seed", "1", "--out", str(tmp_path / "pruned"), "--quiet"]
    assert main(argv) == 0
    assert main(["eval", "--model", str(tmp_path / "pruned"), "--nsamples", "6", "--seqlen", "32",
                 "--json", str(tmp_path / "eval.json"), "--quiet"]) == 0
    cli = json.loads((tmp_path / "eval.json").read_text())["ppl"]
    assert cli == verified.ppl == verified.by_seed[1]
