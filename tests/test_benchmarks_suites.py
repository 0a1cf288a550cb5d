"""The quality suites' bookkeeping (benchmarks/_sparsegpt.py, _suite_state.py): partial results shared by
processes running other seeds at once, and the predictor a ``--pretrain`` variant starts from."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from allocsearch.io import atomic_write_text
from allocsearch.predictor.base import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _sparsegpt  # noqa: E402
import _suite_state  # noqa: E402
from _common import study_file  # noqa: E402


def test_partial_results_keep_what_another_process_finished(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "quality_wanda_modules_70.partial.json"
    # Process A ran seed 0 (and chose the priors); B started from that state and ran seed 1;
    # A then measured a prior and saved its own, older, view of the state.
    _suite_state.save_partial(path, "70", {"priors": {"by": "a"}, "searched:s0": {"ppl": 1.0}})
    _suite_state.save_partial(path, "70", {"priors": {"by": "b"}, "searched:s0": {"ppl": 1.0},
                                         "searched:s1": {"ppl": 2.0}})
    _suite_state.save_partial(path, "70", {"priors": {"by": "a"}, "searched:s0": {"ppl": 1.0},
                                         "measured:ramp": {"ppl": 3.0}})
    state = json.loads(path.read_text())
    assert list(state) == ["70"]
    assert state["70"] == {"priors": {"by": "a"}, "searched:s0": {"ppl": 1.0}, "searched:s1": {"ppl": 2.0},
                           "measured:ramp": {"ppl": 3.0}}


@dataclass
class _Record:
    target: float
    study: str


class _Trained:
    def __init__(self, records: list[_Record]) -> None:
        self.records = records

    def save(self, path: Path) -> None:
        path.write_text(json.dumps([r.study for r in self.records]))


def test_a_variant_pretrains_on_the_committed_records_at_the_given_targets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = [_Record(0.5, "a"), _Record(0.6, "b"), _Record(0.7, "c"), _Record(0.75, "d")]
    trained: list[list[_Record]] = []
    kinds: list[str] = []

    def train(recs: list[_Record], **kw: Any) -> _Trained:
        trained.append(list(recs))
        kinds.append(kw["kind"])
        return _Trained(list(recs))

    runs = tmp_path / "runs"  # absent, as results/runs/ is on a fresh checkout
    monkeypatch.setattr(_suite_state, "RUNS", runs)
    monkeypatch.setattr(_suite_state, "predictor_records", lambda: (records, "records.jsonl"))
    monkeypatch.setattr(_suite_state, "train_predictor", train)
    args = argparse.Namespace(pretrain=[0.5, 0.6, 0.75], pretrain_from="records", report=False)
    path = _suite_state.pretrained_predictor(args, "sparsegpt_modules")
    assert path is not None and path.parent == runs
    assert path.name.endswith("_records_50+60+75.json")
    assert json.loads(path.read_text()) == ["a", "b", "d"]  # the 70% study left out
    # A resumed run reuses the file: nothing trained again.
    assert _suite_state.pretrained_predictor(args, "sparsegpt_modules") == path and len(trained) == 1
    pretrain = _suite_state.pretrained_predictor
    # A report measures nothing: it never trains, and says which file its runs started from.
    report = argparse.Namespace(pretrain=[0.5], pretrain_from="records", report=True)
    with pytest.raises(SystemExit, match=r"predictor_\w+_records_50\.json"):
        pretrain(report, "sparsegpt_modules")
    assert len(trained) == 1
    with pytest.raises(SystemExit, match="no predictor records at"):
        pretrain(argparse.Namespace(pretrain=[0.8], pretrain_from="records", report=False), "sparsegpt")
    # --pretrain-model: another model, another file (the default's is left as it was).
    other = pretrain(argparse.Namespace(pretrain=[0.5, 0.6, 0.75], pretrain_from="records", report=False,
                                        pretrain_model="additive"), "wanda_modules")
    assert other == runs / "predictor_additive_records_50+60+75.json" and other != path
    assert kinds == [DEFAULT_MODEL, "additive"]
    assert pretrain(argparse.Namespace(pretrain=[], pretrain_from="records"), "x") is None


@pytest.mark.parametrize("suite", ["wanda_modules", "sparsegpt_modules"])
@pytest.mark.parametrize("target", [0.7, 0.6])
def test_each_seeds_study_is_the_shipped_config_at_that_seed(suite: str, target: float) -> None:
    """What the headline's per-module rows ran is what ``allocsearch search <config> --seed S``
    runs: every prior as a warm start and the config's trial count, only the folder moved."""
    from allocsearch.search import StudyConfig

    args = argparse.Namespace(set=[], tag="", offspring=120)
    for seed in (0, 1, 2):
        ran = _sparsegpt._config(target, seed, args, suite=suite)
        shipped = StudyConfig.load(study_file(suite, target), [f"seed={seed}"])
        assert ran.seed == seed and len(ran.warm_start) == len(shipped.warm_start) > 20
        assert ran.output.name == f"{shipped.name}_s{seed}"
        assert dataclasses.replace(ran, output=shipped.output) == shipped


