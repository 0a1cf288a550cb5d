"""benchmarks/tour.py: the README's tour commands, run in order and timed, and its rendered line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import tour

README = """# x

## Two commands

    allocsearch eval --model m

## A tour

Text.

    allocsearch allocate --model m --sparsity 0.7 \\
        --out a.json
    allocsearch plan show a.json
Not a command: allocsearch search inline.

    python not_ours.py

## Reference

    allocsearch export a.json
"""


def test_the_tour_is_the_indented_commands_of_its_section_only() -> None:
    assert tour.tour_commands(README) == ["allocsearch allocate --model m --sparsity 0.7 --out a.json",
                                          "allocsearch plan show a.json"]


def test_the_readmes_tour_runs_from_a_prior_to_an_exported_recipe() -> None:
    commands = tour.tour_commands((Path(__file__).resolve().parents[1] / "README.md").read_text())
    labels = [tour._label(c) for c in commands]
    assert labels[0] == "allocate" and labels[-1] == "export"
    assert {"study curves", "search", "study report", "prune"} <= set(labels)


def test_the_tour_stops_at_the_first_failing_command(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "ALLOCSEARCH_CACHE": str(tmp_path / "cache")}
    folder = tmp_path / "tour"
    folder.mkdir()
    commands = ["allocsearch --version", "allocsearch plan show missing.json", "allocsearch --version"]
    rows = tour.run_tour(commands, folder, env, tmp_path / "log")
    assert [r["returncode"] == 0 for r in rows] == [True, False]
    assert "$ allocsearch plan show missing.json" in (tmp_path / "log").read_text()


def test_a_step_lists_the_files_it_wrote_new_or_rewritten(tmp_path: Path) -> None:
    before = {"kept.txt": 1, "report.json": 1}
    after = {"kept.txt": 1, "report.json": 2, "plan.json": 3}
    assert tour._written(before, after) == ["plan.json", "report.json"]
    env = {"PATH": "/usr/bin:/bin", "ALLOCSEARCH_CACHE": str(tmp_path / "cache")}
    folder = tmp_path / "tour"
    folder.mkdir()
    (row,) = tour.run_tour(["allocsearch --version"], folder, env, tmp_path / "log")
    assert row["returncode"] == 0 and row["wrote"] == []  # the log lies outside the folder


def test_the_readme_line_names_each_step_and_its_time(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tour, "RESULTS", tmp_path)
    assert tour.render_readme().startswith("Not yet timed")
    rows = [{"command": "allocsearch allocate --model m --out a.json", "seconds": 12.4},
            {"command": "allocsearch study curves studies/x.yaml --out c.json", "seconds": 1500.0},
            {"command": "allocsearch plan show a.json", "seconds": 3.0}]
    manifest = {"command": "python benchmarks/tour.py", "commit": "0123456789abcdef", "date": "d"}
    (tmp_path / "tour_cpu.json").write_text(json.dumps({"rows": rows, "cores": 1, "manifest": manifest}))
    assert tour.render_readme().startswith(
        "Every command below, run as written in a new folder with an empty cache "
        "(`python benchmarks/tour.py`, commit 0123456789, d, 1 CPU core): `allocate` 12 s; "
        "`study curves` 25.0 min; `plan show` 3 s; 25.3 min in all.")
