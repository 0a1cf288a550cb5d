"""benchmarks/correlation.py: the reference databases' geometric mean, and the sentence on the
plans added at 70%."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _sparsegpt_render
import correlation


def test_geometric_mean_of_the_reference_fitnesses() -> None:
    rows: list[dict[str, Any]] = [{"u": 4.0, "r": 9.0}, {"u": 2.0, "r": 8.0}]
    key = correlation.geomean_key(rows, ["u", "r"], 8192)
    assert key == "refs_geomean@8192"
    assert [r[key] for r in rows] == pytest.approx([6.0, 4.0])
    assert math.isclose(rows[0][key], 6.0, rel_tol=1e-12)


def test_the_added_plans_are_fourteen_at_seventy_percent_with_distinct_labels() -> None:
    labels = [x[0] for x in [*correlation.MORE_PRIORS, *correlation.MORE_TYPES, *correlation.MORE_RANDOM]]
    assert len(labels) == len(set(labels)) == 14
    assert correlation.MORE_TARGET == 0.7
    assert correlation.more_labels() == {f"0.70 {label}" for label in labels}


def test_added_sentence_names_each_database_and_their_mean_at_each_fidelity() -> None:
    group = {"group": "0.70 added", "plans": 14, "ref_ppl@8192": 0.81, "ref_ramp_ppl@8192": 0.92,
             "refs_geomean@8192": 0.95, "ref_ppl@16384": 0.5, "ref_ramp_ppl@16384": 0.25,
             "refs_geomean@16384": 0.125, "draw 0 vs mean": 0.9}
    result = {"args": {"fidelities": [2048, 8192, 16384]}, "spearman": [group]}
    text = _sparsegpt_render._added_sentence(result, ["ramp"])
    assert "The 14 plans added at 70% alone" in text
    assert ("on 8192 tokens uniform 0.810, ramp 0.920, geometric mean 0.950; on 16384 tokens uniform "
            "0.500, ramp 0.250, geometric mean 0.125; draw 0 against the mean 0.900.") in text
    assert _sparsegpt_render._added_sentence({"args": result["args"], "spearman": []}, ["ramp"]) == ""
    first = group | {"group": "0.70 first", "plans": 10}
    text = _sparsegpt_render._added_sentence(result | {"spearman": [group, first]}, ["ramp"])
    assert text.endswith(" The first 10 alone: on 8192 tokens uniform 0.810, ramp 0.920, geometric mean "
                         "0.950; on 16384 tokens uniform 0.500, ramp 0.250, geometric mean 0.125.")