def test_processes_of_other_seeds_start_on_other_priors() -> None:
    """Seeds searched in parallel processes finish together: each starts its prior
    measurements elsewhere, and every order holds each prior once."""
    from _sparsegpt_render import PRIORS

    assert _sparsegpt.prior_order(0) == PRIORS == ("uniform", "owl", "alpha", "ramp")
    assert _sparsegpt.prior_order(1) == ("owl", "alpha", "ramp", "uniform")
    assert _sparsegpt.prior_order(6) == ("alpha", "ramp", "uniform", "owl")
    assert len({_sparsegpt.prior_order(s)[0] for s in range(3)}) == 3
    assert all(sorted(_sparsegpt.prior_order(s)) == sorted(PRIORS) for s in range(8))


def _row(label: str, ppl: tuple[float, ...], other: float, **extra: Any) -> dict[str, Any]:
    draws = [{"seed": s, "ppl": p, "ppl_other": other} for s, p in enumerate(ppl)]
    return {"label": label, "search_fitness": 10.0, "ppl": sum(ppl) / len(ppl), "ppl_other": other,
            "draws": draws, **extra}


def test_report_summarises_each_targets_measured_seeds_and_measures_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (_sparsegpt, _suite_state):
        monkeypatch.setattr(module, "RUNS", tmp_path)
    monkeypatch.setattr(_sparsegpt, "load_model", lambda *a, **k: pytest.fail("--report loads no model"))
    priors = {f"measured:{f}": _row(f, (100.0, 100.0), 300.0) for f in ("uniform", "owl", "alpha")}
    priors["measured:ramp"] = _row("ramp", (80.0, 90.0), 250.0)
    searched = {"trials": 149, "warm_starts": 29}
    states = {"70": priors | {"searched:s0": _row("s0", (70.0, 80.0), 200.0, **searched),
                              "searched:s2": _row("s2", (85.0, 85.0), 240.0, **searched)},
              "60": priors | {"searched:s1": _row("s1", (60.0, 60.0), 100.0, **searched)}}
    for pct, state in states.items():
        _suite_state.save_partial(tmp_path / f"quality_wanda_modules_{pct}.partial.json", pct, state)
    args = argparse.Namespace(set=[], tag="", offspring=45, seeds=[0, 1, 2], targets=[0.7, 0.6], report=True,
                              pretrain=[], fresh=False, model="smollm2-135m", device="cpu", dtype="float32",
                              eval_windows=None, progress=False)
    out = _sparsegpt.suite_sparsegpt(args, "wanda_modules")
    assert out["seeds"] == [0, 1, 2] and out["offspring"] == 120 and out["device"] == "cpu"
    found = {r["target"]: r for r in out["rows"] if r["plan"] == "searched (median)"}
    assert found[0.7]["seeds"] == 2 and found[0.7]["ratio"] == pytest.approx(80.0 / 85.0)
    # Seed 0 is lower than the ramp on both draws; seed 2 on one of two (within noise).
    assert found[0.7]["lower_on"] == [[2, 2], [1, 2]] and found[0.7]["seeds_below_on_every_draw"] == 1
    assert found[0.6]["seeds"] == 1 and found[0.6]["ratio"] == pytest.approx(60.0 / 85.0)
    del states["60"]["measured:owl"]
    atomic_write_text(tmp_path / "quality_wanda_modules_60.partial.json",
                      json.dumps({"60": states["60"]}))
    with pytest.raises(SystemExit, match="no measured owl prior at 60%"):
        _sparsegpt.suite_sparsegpt(args, "wanda_modules")


