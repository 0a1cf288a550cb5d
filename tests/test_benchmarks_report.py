"""BENCHMARKS.md is what benchmarks/report.py writes from the results' JSON; every current
result carries a manifest naming its commit and command, and the archived ones are never
headlined."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import ARCHIVE, RESULTS, manifest  # noqa: E402
from report import headline, is_result, kind_of, manifest_line, render  # noqa: E402


def test_benchmarks_md_is_up_to_date() -> None:
    done = subprocess.run([sys.executable, "benchmarks/report.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_manifest_names_the_code_and_the_protocol() -> None:
    m = manifest({"device": "cpu", "dtype": "float32", "seeds": [0, 1, 2]})
    assert len(m["commit"]) == 40 and isinstance(m["dirty"], bool)
    assert m["versions"]["torch"] and m["versions"]["allocsearch"]
    line = manifest_line({"manifest": m})
    assert m["commit"][:10] in line and " · cpu · " in line and "threads" in line
    with pytest.raises(ValueError, match="unknown manifest keys"):
        manifest({"gpu": "h200"})


def test_every_current_result_has_a_manifest_and_the_headline_reads_none_of_the_archive() -> None:
    current = [p for p in RESULTS.glob("*.json") if is_result(p)]
    import json

    for p in current:
        m = json.loads(p.read_text()).get("manifest") or {}
        assert m.get("commit") and m.get("command"), f"{p.name} has no manifest: rerun it or archive it"
    archived = {p.name for p in ARCHIVE.glob("*.json")}
    assert archived and not any(name in headline() for name in archived)


def test_benchmarks_md_is_short_enough_to_read() -> None:
    # One section per current result (about 10 lines each, a table's first rows; a step-by-step
    # result such as the tour's 8 commands takes 17) and one archive row per family: past this,
    # results of older code belong in the archive.
    current = len(list(RESULTS.glob("*.json")))
    assert len((ROOT / "BENCHMARKS.md").read_text().splitlines()) <= 11 * current


def test_a_family_says_what_it_answers_once() -> None:
    text = render()
    paths = sorted(RESULTS.glob("quality_sparsegpt_modules_cpu*.json"))
    assert len(paths) >= 2 and len({kind_of(p) for p in paths}) == 1
    about = kind_of(paths[0]).about
    # Each family's results are rendered together; its description leads the first only.
    assert text.count(about) == 1
    assert all(f"`{p.name}`" in text for p in paths)


def test_the_per_module_rows_count_draws_paired_by_seed() -> None:
    """A searched seed's "lower on" counts the draws where it is below the best prior's same
    draw, not below its mean; the ratio uses the means."""
    from _modules_render import _target_rows
    from _sparsegpt import summarise
    from _sparsegpt_render import lower_on

    def row(label: str, draws: list[float], fitness: float | None = 1.0) -> dict[str, object]:
        ds = [{"seed": s, "ppl": v, "ppl_other": 2 * v} for s, v in enumerate(draws)]
        return {"label": label, "search_fitness": fitness, "ppl": sum(draws) / len(draws),
                "ppl_other": 2 * sum(draws) / len(draws), "draws": ds}

    state = {"measured:uniform": row("uniform", [10.0, 12.0, 14.0]),
             "measured:owl": row("owl", [11.0, 13.0, 15.0]),
             "measured:alpha": row("alpha", [12.0, 12.0, 12.0]),
             "measured:ramp": row("ramp", [20.0, 20.0, 20.0], None),
             # mean 11.0 < 12.0 (the best prior's mean), yet above uniform's first draw
             "searched:s0": row("searched seed 0", [10.5, 11.0, 11.5]),
             "searched:s1": row("searched seed 1", [9.0, 11.0, 13.0])}
    assert lower_on(state["searched:s0"], state["measured:uniform"], "ppl") == (2, 3)
    assert lower_on(state["searched:s1"], state["measured:uniform"], "ppl") == (3, 3)
    lines = _target_rows("70", state)
    assert "| 70% | searched seed 0 | 1.00 | 11.00 [10.50, 11.50] | 0.917 | 2/3 |" in lines[4]
    assert "| 70% | searched seed 1 | 1.00 | 11.00 [9.00, 13.00] | 0.917 | 3/3 |" in lines[5]
    median = summarise(0.7, state, [0, 1])[-1]
    assert median["seeds_below_on_every_draw"] == 1 and median["lower_on"] == [[2, 3], [3, 3]]
    # A tagged variant without priors of its own (the short-listed run) lists only its searched
    # rows, each compared with the plain suite's best prior and marked so, and its median.
    variant = {"searched:s0": row("searched seed 0", [9.0, 9.0, 15.0])}
    lines = _target_rows("70", variant, "screened", state)
    assert lines[0].startswith(
        "| 70% | screened, searched seed 0 † | 1.00 | 11.00 [9.00, 15.00] | 0.917 | 2/3 |")
    assert len(lines) == 2 and "screened, searched, median of 1 seed** †" in lines[1]


def test_a_gpu_run_is_compared_with_its_own_priors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run on a GPU (quality_<suite>_cuda_<tag>.json) measured its priors in the same run:
    its headline row and its table use those, not the CPU suite's, and name the device."""
    import json

    import _common
    import _modules_render

    def row(label: str, ppl: float) -> dict[str, object]:
        return {"label": label, "search_fitness": 1.0, "ppl": ppl, "ppl_other": 2 * ppl,
                "draws": [{"seed": 0, "ppl": ppl, "ppl_other": 2 * ppl}]}

    def state(prior: float, found: float) -> dict[str, dict[str, object]]:
        families = ("uniform", "owl", "alpha", "ramp")
        return ({f"measured:{f}": row(f, prior + i) for i, f in enumerate(families)}
                | {f"searched:s{n}": row(f"searched seed {n}", found) | {"trials": 9, "search_s": 60.0}
                   for n in range(3)})

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setattr(_modules_render, "RESULTS", tmp_path)
    (tmp_path / "quality_wanda_modules_cpu.json").write_text(
        json.dumps({"offspring": 120, "runs": {"70": state(100.0, 90.0)}}))
    (tmp_path / "quality_wanda_modules_cuda_long.json").write_text(json.dumps(
        {"offspring": 480, "seeds": [0, 1, 2], "command": "python benchmarks/quality.py --device cuda",
         "environment": {"device": "NVIDIA H200", "torch": "2.11"}, "runs": {"70": state(50.0, 40.0)}}))
    rows = {r["config"]: r for r in _modules_render.headline_rows()}
    gpu = rows["smollm2-70-modules (480 offspring, long, NVIDIA H200)"]
    assert gpu["ratio_median"] == pytest.approx(40.0 / 50.0) and gpu["better_seeds"] == 3
    assert rows["smollm2-70-modules (120 offspring)"]["ratio_median"] == pytest.approx(0.9)
    result = json.loads((tmp_path / "quality_wanda_modules_cuda_long.json").read_text())
    block = "\n".join(_modules_render._device_block("long", result))
    assert "On NVIDIA H200" in block and "| 70% | uniform | 1.00 | 50.00 | 1.000 | 0/1 |" in block
    assert "| 70% | searched seed 2 | 1.00 | 40.00 | 0.800 | 1/1 |" in block
    assert "**searched, median of 3 seeds** | - | 40.00 | **0.800**" in block


