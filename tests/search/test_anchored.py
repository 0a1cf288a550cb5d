"""Anchored rounds on a tiny model: anchors chained, exact anchor fitness, resume, config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from optuna.trial import TrialState

from allocsearch.cli import main
from allocsearch.evaluate import Evaluator
from allocsearch.plan import Plan
from allocsearch.search import StudyConfig, StudyConfigError, load_study, store
from allocsearch.search.anchored import format_anchors, run_anchored
from tests.helpers import save_tiny_model, tiny_evaluator

EVAL = {"seqlen": 32, "fidelities": [64, 128], "batch_size": 2}


def _config(out: Path, extra: dict[str, Any] | None = None) -> StudyConfig:
    data = {"name": "tiny", "target": 0.6, "space": "blocks", "n_trials": 4, "evaluator": EVAL,
            "sampler": "random", "warm_start": [{"method": "uniform"}],
            "anchor": {"rounds": 2, "start": {"method": "ramp", "params": {"slope": 0.3}}},
            "verify": {"nsamples": 2, "seqlen": 32, "eval_windows": 2}, "output": str(out)}
    return StudyConfig.from_dict(data | (extra or {}), out / "tiny.yaml")


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return tiny_evaluator(_config(Path("x")).evaluator)


def test_rounds_measure_a_short_list_and_continue_from_the_best_exact_plan(
    evaluator: Evaluator, tmp_path: Path
) -> None:
    cfg = _config(tmp_path)
    run = run_anchored(cfg, evaluator=evaluator, progress=False)
    assert len(run.rounds) == 2
    rows = run.measured
    anchors: dict[int, Plan] = {}
    first: dict[int, float] = {}
    seen = [[round(v, 7) for v in Plan.load(tmp_path / "anchor_r1.json").sparsities().values()]]
    for r, study_run in enumerate(run.rounds, start=1):
        study = load_study(tmp_path / f"r{r}")
        assert study.study_name == study_run.study.study_name == f"tiny-r{r}"
        trials = store.trials(study, (TrialState.COMPLETE, TrialState.PRUNED))
        assert len(trials) == 4
        # The round starts from its anchor (round 1 also from the config's warm starts), whose
        # anchored fitness is its exact one.
        assert trials[0].prior == f"plan anchor_r{r}.json"
        anchors[r] = Plan.load(tmp_path / f"anchor_r{r}.json")
        first[r] = trials[0].values[0]
        if r == 1:
            assert trials[1].prior == "uniform"
        # Its short list: the best complete trials whose plans were not measured before.
        cands = [a for a in rows if a["round"] == r and a["role"] == "candidate"]
        def sparsities(t: store.StoredTrial) -> list[float]:
            assert t.plan is not None
            return [round(v, 7) for v in t.plan["sparsities"]]

        done = sorted((t for t in trials if t.state == TrialState.COMPLETE
                       and sparsities(t) not in seen), key=lambda t: t.values[0])
        assert [a["plan"] for a in cands] == [f"r{r} trial {t.number}" for t in done[:3]]
        assert [a["anchored_fitness"] for a in cands] == [t.values[0] for t in done[:3]]
        seen += [sparsities(t) for t in done[:3]]
    # Round 2 starts from the best plan measured in round 1 (anchor 1 included).
    assert first[2] == pytest.approx(min(a["fitness"] for a in rows if a["round"] == 1), rel=1e-9)
    # The result is the best plan measured at all.
    assert run.best is not None
    assert run.best.provenance["exact_search_fitness"] == min(a["fitness"] for a in rows)
    saved = Plan.load(tmp_path / "best_plan.json")
    assert abs(saved.budget() - 0.6) < 1e-6
    record = json.loads((tmp_path / "anchors.json").read_text())
    assert record["verified"]["best"]["ppl"] > 1.0 and record["verified"]["start"]["ppl"] > 1.0
    assert "<- best" in format_anchors(run)
    assert evaluator.anchor_plan is None  # left on the dense profile's scores
    with pytest.raises(FileNotFoundError, match="anchored rounds, one study each"):
        load_study(tmp_path)  # the top folder: the error names the round folders

    # Each anchor's exact fitness, measured afresh, is its first trial's value.
    for r, plan in anchors.items():
        evaluator.anchor(plan, cfg.verify_config().calibration)
        assert evaluator.fitness(plan) == pytest.approx(first[r], rel=1e-9)
    evaluator.anchor(None)

    # Re-running resumes: no new trials, the same plans measured to the same values.
    again = run_anchored(cfg, evaluator=evaluator, progress=False, verify=False)
    assert [r.new_trials for r in again.rounds] == [0, 0]
    assert [a["fitness"] for a in again.measured] == pytest.approx([a["fitness"] for a in rows])


@pytest.mark.parametrize(("anchor", "message"), [
    ({"rounds": -1}, "anchor.rounds must be >= 0"),
    ({"rounds": 2, "start": {"method": "ramp", "grid": {"slope": [0.1, 0.2]}}}, "one plan, not a grid"),
    ({"rounds": 2, "every": 3}, "anchor must be"),
    ("three", "anchor must be"),
])
def test_bad_anchor_settings_are_named(anchor: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError, match=message):
        _config(tmp_path, {"anchor": anchor})


def test_anchored_rounds_refuse_a_shared_storage(tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError, match="anchored rounds run in one process"):
        _config(tmp_path, {"anchor": {"rounds": 2}, "storage": "postgresql://u@h/db"})


def test_anchored_rounds_refuse_two_objectives_and_zero_rounds(
    evaluator: Evaluator, tmp_path: Path
) -> None:
    with pytest.raises(StudyConfigError, match="model a sequential prune"):
        _config(tmp_path, {"verify": {"inputs": "dense"}})
    with pytest.raises(StudyConfigError, match=r"verify\.inputs must be one of"):
        _config(tmp_path, {"verify": {"inputs": "half"}})
    with pytest.raises(StudyConfigError, match="single objective"):
        _config(tmp_path, {"objectives": ["fitness", "sparsity"], "space": "blocks_pareto"})
    with pytest.raises(ValueError, match="no anchored rounds"):
        run_anchored(_config(tmp_path, {"anchor": {"rounds": 0}}), evaluator=evaluator)


def test_anchored_search_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``allocsearch search`` with ``anchor:``: one round, the anchor's trial value its exact
    sequential fitness, the chosen plan the best one measured exactly and verified, and
    ``study report`` on the round's folder."""
    model = save_tiny_model(tmp_path / "model")
    config = tmp_path / "seq.yaml"
    config.write_text(yaml.safe_dump({
        "schema_version": 1, "name": "seq-60", "model": str(model), "device": "cpu", "target": 0.6,
        "data": {"nsamples": 4, "seqlen": 32}, "space": "blocks", "evaluator": EVAL, "sampler": "random",
        "n_trials": 3, "warm_start": [{"method": "ramp", "params": {"slope": 0.3}}],
        "verify": {"top": 1, "nsamples": 2, "seqlen": 32, "eval_windows": 2},
        "anchor": {"rounds": 1, "check": 1, "start": {"method": "ramp", "params": {"slope": 0.3}}}}))
    assert main(["search", str(config), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "study seq-60: 1 anchored rounds" in out and "<- best" in out
    folder = tmp_path / "seq-60"
    record = json.loads((folder / "anchors.json").read_text())
    assert [m["role"] for m in record["measured"]] == ["anchor", "candidate"]
    best = min(record["measured"], key=lambda m: m["fitness"])
    assert record["best"] == best["plan"]
    plan = json.loads((folder / "best_plan.json").read_text())
    assert abs(plan["budget"] - 0.6) < 1e-6
    assert plan["provenance"]["exact_search_fitness"] == pytest.approx(best["fitness"])
    assert record["verified"]["best"]["ppl"] == pytest.approx(plan["provenance"]["verified_ppl"]["wanda"])
    assert main(["study", "report", str(folder / "r1"), "--no-plots"]) == 0
    assert "plan anchor_r1.json" in capsys.readouterr().out
