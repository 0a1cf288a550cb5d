"""`allocsearch evaluate --masks database` scores a plan on the database a study would use:
calibrated on a sequential prune at the uniform plan of the plan's target unless told
``--reference none``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from allocsearch.cli import main
from allocsearch.evaluate import Evaluator, EvaluatorConfig
from tests.helpers import saved_tiny_with_ramp

SMALL = ["--nsamples", "4", "--seqlen", "32", "--seed", "1", "--fidelity", "64", "--batch-size", "2",
         "--quiet"]


def test_evaluate_on_the_database_anchors_at_the_uniform_reference(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ALLOCSEARCH_CACHE", str(tmp_path / "cache"))
    model, lm, cal, plan = saved_tiny_with_ramp(tmp_path, 0.6)
    db = ["--masks", "database", "--pruner", "sparsegpt", "--levels", "0.4:0.8:0.1"]
    fitness = {}
    for ref in (None, "none"):
        out = tmp_path / f"{ref}.json"
        argv = ["evaluate", str(tmp_path / "plan.json"), "--model", str(model), *db, *SMALL,
                "--json", str(out), *([] if ref is None else ["--reference", ref])]
        assert main(argv) == 0
        payload = json.loads(out.read_text())
        assert payload["config"]["reference"] == (ref or "uniform")
        fitness[ref] = payload["results"][0]["steps"][-1]["value"]
        said = "calibrated on a sequential prune at the uniform plan at 0.6000" in capsys.readouterr().out
        assert said == (ref is None)

    # The library's study path gives the CLI's number, bit for bit; one-shot differs.
    config = EvaluatorConfig(masks="database", pruner="sparsegpt", levels=(0.0, 0.4, 0.5, 0.6, 0.7, 0.8),
                             seqlen=32, fidelities=(64,), batch_size=2, profile=cal)
    assert config.reference == "uniform"
    ev = Evaluator.build(lm, config, progress=False)
    reference = ev.use_reference(0.6)
    assert reference is not None and len(set(reference.sparsities().values())) == 1
    assert ev.fitness(ev.prepare(plan)) == fitness[None]
    assert fitness[None] != fitness["none"]