def test_a_variant_borrows_the_plain_suites_priors_only_when_verified_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prior rows come from the plain suite's partial results, else (a fresh checkout) from
    its result file when that verified with the same settings; a plain run borrows nothing."""
    import argparse
    import json

    import _suite_state

    runs, results = tmp_path / "runs", tmp_path / "results"
    runs.mkdir()
    results.mkdir()
    monkeypatch.setattr(_suite_state, "RUNS", runs)
    monkeypatch.setattr(_suite_state, "RESULTS", results)
    verify = {"pruner": "sparsegpt", "nsamples": 16, "seqlen": 256, "eval_windows": 40, "inputs": "pruned",
              "calibration_seeds": (0, 1, 2), "threads": 1, "batch_size": 1, "also": ()}
    state = {"priors": {"best": {}}, "measured:ramp": {"ppl": 69.3}, "searched:s0": {"ppl": 65.2}}
    tagged, plain = argparse.Namespace(tag="rampref"), argparse.Namespace(tag="")
    borrow = _suite_state.shared_priors
    assert borrow("m", "70", tagged, "cpu", verify) == {}  # nothing to borrow yet
    stored = {"study": {"verify": verify | {"calibration_seeds": [0, 1, 2]}}, "runs": {"70": state}}
    (results / "quality_m_cpu.json").write_text(json.dumps(stored))
    got = borrow("m", "70", tagged, "cpu", verify)
    assert got == {"priors": {"best": {}}, "measured:ramp": {"ppl": 69.3},
                   "priors_from": "quality_m_cpu.json"}
    assert borrow("m", "70", plain, "cpu", verify) == {}
    assert borrow("m", "70", tagged, "cuda", verify) == {}  # another device's file: none
    assert borrow("m", "70", tagged, "cpu", verify | {"threads": 2}) == {}  # verified otherwise
    (runs / "quality_m_70.partial.json").write_text(json.dumps({"70": {"measured:owl": {"ppl": 72.8}}}))
    assert borrow("m", "70", tagged, "cpu", verify | {"threads": 2}) == {
        "measured:owl": {"ppl": 72.8}, "priors_from": "quality_m_70.partial.json"}


def test_predictor_benchmarks_read_the_committed_records_without_the_study_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh checkout has no predictor study folders: the benchmarks read the records file
    benchmarks/predictor_data.py committed, plan for plan; with neither they say what to run."""
    import _common

    from allocsearch.allocation import get_allocator
    from allocsearch.predictor.records import PlanRecord, write_records
    from tests.helpers import tiny_profile

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setattr(_common, "PREDICTOR_RUNS", tmp_path / "predictor_runs")
    with pytest.raises(SystemExit, match=r"run benchmarks/predictor_data\.py first"):
        _common.predictor_records("cpu")
    profile = tiny_profile()
    plans = [get_allocator("ramp", slope=s).allocate(profile, 0.6) for s in (0.0, 0.1, 0.2)]
    records = [PlanRecord(p, 10.0 + i, tokens=2048, study="pred-60-x-s0", trial=i)
               for i, p in enumerate(plans)]
    write_records(records, tmp_path / "predictor_records_cpu.jsonl")
    got, source = _common.predictor_records("cpu")
    assert source == "predictor_records_cpu.jsonl"
    assert [(r.fitness, r.study, r.trial) for r in got] == [(r.fitness, r.study, r.trial) for r in records]
    assert [r.plan.sparsities() for r in got] == [r.plan.sparsities() for r in records]
    with pytest.raises(SystemExit, match=r"predictor_records_cuda\.jsonl"):
        _common.predictor_records("cuda")


