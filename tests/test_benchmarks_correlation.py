"""benchmarks/correlation.py: shards' partial files merged, the reference databases' geometric
mean, and the sentence on the plans added at 70%."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _shards
import _sparsegpt_render
import correlation


def test_shard_is_parsed_and_checked() -> None:
    assert _shards.shard_of("1/2") == (1, 2)
    with pytest.raises(argparse.ArgumentTypeError, match="0 <= I < N"):
        _shards.shard_of("2/2")


def test_shards_rows_are_merged_over_the_partial(tmp_path: Path) -> None:
    partial = tmp_path / "correlation_x.partial.json"
    partial.write_text(json.dumps({"a": {"exact_ppl": 1.0}, "b": {"exact_ppl": 2.0}}))
    (tmp_path / "correlation_x.partial.json.s0of2").write_text(json.dumps({"b": {"exact_ppl": 3.0}}))
    (tmp_path / "correlation_x.partial.json.s1of2").write_text(json.dumps({"c": {"exact_ppl": 4.0}}))
    (tmp_path / "correlation_y.partial.json.s0of2").write_text(json.dumps({"d": {}}))  # another tag
    done = _shards.load_done(partial)
    assert done == {"a": {"exact_ppl": 1.0}, "b": {"exact_ppl": 3.0}, "c": {"exact_ppl": 4.0}}
    # A run over every plan extends a row (a draw added) and folds the shards into the partial.
    done["b"]["exact_ppl"] = 5.0
    _shards.save_partial(partial, done)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["correlation_x.partial.json",
                                                          "correlation_y.partial.json.s0of2"]
    assert _shards.load_done(partial)["b"] == {"exact_ppl": 5.0}


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
