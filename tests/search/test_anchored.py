"""Anchored rounds on a tiny model: anchors chained, exact anchor fitness, resume, config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from optuna.trial import TrialState

from allocsearch.evaluate import Evaluator
from allocsearch.plan import Plan
from allocsearch.profile import compute_profile
from allocsearch.search import StudyConfig, StudyConfigError
from allocsearch.search.anchored import format_anchors, run_anchored
from allocsearch.search.report import load_study
from allocsearch.search.runner import trial_plan
from tests.helpers import tiny_loaded

EVAL = {"seqlen": 32, "fidelities": [64, 128], "batch_size": 2}


def _config(out: Path, extra: dict[str, Any] | None = None) -> StudyConfig:
    data = {"name": "tiny", "target": 0.6, "space": "blocks", "n_trials": 4, "evaluator": EVAL,
            "sampler": "random", "warm_start": [{"method": "uniform"}],
            "anchor": {"rounds": 2, "start": {"method": "ramp", "params": {"slope": 0.3}}},
            "verify": {"nsamples": 2, "seqlen": 32, "eval_windows": 2}, "output": str(out)}
    return StudyConfig.from_dict(data | (extra or {}), out / "tiny.yaml")


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    lm = tiny_loaded("llama")
    windows = torch.randint(0, 128, (4, 32), generator=torch.Generator().manual_seed(0))
    return Evaluator(lm, compute_profile(lm, windows, progress=False),
                     _config(Path("x")).evaluator, progress=False)


def test_rounds_chain_anchors_and_keep_the_best_exact_one(evaluator: Evaluator, tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    run = run_anchored(cfg, evaluator=evaluator, progress=False)
    assert [a["round"] for a in run.anchors] == [1, 2, 3] and len(run.rounds) == 2
    for r, study_run in enumerate(run.rounds, start=1):
        study = load_study(tmp_path / f"r{r}")
        assert study.study_name == study_run.study.study_name == f"tiny-r{r}"
        trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
        assert len(trials) == 4
        # The round starts from its anchor (round 1 also from the config's warm starts) ...
        first = trials[0]
        assert first.user_attrs["prior"] == f"plan anchor_r{r}.json"
        assert first.values[0] == pytest.approx(run.anchors[r - 1]["fitness"], rel=1e-9)
        if r == 1:
            assert trials[1].user_attrs["prior"] == "uniform"
        # ... and its best trial is the next anchor.
        best = min((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.values[0])
        nxt = Plan.load(tmp_path / f"anchor_r{r + 1}.json")
        assert nxt.sparsities() == trial_plan(study, best).sparsities()
    assert run.best is not None
    best_fitness = min(a["fitness"] for a in run.anchors)
    assert run.best.provenance["exact_search_fitness"] == best_fitness
    saved = Plan.load(tmp_path / "best_plan.json")
    assert abs(saved.budget() - 0.6) < 1e-6
    record = json.loads((tmp_path / "anchors.json").read_text())
    assert record["verified"]["best"]["ppl"] > 1.0 and record["verified"]["start"]["ppl"] > 1.0
    assert "<- best" in format_anchors(run)
    assert evaluator.anchor_plan is None  # left on the dense profile's scores

    # Re-running resumes: no new trials, the same anchors.
    again = run_anchored(cfg, evaluator=evaluator, progress=False, verify=False)
    assert [r.new_trials for r in again.rounds] == [0, 0]
    assert [a["fitness"] for a in again.anchors] == pytest.approx([a["fitness"] for a in run.anchors])


@pytest.mark.parametrize(("anchor", "message"), [
    ({"rounds": -1}, "anchor.rounds must be >= 0"),
    ({"rounds": 2, "start": {"method": "ramp", "grid": {"slope": [0.1, 0.2]}}}, "one plan, not a grid"),
    ({"rounds": 2, "every": 3}, "anchor must be"),
    ("three", "anchor must be"),
])
def test_bad_anchor_settings_are_named(anchor: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError, match=message):
        _config(tmp_path, {"anchor": anchor})


def test_anchored_rounds_refuse_two_objectives_and_zero_rounds(
    evaluator: Evaluator, tmp_path: Path
) -> None:
    with pytest.raises(StudyConfigError, match="single objective"):
        _config(tmp_path, {"objectives": ["fitness", "sparsity"], "space": "blocks_pareto"})
    with pytest.raises(ValueError, match="no anchored rounds"):
        run_anchored(_config(tmp_path, {"anchor": {"rounds": 0}}), evaluator=evaluator)