def test_predictor_benchmarks_refuse_study_folders_that_lack_committed_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Study folders stand in for the committed records only when they hold every trial of
    them: a shard's part run (other seeds, an interrupted study) is refused, naming what lacks."""
    import _common

    import allocsearch.search.records as search_records
    from allocsearch.allocation import get_allocator
    from allocsearch.predictor.records import PlanRecord, write_records
    from tests.helpers import tiny_profile

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    plan = get_allocator("uniform").allocate(tiny_profile(), 0.6)
    committed = [PlanRecord(plan, 10.0 + t, tokens=2048, study=s, trial=t)
                 for s in ("pred-60-x-s0", "pred-60-x-s1") for t in range(2)]
    write_records(committed, tmp_path / "predictor_records_cpu.jsonl")
    monkeypatch.setattr(_common, "predictor_study_folders", lambda: [tmp_path / "f"])
    in_folders: list[PlanRecord] = []
    monkeypatch.setattr(search_records, "folder_records", lambda folders: in_folders)
    in_folders[:] = [*committed[:3], PlanRecord(plan, 9.0, tokens=2048, study="pred-60-x-s3", trial=0)]
    with pytest.raises(SystemExit, match=r"lack trials of 1 studies in predictor_records_cpu\.jsonl "
                                         r"\(pred-60-x-s1\)"):
        _common.predictor_records("cpu")
    in_folders.append(committed[3])  # every committed trial, and one more study: the folders serve
    got, source = _common.predictor_records("cpu")
    assert source == "predictor_runs/"
    assert [(r.study, r.trial) for r in got] == [(r.study, r.trial) for r in in_folders]


def test_efficiency_keeps_earlier_arms_only_when_measured_alike(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``predictor_efficiency.py --keep``: the committed result's rows of the kept arms, marked
    with its commit, only when its settings and verification equal this run's (a verification
    key added since counts as equal at its empty default) and the library has not changed since
    the row's commit."""
    import json

    import predictor_efficiency
    from predictor_efficiency import kept_runs

    monkeypatch.setattr(predictor_efficiency, "library_changed_since", lambda commit, unused: False)
    settings = {"model": "m", "max_tokens": 98304}
    verify = {"pruner": "wanda", "calibration_seeds": [0]}
    runs = [{"arm": "tpe", "seed": 0}, {"arm": "online", "seed": 0}, {"arm": "evopress", "seed": 0,
                                                                      "kept_from": "older"}]
    path = tmp_path / "predictor_efficiency_cpu.json"
    path.write_text(json.dumps({"settings": settings, "verify": verify, "runs": runs,
                                "manifest": {"commit": "abc"}}))
    assert kept_runs(path, ["tpe", "evopress"], settings, verify | {"also": ()}) == [
        {"arm": "tpe", "seed": 0, "kept_from": "abc"}, {"arm": "evopress", "seed": 0, "kept_from": "older"}]
    assert kept_runs(path, ["tpe"], settings | {"max_tokens": 1}, verify) == []
    assert kept_runs(path, ["tpe"], settings, verify | {"calibration_seeds": (0, 1)}) == []
    assert kept_runs(path, ["tpe"], settings, verify | {"also": ("wikitext",)}) == []
    assert kept_runs(tmp_path / "none.json", ["tpe"], settings, verify) == []
    # An option added since (the probe arm's --probe) counts as equal at its default only.
    assert kept_runs(path, ["tpe"], settings | {"probe": 8}, verify) == [
        {"arm": "tpe", "seed": 0, "kept_from": "abc"}]
    assert kept_runs(path, ["tpe"], settings | {"probe": 12}, verify) == []
    monkeypatch.setattr(predictor_efficiency, "library_changed_since",
                        lambda commit, unused: commit == "older")
    tpe_only = [{"arm": "tpe", "seed": 0, "kept_from": "abc"}]
    assert kept_runs(path, ["tpe", "evopress"], settings, verify) == tpe_only  # "older" code differs


class _Repo:
    """A throwaway git repository at ``root``, with its own committer identity."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.git("init", "-q")

    def git(self, *args: str) -> str:
        env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t", "PATH": os.environ["PATH"]}
        return subprocess.run(["git", *args], cwd=self.root, check=True, capture_output=True, text=True,
                              env=env).stdout.strip()

    def write(self, path: str, text: str) -> None:
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / path).write_text(text)

    def commit(self, path: str, text: str) -> str:
        """Write ``path`` and commit every change; the new commit."""
        self.write(path, text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", path)
        return self.git("rev-parse", "HEAD")


def test_kept_arms_ignore_predictor_model_code_but_not_the_record_type_or_the_search(tmp_path: Path) -> None:
    """The arms without a predictor stand across a change of the predictor models (a new default),
    not across one of the trial record type they write or of the search they run."""
    from _code_state import library_changed, predictor_code

    commit = _Repo(tmp_path).commit
    first = commit("allocsearch/predictor/records.py", "a")
    commit("allocsearch/search/runner.py", "a")
    measured = commit("allocsearch/predictor/base.py", "DEFAULT = 'old'")
    default = commit("allocsearch/predictor/base.py", "DEFAULT = 'new'")
    added = commit("allocsearch/predictor/new_model.py", "x")
    code = predictor_code(tmp_path)
    assert code == ("allocsearch/predictor/base.py", "allocsearch/predictor/new_model.py")
    assert not library_changed(measured, default, tmp_path, code)
    assert not library_changed(measured, added, tmp_path, code)
    assert library_changed(measured, default, tmp_path)  # without the allowance, it counts
    assert library_changed(first, added, tmp_path, code)  # the search changed since
    assert library_changed(measured, commit("allocsearch/predictor/records.py", "b"), tmp_path, code)


def test_tokens_to_the_ramp_charge_each_rounds_probes_once() -> None:
    """A probed round's tokens count from its first proposal on, once per round."""
    from optuna.trial import TrialState
    from predictor_efficiency import reach

    from allocsearch.search.store import StoredTrial

    def trial(n: int, value: float, screened: dict[str, int] | None) -> StoredTrial:
        return StoredTrial(n, TrialState.COMPLETE, (value,), {}, {}, None, screened=screened, tokens=100)

    first, second = {"round": 1, "probe_tokens": 40}, {"round": 2, "probe_tokens": 30}
    trials = [trial(0, 9.0, None), trial(1, 8.0, first), trial(2, 7.0, first), trial(3, 5.0, second)]
    assert reach(trials, 7.0) == (340, 3)
    assert reach(trials, 5.0) == (470, 4)
    assert reach(trials, 1.0) == (None, None)
    assert reach([trial(0, 1.0, {"round": 1})], 2.0) == (100, 1)  # an unprobed round reads none


