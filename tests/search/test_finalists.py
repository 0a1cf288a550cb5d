"""Finalists: the best few plans pruned for real on the search split, the lowest chosen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from allocsearch.evaluate import Evaluator, verify
from allocsearch.plan import Plan
from allocsearch.search import StudyConfig, StudyConfigError, run_study, store, tokens_read, trial_plan
from allocsearch.search.finalists import pick_finalists, run_finalists
from allocsearch.search.report import best_plan, build_report
from allocsearch.search.runner import verify_best
from tests.helpers import tiny_evaluator

EVAL = {"seqlen": 32, "fidelities": [64, 128], "batch_size": 2}


def _raw(out: Path) -> dict[str, Any]:
    return {"name": "tiny", "target": 0.6, "space": "blocks", "n_trials": 6, "evaluator": EVAL,
            "sampler": "random",
            "warm_start": [{"method": "uniform"}, {"method": "ramp", "params": {"slope": 0.2}}],
            "verify": {"top": 1, "nsamples": 2, "seqlen": 32, "eval_windows": 2},
            "finalists": {"top": 3, "calibration_seeds": [0, 1]}, "output": str(out)}


def _config(out: Path, extra: dict[str, Any]) -> StudyConfig:
    return StudyConfig.from_dict(_raw(out) | extra, out / "tiny.yaml")


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return tiny_evaluator(_config(Path("x"), {}).evaluator)


def test_finalists_choose_the_lowest_real_prune_on_the_search_split(evaluator: Evaluator,
                                                                    tmp_path: Path) -> None:
    cfg = _config(tmp_path, {})
    run = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
    stored = store.finalists(run.study)
    assert stored is not None and stored["top"] == 3 and len(stored["rows"]) == 3
    ranked = store.ranked(run.study)
    assert [r["trial"] for r in stored["rows"]] == [t.number for t in pick_finalists(run.study, 3)]
    assert stored["rows"][0]["trial"] == ranked[0].number  # the best by search fitness comes first
    fc = cfg.finalist_config()
    assert fc.part == "search" and fc.seqlen == 32 and fc.nsamples == 4 and fc.seeds == (0, 1)
    for row in stored["rows"]:  # each the real prune's perplexity, draw by draw, to the last bit
        result = verify(evaluator, trial_plan(run.study, run.study.trials[row["trial"]]), fc)
        assert [d.ppl for d in result.draws] == row["draws"]
    lowest = min(stored["rows"], key=lambda r: sum(r["draws"]))
    assert stored["chosen"] == lowest["trial"]
    chosen = trial_plan(run.study, run.study.trials[lowest["trial"]])
    assert best_plan(run.study).sparsities() == chosen.sparsities()
    assert stored["chosen"] in verify_best(run.study, evaluator, cfg, progress=False)  # verified too
    report = build_report(run.study, tmp_path / "report", plots=False)
    assert Plan.load(tmp_path / "report" / "best_plan.json").provenance["trial"] == stored["chosen"]
    assert report.files
    trial_tokens = sum(store.StoredTrial.of(t).tokens for t in run.study.trials)
    assert tokens_read(run.study) == trial_tokens + 3 * 2 * 4 * 32  # 3 plans x 2 draws x 4 windows


def test_finalists_are_distinct_and_read_back(evaluator: Evaluator, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config(tmp_path, {"n_trials": 3, "warm_start": [{"method": "uniform"}] * 2})
    run = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
    picked = pick_finalists(run.study, 3)
    plans = [tuple(trial_plan(run.study, t).sparsities().values()) for t in picked]
    assert len(set(plans)) == len(plans) == 2  # the repeated uniform plan is measured once
    monkeypatch.setattr("allocsearch.search.finalists.verify", pytest.fail)  # nothing measured again
    again = run_finalists(run.study, evaluator, cfg)
    assert [f.trial for f in again] == [t.number for t in picked]


def test_a_longer_short_list_measures_only_the_new_plans(evaluator: Evaluator, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config(tmp_path, {"finalists": {"top": 2}})
    run = run_study(cfg, evaluator=evaluator, progress=False, verify=False)
    first = store.finalists(run.study)
    assert first is not None and len(first["rows"]) == 2
    measured: list[int] = []

    def counting(ev: Evaluator, plan: Any, fc: Any) -> Any:
        measured.append(int(plan.provenance["trial"]))
        return verify(ev, plan, fc)

    monkeypatch.setattr("allocsearch.search.finalists.verify", counting)
    longer = StudyConfig.from_dict({**_raw(tmp_path), "finalists": {"top": 3}}, tmp_path / "tiny.yaml")
    rows = run_finalists(run.study, evaluator, longer)
    assert [f.trial for f in rows[:2]] == [r["trial"] for r in first["rows"]]
    assert measured == [rows[2].trial]  # the first two read back
    stored = store.finalists(run.study)
    assert stored is not None and stored["top"] == 3
    assert stored["chosen"] == min(rows, key=lambda f: f.ppl).trial


def test_finalists_config_errors(tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError, match=r"finalists\.top must be >= 0"):
        _config(tmp_path, {"finalists": {"top": -1}})
    with pytest.raises(StudyConfigError, match=r"finalists: .*unexpected keyword argument 'k'"):
        _config(tmp_path, {"finalists": {"k": 2}})
    with pytest.raises(StudyConfigError, match="finalists need a single objective"):
        _config(tmp_path, {"objectives": ["fitness", "sparsity"], "space": "blocks_target"})
