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


def test_more_sources_are_scored_on_the_same_prune(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``also``: each draw's pruned model measured on another text too, the number a separate
    prune and perplexity give; a config without it keeps the key it had before the field."""
    import dataclasses
    import inspect

    from allocsearch.apply import prune_with_plan
    from allocsearch.evaluate.perplexity import evaluate_perplexity
    from allocsearch.evaluate.verification import SourceScore, Verification, settings_key, torch_threads

    monkeypatch.setenv("ALLOCSEARCH_CACHE", str(tmp_path / "cache"))
    _, lm, cal, plan = saved_tiny_with_ramp(tmp_path, 0.7)
    other = tmp_path / "code.txt"  # another domain: Python source
    other.write_text(inspect.getsource(json))
    base = VerifyConfig("sparsegpt", cal, seqlen=32, nsamples=6, threads=1, source="embedded")
    both = dataclasses.replace(base, also=(str(other),))
    v = verify_plan(lm, plan, both, progress=False)
    assert v.ppl == verify_plan(lm, plan, base, progress=False).ppl  # the main number unchanged

    copy = lm.clone()
    with torch_threads(1):  # as the verification: the thread count moves the last bits
        prune_with_plan(copy, plan, "sparsegpt", cal, progress=False)
        direct = evaluate_perplexity(copy, str(other), seqlen=32, progress=False)
    assert direct.tokens > 32 * 4
    assert v.draws[0].also == {str(other): SourceScore(direct.ppl, direct.tokens)}
    assert v.also_ppl == {str(other): direct.ppl}
    assert Verification.from_dict(json.loads(json.dumps(v.to_dict()))) == v

    assert "also" not in base.settings() and both.settings()["also"] == [str(other)]
    assert settings_key(base) != settings_key(both)
    with pytest.raises(ValueError, match="repeats a source"):
        VerifyConfig(source="embedded", also=("embedded",))