def test_efficiency_rows_summarise_each_arm() -> None:
    """One row per arm: medians over its seeds, the verified range, and how many reached the ramp."""
    from predictor_efficiency import ARM_MODEL, arm_rows, summary

    def run(arm: str, seed: int, evals: int | None, best: float, ppl: float) -> dict[str, object]:
        return {"arm": arm, "seed": seed, "search_tokens": 100 + seed, "evals_to_ramp": evals,
                "tokens_to_ramp": None if evals is None else 2048 * evals,
                "best_fitness": best, "best_wanda_ppl": ppl}

    runs = [run("tpe", 0, None, 9.0, 30.0), run("tpe", 1, 20, 7.0, 10.0), run("tpe", 2, 30, 8.0, 20.0),
            run("pretrained", 0, 3, 5.0, 6.0) | {"kept_from": "abc"}]
    assert arm_rows(runs, summary(runs)) == [
        {"arm": "tpe", "model": None, "seeds": 3, "search_tokens": 101, "reached_ramp": 2,
         "evals_to_ramp": 25.0, "best_fitness": 8.0, "verified": 20.0, "verified_min": 10.0,
         "verified_max": 30.0, "kept": False},
        {"arm": "pretrained", "model": ARM_MODEL["pretrained"], "seeds": 1, "search_tokens": 100,
         "reached_ramp": 1, "evals_to_ramp": 3, "best_fitness": 5.0, "verified": 6.0, "verified_min": 6.0,
         "verified_max": 6.0, "kept": True}]


def test_library_changed_compares_the_package_folder_between_commits(tmp_path: Path) -> None:
    """Only a change under allocsearch/ counts; an unknown commit or no commit counts as changed."""
    from _code_state import library_changed

    commit = _Repo(tmp_path).commit
    first = commit("allocsearch/a.py", "x = 1\n")
    second = commit("allocsearch/a.py", "x = 2\n")
    third = commit("benchmarks/b.py", "y = 1\n")
    assert library_changed(first, second, tmp_path)
    assert not library_changed(second, third, tmp_path)
    assert library_changed("0" * 40, third, tmp_path)
    assert library_changed(second, None, tmp_path)
    # A change to a file the measurement never imported leaves it standing; a file added since
    # is in no such list, so it counts.
    assert not library_changed(first, second, tmp_path, unused=["allocsearch/a.py"])
    fourth = commit("allocsearch/new.py", "z = 1\n")
    assert library_changed(first, fourth, tmp_path, unused=["allocsearch/a.py"])
    # Comments and docstrings are not code; a string that is not a docstring is.
    fifth = commit("allocsearch/a.py", '"""Module."""\n\n\ndef f():\n    """One."""\n    return 2  # c\n')
    sixth = commit("allocsearch/a.py",
                   '"""Other."""\n\n\ndef f():\n    """Two."""\n    # why\n    return 2\n')
    assert not library_changed(fifth, sixth, tmp_path)
    assert library_changed(sixth, commit("allocsearch/a.py", '"""Other."""\n\n\ndef f():\n    return 3\n'),
                           tmp_path)
    seventh = commit("allocsearch/a.py", '"""Other."""\nX = "a"\n')
    assert library_changed(seventh, commit("allocsearch/a.py", '"""Other."""\nX = "b"\n'), tmp_path)
    assert library_changed(seventh, commit("allocsearch/a.py", "def (:\n"), tmp_path)  # unparsable
    # The same commit is the same code, also where git cannot answer (a copy without .git).
    # (The folder is not even there: git is not asked.)
    assert not library_changed(second, second, tmp_path / "no-such-folder")