def test_a_fresh_checkout_resumes_the_committed_result_under_the_same_protocol(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs, results = tmp_path / "runs", tmp_path / "results"
    for module in (_sparsegpt, _suite_state):
        monkeypatch.setattr(module, "RUNS", runs)
    monkeypatch.setattr(_suite_state, "RESULTS", results)
    results.mkdir()
    args = argparse.Namespace(set=[], tag="", offspring=120, seeds=[0, 1], targets=[0.7], report=True,
                              pretrain=[], fresh=False, model="smollm2-135m", device="cpu", dtype="float32",
                              eval_windows=None, progress=False)
    first = _sparsegpt._config(0.7, 0, args, suite="wanda_modules")
    searched = {"trials": 149, "warm_starts": 29}
    state = {f"measured:{f}": _row(f, (100.0, 90.0), 300.0) for f in ("uniform", "owl", "alpha", "ramp")}
    state["searched:s0"] = _row("s0", (80.0, 85.0), 200.0, **searched)
    stored = _sparsegpt.protocol(first, "wanda_modules", 120) | {"runs": {"70": state}}
    path = results / "quality_wanda_modules_cpu.json"
    path.write_text(json.dumps(stored))
    out = _sparsegpt.suite_sparsegpt(args, "wanda_modules")
    assert out["runs"]["70"]["searched:s0"]["ppl"] == pytest.approx(82.5)
    assert [r["seeds"] for r in out["rows"] if r["plan"] == "searched (median)"] == [1]
    # Another offspring count (or evaluator, space, verification) is another protocol: nothing resumed.
    path.write_text(json.dumps(stored | {"offspring": 45}))
    with pytest.raises(SystemExit, match="no measured uniform prior at 70%"):
        _sparsegpt.suite_sparsegpt(args, "wanda_modules")
    # This machine's partial results win over the committed ones.
    path.write_text(json.dumps(stored))
    other = dict(state, **{"searched:s0": _row("s0", (70.0, 70.0), 200.0, **searched)})
    _suite_state.save_partial(runs / "quality_wanda_modules_70.partial.json", "70", other)
    assert _sparsegpt.suite_sparsegpt(args, "wanda_modules")["runs"]["70"]["searched:s0"]["ppl"] == 70.0


def test_a_variant_in_anchored_rounds_runs_them_and_names_them_in_its_protocol(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``--set anchor.rounds=2 ...`` runs the study as ``allocsearch search`` does (anchored rounds,
    the best plan measured exactly), and its protocol, hence its resume key, says so."""
    import _modules_render
    import _seed_search

    anchored = ["anchor.rounds=2", "anchor.start={method: ramp, params: {slope: 0.2}}"]
    args = argparse.Namespace(set=anchored, tag="rounds", offspring=46)
    cfg = _sparsegpt._config(0.7, 1, args, suite="wanda_modules")
    plain = _sparsegpt._config(0.7, 1, argparse.Namespace(set=[], tag="", offspring=46),
                               suite="wanda_modules")
    meta = _sparsegpt.protocol(cfg, "wanda_modules", 46)
    assert meta["anchor"] == {"rounds": 2, "start": "ramp slope=0.2", "check": 3, "trials_per_round": 75}
    assert "anchor" not in _sparsegpt.protocol(plain, "wanda_modules", 46)  # results before it keep their key
    assert _modules_render.budget(meta) == "2 anchored rounds of 75 trials from ramp slope=0.2"
    assert _modules_render.budget({"offspring": 120}) == "120 offspring"

    best: Any = argparse.Namespace(provenance={"exact_search_fitness": 41.5})  # the rounds' best plan
    rounds = [argparse.Namespace(study=f"study r{r}") for r in (1, 2)]
    calls: list[str] = []

    def fake_anchored(c: Any, **kw: Any) -> Any:
        calls.append("anchored")
        return argparse.Namespace(rounds=rounds, best=best, measured=[{}] * 7)

    monkeypatch.setattr(_seed_search, "run_anchored", fake_anchored)
    monkeypatch.setattr(_seed_search, "run_study", lambda *a, **k: pytest.fail("rounds, not one study"))
    got = _seed_search.search(cfg, None, False)  # type: ignore[arg-type]
    assert calls == ["anchored"] and got.studies == ["study r1", "study r2"]
    assert got.plan is best and got.fitness == 41.5 and got.exact == 7
    # A resumed report counts the offspring the entries name, not their trials less the priors.
    entry = _row("s1", (70.0,), 200.0, trials=150, warm_starts=29, offspring=46)
    assert _sparsegpt._offspring({"70": {"searched:s1": entry}}) == 46


def _prior(label: str, draws: list[float]) -> dict[str, Any]:
    return {"label": label, "search_fitness": None, "ppl": sum(draws) / 3, "ppl_other": 2 * sum(draws) / 3,
            "draws": [{"seed": i, "ppl": d, "ppl_other": 2 * d} for i, d in enumerate(draws)]}


def _state(priors: dict[str, list[float]], seeds: dict[int, list[float]]) -> dict[str, Any]:
    # Each prior's plan: one module at a sparsity of its own (the last bits may differ between runs).
    plans = {f: {"modules": {"m": {"sparsity": 0.1 * i + 1e-12 * len(seeds)}}} for i, f in enumerate(priors)}
    state: dict[str, Any] = {"priors": {"best": {f: {"plan": plans[f]} for f in priors}}}
    state |= {f"measured:{f}": _prior(f, d) for f, d in priors.items()}
    state |= {f"searched:s{s}": _prior(f"searched seed {s}", d) | {"search_fitness": 1.0}
              for s, d in seeds.items()}
    return state


def test_a_variant_with_its_own_priors_is_compared_with_them_else_marked_borrowed() -> None:
    """A tagged variant that verified every prior in its own run is compared with those (its
    prior rows listed); one that borrowed the plain suite's priors is compared with those and
    marked, and the footnote names the variants whose builds differ; the same prior plans
    verified in both runs are reported with how far a draw moved."""
    import _modules_render as mr

    four = {"uniform": [300.0, 300.0, 300.0], "owl": [250.0] * 3, "alpha": [220.0] * 3}
    plain = _state(four | {"ramp": [200.0, 200.0, 200.0]}, {0: [190.0] * 3})
    own = _state(four | {"ramp": [180.0, 200.0, 190.0]}, {0: [171.0] * 3})
    borrowed = _state({}, {0: [170.0] * 3}) | {"priors_from": "plain.json"}
    assert mr.own_priors(own) and not mr.own_priors(borrowed) and not mr.own_priors(_state({}, {}))
    rows = mr._target_rows("70", own, "curves", plain)
    assert rows[3].startswith("| 70% | curves, ramp | - | 190.00 [180.00, 200.00] | 1.000 | 0/3 |")
    assert rows[-1].startswith("| 70% | **curves, searched, median of 1 seed** | - | 171.00 | **0.900** |")
    rows = mr._target_rows("70", borrowed, "ref", plain)
    assert len(rows) == 2 and rows[0].startswith("| 70% | ref, searched seed 0 † | 1.00 | 170.00")
    assert "**0.850**" in rows[1]
    env = {"torch": "2.13", "python": "3.11.7"}
    q = {"environment": env | {"transformers": "5.24"}, "runs": {"70": plain}}
    tagged = [("curves", {"environment": env | {"transformers": "5.25"}, "runs": {"70": own}}),
              ("ref", {"environment": env | {"transformers": "5.24"}, "runs": {"70": borrowed}})]
    assert mr.borrowed_note(q, tagged).startswith("† compared with the plain suite's priors")
    assert "(none here)" in mr.borrowed_note(q, tagged)
    assert mr.borrowed_note(q, tagged[:1]) == ""
    note = mr.remeasured_note(q, tagged)
    assert note.startswith("At 70% the `curves` variant verified the plain suite's prior plans again in "
                           "its own run (transformers 5.24 there, 5.25 here): uniform 300.00 there, "
                           "300.00 here (a draw moved by up to 0.0%)")
    assert "ramp 200.00 there, 190.00 here (a draw moved by up to 10.0%)." in note
    # Two variants with the same figures share one sentence; one that differs has its own.
    again = [*tagged, ("curves2", tagged[0][1]),
             ("same", {"environment": q["environment"], "runs": {"70": own}})]
    note = mr.remeasured_note(q, again)
    assert note.startswith("At 70% the `curves` and `curves2` variants each verified the plain suite's "
                           "prior plans again in their own runs, with the same figures (transformers "
                           "5.24 there, 5.25 here): uniform 300.00 there")
    assert note.count("ramp 200.00 there, 190.00 here") == 2
    assert "At 70% the `same` variant verified the plain suite's prior plans again in its own run " \
           "(the same builds): uniform" in note


def test_prior_plans_are_the_same_to_the_last_bits_of_a_sparsity() -> None:
    import _modules_render as mr

    a = {"modules": {"q": {"sparsity": 0.6000000000000001}, "k": {"sparsity": 0.7}}}
    assert mr._same_plan(a, {"modules": {"q": {"sparsity": 0.6}, "k": {"sparsity": 0.7}}})
    assert not mr._same_plan(a, {"modules": {"q": {"sparsity": 0.61}, "k": {"sparsity": 0.7}}})
    assert not mr._same_plan(a, {"modules": {"q": {"sparsity": 0.6}}})
    assert not mr._same_plan(a, None)


def test_a_variant_that_measured_its_own_priors_is_not_labelled_as_borrowing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``priors_from`` stands only while the variant's choice of priors is the plain suite's (in
    its partial results or its committed result); one left from an earlier result whose borrowed
    priors were measured again by the variant is stale."""
    runs, results = tmp_path / "runs", tmp_path / "results"
    runs.mkdir()
    results.mkdir()
    monkeypatch.setattr(_suite_state, "RUNS", runs)
    monkeypatch.setattr(_suite_state, "RESULTS", results)
    plain = {"priors": {"best": {"ramp": 1}, "commit": "a"}}
    (results / "quality_s_cpu.json").write_text(json.dumps({"runs": {"70": plain}}))
    borrowed = plain | {"priors_from": "quality_s_cpu.json"}
    assert _suite_state.still_borrowed("s", "70", "cpu", borrowed)
    own = {"priors": {"best": {"ramp": 1}, "commit": "b"}, "priors_from": "quality_s_cpu.json"}
    assert not _suite_state.still_borrowed("s", "70", "cpu", own)
    assert not _suite_state.still_borrowed("s", "70", "cpu", {"priors_from": "quality_s_cpu.json"})
    assert not _suite_state.still_borrowed("s", "70", "cpu", plain)  # not labelled at all
    # The plain suite's partial results count too (its run not written yet).
    (runs / "quality_s_70.partial.json").write_text(json.dumps({"70": own}))
    assert _suite_state.still_borrowed("s", "70", "cpu", own)


def test_the_search_costs_are_one_row_per_run_and_target_one_column_per_seed() -> None:
    import _modules_render as mr

    def searched(trials: int, minutes: float, tokens: int | None = None) -> dict[str, Any]:
        return {"trials": trials, "search_s": minutes * 60} | ({"search_tokens": tokens} if tokens else {})

    plain = {"70": {"searched:s0": searched(149, 40, 415744), "searched:s10": searched(149, 12, 1000),
                    "searched:s2": searched(149, 33, 428032), "measured:uniform": {}}}
    variant = {"70": {"searched:s0": searched(73, 9.6)}}
    assert mr._cost_table([("per-module", plain), ("`curves`", variant)]) == [
        "| run | target | s0 | s2 | s10 |", "|---|---|---|---|---|",
        "| per-module | 70% | 149 trials, 415,744 tokens, 40 min | 149 trials, 428,032 tokens, 33 min "
        "| 149 trials, 1,000 tokens, 12 min |",
        "| `curves` | 70% | 73 trials, 10 min | - | - |"]
    assert mr._cost_table([("none", {"70": {}})]) == []
    assert mr._cost_sentence(variant, "curves") == "curves: 70% s0: 73 trials, 10 min."
