"""BENCHMARKS.md is what benchmarks/report.py writes from the results' JSON; every result
carries a manifest (or says what it lacks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import PROTOCOL_KEYS, manifest  # noqa: E402
from report import manifest_rows  # noqa: E402


def test_benchmarks_md_is_up_to_date() -> None:
    done = subprocess.run([sys.executable, "benchmarks/report.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_manifest_names_the_code_and_the_protocol() -> None:
    m = manifest({"device": "cpu", "dtype": "float32", "seeds": [0, 1, 2]})
    assert len(m["commit"]) == 40 and isinstance(m["dirty"], bool)
    assert m["versions"]["torch"] and m["versions"]["allocsearch"]
    rows = dict(manifest_rows({"manifest": m}))
    assert rows["seeds"] == "0, 1, 2" and rows["model"] == "not recorded"
    assert set(PROTOCOL_KEYS) <= set(rows)
    with pytest.raises(ValueError, match="unknown manifest keys"):
        manifest({"gpu": "h200"})


def test_a_result_without_a_manifest_says_what_it_lacks() -> None:
    rows = dict(manifest_rows({"environment": {"date": "d", "torch": "2", "device": "cpu", "threads": 2},
                               "model": "m", "calibration": {"nsamples": 16}}))
    assert rows["commit"].startswith("not recorded") and rows["dtype"] == "not recorded"
    assert rows["model"] == "m" and rows["calibration"] == "nsamples 16" and rows["date"] == "d"