def test_a_copy_without_git_takes_its_commit_from_the_environment(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A tree copied to a device machine has no .git: the commit it was copied from comes
    from ALLOCSEARCH_BENCH_COMMIT (a clean copy), and without it the commit is unknown."""
    import _code_state

    monkeypatch.setattr(_code_state, "ROOT", tmp_path)
    monkeypatch.delenv(_code_state.COMMIT_ENV, raising=False)
    assert _code_state.git_state() == (None, False)
    monkeypatch.setenv(_code_state.COMMIT_ENV, "a" * 40)
    assert _code_state.git_state() == ("a" * 40, False)


def test_a_written_result_does_not_make_the_tree_dirty_but_a_code_change_does(tmp_path: Path) -> None:
    """A benchmark started after another wrote its results into the same tree measures the
    commit's code; an edit anywhere else is an uncommitted change."""
    import _code_state

    repo = _Repo(tmp_path)
    for path in ("benchmarks/results/r.json", "allocsearch/a.py"):
        repo.write(path, "0")
    repo.commit("README.md", "0")
    assert _code_state.git_state(tmp_path)[1] is False
    (tmp_path / "benchmarks/results/r.json").write_text("1")
    assert _code_state.git_state(tmp_path)[1] is False
    (tmp_path / "allocsearch/a.py").write_text("1")
    assert _code_state.git_state(tmp_path)[1] is True
    repo.git("checkout", "allocsearch/a.py")
    (tmp_path / "README.md").write_text("1")
    assert _code_state.git_state(tmp_path)[1] is True


def test_a_row_lists_the_library_files_its_process_never_imported(tmp_path: Path) -> None:
    """Every file listed is unimported and exists; an imported one is not listed; a package
    imported from elsewhere than the checkout lists nothing (every change then counts)."""
    import importlib

    from _code_state import code_state, unimported_library
    from _common import ROOT

    importlib.import_module("allocsearch.plan")
    unused = code_state()["unused"]
    assert "allocsearch/plan/__init__.py" not in unused and "allocsearch/__init__.py" not in unused
    modules = {m.removesuffix(".__init__") for m in
               (u.removesuffix(".py").replace("/", ".") for u in unused)}
    assert all((ROOT / u).is_file() for u in unused) and not modules & set(sys.modules)
    assert unimported_library(tmp_path) == []


def test_efficiency_partial_drops_rows_kept_for_arms_no_longer_kept(tmp_path: Path) -> None:
    """A row an earlier ``--keep`` took stays out of the partial file (and so is run again) once
    its arm is no longer kept, however often the partial is merged; measured rows stay."""
    import json

    from predictor_efficiency import merge_partial

    partial = tmp_path / "runs" / "eff.partial"
    kept = [{"arm": "tpe", "seed": s, "kept_from": "abc"} for s in (0, 1)]
    merge_partial(partial, [*kept, {"arm": "evopress", "seed": 0, "kept_from": "abc"}], ["tpe", "evopress"])
    measured = {"arm": "online", "seed": 0}
    got = merge_partial(partial, [measured], ["evopress"])
    assert got == [measured, {"arm": "evopress", "seed": 0, "kept_from": "abc"}]
    assert merge_partial(partial, [], []) == [measured]
    assert json.loads(partial.read_text())["runs"] == [measured]


def test_efficiency_partial_drops_rows_measured_on_other_library_code(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A resumed run measures again the rows whose recorded commit has other library code; rows
    from this code, and rows written before rows carried a commit, stay."""
    import _code_state
    from predictor_efficiency import merge_partial

    monkeypatch.setattr(_code_state, "library_changed_since", lambda commit, unused=(): commit == "old")
    partial = tmp_path / "eff.partial"
    rows = [{"arm": "tpe", "seed": 0, "commit": "old"}, {"arm": "tpe", "seed": 1, "commit": "new"},
            {"arm": "tpe", "seed": 2}]
    assert merge_partial(partial, rows, []) == rows[1:]
    assert merge_partial(partial, [], []) == rows[1:]


def test_demo_sentence_renders_the_measured_minutes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's line under ./scripts/demo.sh: each stage's minutes and the demo's verdict from
    the result file, or a plain 'not yet timed' without one."""
    import json

    import demo

    monkeypatch.setattr(demo, "RESULTS", tmp_path)
    assert demo.render_readme().startswith("Not yet timed")
    rows = [{"stage": "install (scripts/setup.sh)", "seconds": 180.0, "minutes": 3.0},
            {"stage": "demo (scripts/demo.sh)", "seconds": 660.0, "minutes": 11.0},
            {"stage": "total", "seconds": 840.0, "minutes": 14.0}]
    verdict = {"pruner": "wanda", "source": "", "ppl": 150.04, "prior_label": "ramp slope=0.3",
               "prior_ppl": 180.0, "ratio": 150.04 / 180.0, "lower_on": 2, "draws": 2}
    manifest = {"command": "python benchmarks/demo.py", "commit": "0123456789abcdef", "date": "d",
                "machine": {"cores": 2}}
    (tmp_path / "demo_cpu.json").write_text(json.dumps({"rows": rows, "fresh_environment": True,
                                                         "verdicts": [verdict], "manifest": manifest}))
    assert demo.render_readme() == (
        "Measured from a new environment on 2 CPU cores: the install 3.0 min, the demo 11.0 min, 14.0 min "
        "in all (`python benchmarks/demo.py`, commit 0123456789, d; pip's download cache was warm). The "
        "demo's verdict: wanda: searched 150.0 vs ramp slope=0.3 180.0 (0.834x, lower on 2 of 2 draws).")


def test_resume_state_drops_entries_measured_on_other_library_code(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A quality suite's resume state: entries whose recorded commit has other library code are
    measured again (named in one line); entries of this code and entries without a commit stay."""
    import _code_state

    monkeypatch.setattr(_code_state, "library_changed_since", lambda commit, unused=(): commit == "old")
    state = {"priors": {"best": {}, "commit": "new"}, "searched:s0": {"ppl": 1.0, "commit": "old"},
             "searched:s1": {"ppl": 2.0}, "measured:owl": {"ppl": 3.0, "commit": "new"}}
    kept = {k: v for k, v in state.items() if k != "searched:s0"}
    assert _code_state.fresh_entries(state, "q.partial.json") == kept
    assert capsys.readouterr().out == ("q.partial.json: measuring again searched:s0 (measured on other "
                                       "library code)\n")


def test_resume_state_drops_entries_measured_under_other_numerics(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Entries measured on another machine or build (their recorded numerics differ from this
    process's) are measured again, each reason in one line; entries without numerics stay."""
    import _code_state

    monkeypatch.setattr(_code_state, "library_changed_since", lambda commit, unused=(): False)
    here = _code_state.numerics()
    other = here | {"transformers": "0.0.1", "cpu": "another CPU"}
    state = {"measured:uniform": {"ppl": 1.0, "commit": "c", "numerics": other},
             "measured:ramp": {"ppl": 2.0, "commit": "c", "numerics": dict(here)},
             "measured:owl": {"ppl": 3.0, "commit": "c"}}
    kept = {k: v for k, v in state.items() if k != "measured:uniform"}
    assert _code_state.fresh_entries(state, "q.partial.json") == kept
    assert capsys.readouterr().out == ("q.partial.json: measuring again measured:uniform (measured on "
                                       "other numerics: cpu 'another CPU', transformers '0.0.1')\n")
    assert _code_state.code_state()["numerics"] == here


def test_a_row_less_its_code_state_keeps_only_its_measurements() -> None:
    """A resumable row stamped with the code state it was measured on, published less exactly
    the stamp (a correlation row: its plan, fitness and draws stay)."""
    import _code_state

    row = {"plan": "uniform@0.70", "wanda@2048": 210.5, "exact_draws": {"0": 199.0}}
    stamped = row | _code_state.code_state()
    assert set(stamped) - set(row) == {"commit", "dirty", "unused", "numerics"}
    assert _code_state.without_code_state(stamped) == row


def test_an_interrupted_runs_study_folder_is_removed_before_it_runs_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A study folder an interrupted efficiency run left is removed (said in one line), so the run
    starts from its first trial; without one nothing is removed or said."""
    import _common

    folder = tmp_path / "eff-online-s1"
    folder.mkdir()
    (folder / "study.db").write_bytes(b"trials of an interrupted run")
    assert _common.start_afresh(folder) is True
    assert not folder.exists() and tmp_path.exists()
    assert capsys.readouterr().out == ("eff-online-s1: an interrupted run's study, started again from its "
                                       "first trial\n")
    assert _common.start_afresh(folder) is False
    assert capsys.readouterr().out == ""


def test_tagged_variants_share_one_section_and_one_table(tmp_path: Path) -> None:
    """A result's tagged variants with its columns are rows of one table after it, each named
    by its tag with its own manifest line; one with other columns keeps a section of its own."""
    import json

    from report import render_variants, variants_of

    m = {"command": "python benchmarks/quality.py", "commit": "a" * 40, "dirty": False, "device": "cpu",
         "machine": {"threads": 1}, "date": "2026-12-04"}

    def write(name: str, rows: list[dict[str, object]]) -> Path:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"rows": rows, "manifest": m | {"command": f"cmd {name}"}}))
        return path

    base = write("quality_wanda_modules_cpu", [{"target": 0.7, "plan": "ramp", "ppl": 2.0}])
    ref = write("quality_wanda_modules_cpu_ref", [{"ppl": 1.5, "plan": "searched", "target": 0.7}])
    other = write("quality_wanda_modules_cpu_odd", [{"target": 0.7, "speed": 3.0}])
    unrelated = write("quality_wanda_modulesx_cpu_ref", [{"target": 0.7, "plan": "p", "ppl": 1.0}])
    files = [base, other, ref, unrelated]
    assert variants_of(base, files) == [ref]
    lines = render_variants(base, [ref])
    assert lines[0] == "### Searching per module on Wanda ranks: variants of `quality_wanda_modules_cpu.json`"
    assert "`cmd quality_wanda_modules_cpu_ref`" in lines[2]
    # the base's column order, the tag first
    assert "| variant | target | plan | ppl |" in lines and "| ref | 0.7 | searched | 1.5 |" in lines
    # a row equal in every column to an earlier variant's (the same prior verified alike) is shown once
    again = write("quality_wanda_modules_cpu_zed", [{"ppl": 1.5, "plan": "searched", "target": 0.7},
                                                    {"ppl": 1.25, "plan": "searched", "target": 0.7}])
    lines = render_variants(base, [ref, again])
    assert [row for row in lines if "| searched |" in row] == ["| ref | 0.7 | searched | 1.5 |",
                                                            "| zed | 0.7 | searched | 1.25 |"]
    note = "Rows equal in every column to an earlier variant's are shown once: `zed` repeats `ref`'s."
    assert note in lines


def test_the_headline_keeps_three_seed_rows_and_weighs_each_against_its_noise_floor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import _modules_render
    import report

    def row(config: str, pruner: str, target: float, seeds: int, median: float) -> dict[str, object]:
        return {"config": config, "pruner": pruner, "target": target, "seeds": seeds,
                "ratio_median": median, "ratio_min": median - 0.01, "ratio_max": median + 0.01,
                "ratio_other_median": 0.9, "better_seeds": seeds}

    rows = [row("a", "wanda", 0.7, 3, 0.85), row("b", "sparsegpt", 0.6, 3, 0.98),
            row("c", "wanda", 0.7, 1, 0.5)]
    monkeypatch.setattr(report, "RESULTS", tmp_path)  # no headline_*.json, no noise_*.json there
    monkeypatch.setattr(_modules_render, "headline_rows", lambda: rows)
    monkeypatch.setattr(report, "noise_floors", lambda: {(0.7, "wanda"): 0.12, (0.6, "sparsegpt"): 0.026})
    text = report.headline()
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert [line.split("`")[1] for line in table] == ["a", "b"]  # the one-seed row is left out
    assert table[0].endswith("| yes (floor 12.0%) |")  # 0.85 < 1 - 0.12
    assert table[1].endswith("| within noise (floor 2.6%) |")  # 0.98 >= 1 - 0.026
    assert "1 variant with fewer seeds" in text


def test_a_pretrained_predictor_is_kept_only_for_the_same_records() -> None:
    """The efficiency suite's pretrained predictor file is named by its training records, so a
    records file that grew (more seeds) trains a new one instead of reusing the old."""
    from types import SimpleNamespace

    from _common import records_digest

    recs = [SimpleNamespace(study=s, trial=t, fitness=f) for s, t, f in (("a", 0, 2.0), ("b", 1, 3.0))]
    assert records_digest(recs) == records_digest(recs[::-1])  # order does not matter
    assert records_digest(recs) != records_digest(recs[:1])
    assert records_digest(recs) != records_digest([recs[0], SimpleNamespace(study="b", trial=1, fitness=3.5)])


def test_the_damage_arm_counts_only_its_curves_tokens_and_its_row_reports_them() -> None:
    """``pretrained_damage``: the curves' search tokens, all and at the study's target (what
    its plans read), in the arm's row beside the study's own tokens."""
    from predictor_efficiency import arm_rows, damage_tokens, summary

    from allocsearch.allocation.curves import BlockCurves
    from allocsearch.predictor.damage import CentredCurves, DamageCurves

    def entry(target: float, label: str, tokens: int) -> CentredCurves:
        curves = BlockCurves((0.5, 0.9), ((0.1, 0.4), (0.2, 0.5), (0.0, 0.3)), tokens, model="m")
        return CentredCurves(target, label, (target,) * 3, curves)

    curves = DamageCurves((entry(0.6, "uniform", 100), entry(0.7, "uniform", 100), entry(0.7, "ramp", 10)))
    # 3 blocks x 2 levels + the centre = 7 evaluations per entry.
    assert damage_tokens(curves, 0.7) == {"damage_tokens": 7 * 210, "damage_tokens_target": 7 * 110}
    assert damage_tokens(curves, 0.75) == {"damage_tokens": 7 * 210, "damage_tokens_target": 0}
    run = {"arm": "pretrained_damage", "seed": 0, "search_tokens": 98304, "evals_to_ramp": 3,
           "tokens_to_ramp": 6144, "best_fitness": 5.0, "best_wanda_ppl": 6.0} | damage_tokens(curves, 0.7)
    plain = {k: v for k, v in run.items() if not k.startswith("damage")} | {"arm": "pretrained"}
    rows = arm_rows([plain, run], summary([plain, run]))
    assert "damage_tokens" not in rows[0]
    assert (rows[1]["damage_tokens"], rows[1]["damage_tokens_target"]) == (1470, 770)


def test_the_other_domain_is_summarised_only_where_the_verification_scored_one() -> None:
    from predictor_efficiency import arm_rows, summary

    def run(arm: str, seed: int, ppl: float, other: float | None) -> dict[str, object]:
        row = {"arm": arm, "seed": seed, "search_tokens": 10, "evals_to_ramp": 3, "tokens_to_ramp": 30,
               "best_fitness": 5.0, "best_wanda_ppl": ppl}
        return row | ({"best_wanda_ppl_other": other} if other is not None else {})

    runs = [run("tpe", 0, 10.0, 40.0), run("tpe", 1, 12.0, 20.0), run("tpe", 2, 11.0, 30.0),
            run("evopress", 0, 9.0, None)]
    stats = summary(runs)
    other = [s for s in stats if s["metric"] == "best_wanda_ppl_other"]
    assert [(s["arm"], s["median"], s["min"], s["max"]) for s in other] == [("tpe", 30.0, 20.0, 40.0)]
    rows = arm_rows(runs, stats)
    assert rows[0]["verified_other"] == 30.0 and "verified_other" not in rows[1]


def test_the_other_domain_ppl_is_the_mean_over_draws_only_where_scored() -> None:
    from predictor_efficiency import other_ppl

    from allocsearch.evaluate.verification import Draw, SourceScore, Verification

    def draw(seed: int, other: float | None) -> Draw:
        also = {"file:x": SourceScore(other, 100)} if other is not None else {}
        return Draw(seed, 10.0 + seed, 100, 0.7, 1.0, 1.0, also=also)

    assert other_ppl(Verification("wanda", (draw(0, 30.0), draw(1, 50.0)))) == {"wanda_ppl_other": 40.0}
    assert other_ppl(Verification("wanda", (draw(0, None),))) == {}


def test_the_pending_resume_state_is_committed_and_the_runs_folder_is_not() -> None:
    # A benchmark longer than a working session resumes on a fresh clone only from committed state.
    from _common import PENDING, RUNS

    def ignored(path: Path) -> bool:
        rc = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT).returncode
        assert rc in (0, 1)
        return rc == 0

    assert not ignored(PENDING / "predictor_efficiency_cpu.json.partial")
    assert ignored(RUNS / "predictor_efficiency_cpu.json.partial")


def test_only_an_unfinished_study_is_started_afresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses

    import _common

    from allocsearch.search import StudyConfig, run_study, tokens_read
    from tests.helpers import tiny_evaluator

    data = {"name": "tiny", "target": 0.6, "space": "blocks", "n_trials": 3, "warm_start": [],
            "evaluator": {"seqlen": 32, "fidelities": [64], "batch_size": 2},
            "output": str(tmp_path / "s")}
    cfg = StudyConfig.from_dict(data, tmp_path / "tiny.yaml")
    assert _common.restart_unfinished(cfg) is False  # nothing there yet
    study = run_study(cfg, evaluator=tiny_evaluator(cfg.evaluator), progress=False, verify=False).study
    spent = tokens_read(study)
    assert _common.restart_unfinished(cfg) is False  # finished: kept
    # The same folder under a config with a later end: by tokens it is finished, by trials not.
    assert _common.restart_unfinished(dataclasses.replace(cfg, n_trials=5, max_tokens=spent)) is False
    assert (tmp_path / "s" / "study.db").is_file() and capsys.readouterr().out == ""
    assert _common.restart_unfinished(dataclasses.replace(cfg, n_trials=5, max_tokens=spent + 1)) is True
    assert not (tmp_path / "s").exists()
    assert capsys.readouterr().out == "s: an interrupted run's study, started again from its first trial\n"


def test_the_efficiency_report_without_runs_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import predictor_efficiency

    monkeypatch.setattr(predictor_efficiency, "PENDING", tmp_path)
    monkeypatch.setattr(sys, "argv", ["predictor_efficiency.py", "--report"])
    import re

    absent = tmp_path / "predictor_efficiency_cpu.json.partial"
    with pytest.raises(SystemExit, match=re.escape(f"no runs to report: {absent} is absent")):
        predictor_efficiency.main()


def test_curves_only_takes_the_damage_arms_targets_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import predictor_efficiency

    monkeypatch.setattr(sys, "argv", ["predictor_efficiency.py", "--curves-only", "0.7", "0.65"])
    with pytest.raises(SystemExit):  # before the model loads
        predictor_efficiency.main()
    err = capsys.readouterr().err
    assert "--curves-only: the damage arm's curves are at [0.6, 0.7, 0.75], not [0.65]" in err


def test_curves_only_measures_the_centres_asked_for_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    import predictor_efficiency

    calls: list[tuple[float, str, int]] = []

    def fake(ev: object, target: float, centre: str, *, tokens: int, progress: bool) -> object:
        calls.append((target, centre, tokens))
        return (target, centre)  # stands in for the entry

    monkeypatch.setattr(predictor_efficiency, "measure_damage", fake)
    monkeypatch.setattr(predictor_efficiency, "DamageCurves", lambda entries: entries)
    got = predictor_efficiency.measure_curves(object(), 2048, [0.7, 0.75], ["ramp slope=0.3"])  # type: ignore[arg-type]
    assert calls == [(0.7, "ramp slope=0.3", 2048), (0.75, "ramp slope=0.3", 2048)]
    assert got == ((0.7, "ramp slope=0.3"), (0.75, "ramp slope=0.3"))  # type: ignore[comparison-overlap]
    calls.clear()
    predictor_efficiency.measure_curves(object(), 512, [0.6])  # type: ignore[arg-type]
    assert calls == [(0.6, "uniform", 512), (0.6, "ramp slope=0.3", 512)]


def test_curves_only_refuses_an_unknown_centre(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import predictor_efficiency

    argv = ["predictor_efficiency.py", "--curves-only", "0.7", "--centres", "steep"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit):
        predictor_efficiency.main()
    assert "invalid choice: 'steep'" in capsys.readouterr().err


def test_efficiency_settings_leave_out_what_only_chooses_the_work() -> None:
    import argparse

    import predictor_efficiency

    args = argparse.Namespace(model="smollm2-135m", fidelity=2048, draws=3, progress=True, arms=["tpe"],
                              seeds=[0], report=True, keep=[], curves_only=[0.7], centres=["uniform"],
                              variant="probe")
    assert predictor_efficiency.settings_of(args) == {"model": "smollm2-135m", "fidelity": 2048, "draws": 3}


def test_centres_without_curves_only_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import predictor_efficiency

    monkeypatch.setattr(sys, "argv", ["predictor_efficiency.py", "--centres", "uniform"])
    with pytest.raises(SystemExit):  # before the model loads
        predictor_efficiency.main()
    assert "--centres chooses the curves --curves-only measures" in capsys.readouterr().err


def test_a_result_written_by_report_shows_the_command_that_measures_it_all() -> None:
    """``--report`` only writes what separate processes measured: the docs show the same
    arguments without it, over every seed the result holds (the JSON keeps what ran)."""
    from _common import rerun_command

    m = {"commit": "a" * 40, "dirty": False, "machine": {"threads": 1}, "date": "today",
         "command": "python benchmarks/quality.py --suite wanda_modules --report --targets 0.7 "
                    "--seeds 0 --offspring 40 --set 'warm_start=[{method: uniform}]'"}
    data = {"manifest": m, "seeds": [0, 1, 2]}
    assert rerun_command(data) == ("python benchmarks/quality.py --suite wanda_modules --targets 0.7 "
                                   "--seeds 0 1 2 --offspring 40 --set 'warm_start=[{method: uniform}]'")
    line = manifest_line(data)
    assert line.startswith("`python benchmarks/quality.py --suite wanda_modules --targets 0.7 --seeds 0 1 2 ")
    assert "(its parts ran one per process; `--report` wrote it)" in line
    assert rerun_command({"command": "python benchmarks/x.py --report"}) == "python benchmarks/x.py"
    ran = {"manifest": m | {"command": "python benchmarks/quality.py --seeds 0"}, "seeds": [0, 1]}
    assert rerun_command(ran) == "python benchmarks/quality.py --seeds 0"  # ran as recorded: kept
    assert "wrote it" not in manifest_line(ran)
