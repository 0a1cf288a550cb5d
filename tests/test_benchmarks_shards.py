"""benchmarks/_shards.py: ``--shard I/N`` parsed, shards' partial files merged over the partial
file and folded back into it; _common.reference_fidelities."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _shards
from _common import reference_fidelities


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


def test_a_shard_keeps_its_rows_beside_the_partial(tmp_path: Path) -> None:
    partial = tmp_path / "x.partial.json"
    assert _shards.shard_path(partial, (1, 2)) == tmp_path / "x.partial.json.s1of2"


def test_a_shard_saves_only_its_own_rows_and_a_whole_run_folds_them_in(tmp_path: Path) -> None:
    partial = tmp_path / "x.partial.json"
    done = {"a": {"v": 1}, "b": {"v": 2}, "c": {"v": 3}}
    _shards.save_rows(partial, done, (0, 2), ["a", "c", "missing"])
    assert json.loads((tmp_path / "x.partial.json.s0of2").read_text()) == {"a": {"v": 1}, "c": {"v": 3}}
    assert not partial.exists()
    _shards.save_rows(partial, done, None, ["a"])
    assert json.loads(partial.read_text()) == done
    assert [p.name for p in tmp_path.iterdir()] == ["x.partial.json"]  # the shard's file folded in


def test_reference_fidelities_are_all_but_the_screening_one() -> None:
    assert reference_fidelities([2048, 8192, 16384]) == [8192, 16384]
    assert reference_fidelities([8192]) == [8192]
