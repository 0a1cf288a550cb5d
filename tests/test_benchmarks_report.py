"""BENCHMARKS.md is what benchmarks/report.py writes from the results' JSON; every current
result carries a manifest naming its commit and command, and the archived ones are never
headlined."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import ARCHIVE, RESULTS, manifest  # noqa: E402
from report import headline, is_result, manifest_line  # noqa: E402


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
    assert len((ROOT / "BENCHMARKS.md").read_text().splitlines()) <= 400
