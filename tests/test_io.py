"""Crash-safe writes: whole files or none, directories swapped whole, torn logs and torn cache
entries survived; and no module writes a file any other way."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import pytest
import torch

from allocsearch.data import DataConfig
from allocsearch.io import (
    append_text,
    atomic_directory,
    atomic_write_figure,
    atomic_write_json,
    read_jsonl,
)
from allocsearch.profile import build_profile
from tests.helpers import tiny_loaded

ROOT = Path(__file__).resolve().parents[1]


def test_atomic_json_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_atomic_figure_writes_a_png(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = atomic_write_figure(tmp_path / "f.png", fig)
    plt.close(fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_atomic_directory_swaps_whole_or_leaves_the_old_one(tmp_path: Path) -> None:
    out = tmp_path / "model"
    with atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("first")  # atomic-exempt: inside the temporary directory
    assert (out / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError), atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("second")
        raise RuntimeError("interrupted")
    assert (out / "a.txt").read_text() == "first"  # the old directory, untouched
    with atomic_directory(out) as tmp:
        (tmp / "b.txt").write_text("third")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no leftovers


def test_read_jsonl_skips_only_a_torn_last_line(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    append_text(log, '{"a": 1}\n{"a": 2}\n')
    with open(log, "a") as fh:  # atomic-exempt: simulating a crash mid-append
        fh.write('{"a": 3, "b"')
    assert read_jsonl(log) == [{"a": 1}, {"a": 2}]
    log.write_text('{"a": 1}\n{"a"\n{"a": 2}\n')  # atomic-exempt: damage in the middle
    with pytest.raises(json.JSONDecodeError):
        read_jsonl(log)


def test_a_torn_profile_cache_entry_is_recomputed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    loaded = tiny_loaded()
    loaded.tokenizer = _ByteTokenizer()
    data = DataConfig("embedded", 2, 32, 0)
    first = build_profile(loaded, data, cache_dir=tmp_path, progress=False)
    (entry,) = (tmp_path / "profiles").iterdir()
    norms = entry / "norms.safetensors"
    norms.write_bytes(norms.read_bytes()[:100])  # atomic-exempt: a torn entry
    with caplog.at_level(logging.WARNING):
        again = build_profile(loaded, data, cache_dir=tmp_path, progress=False)
    assert "unreadable" in caplog.text and not again.from_cache
    assert all(torch.equal(first.sq_norm[k], again.sq_norm[k]) for k in first.sq_norm)
    third = build_profile(loaded, data, cache_dir=tmp_path, progress=False)
    assert third.from_cache  # the rewritten entry is whole


class _ByteTokenizer:
    def __call__(self, text: str, return_tensors: str = "pt", **_: object) -> object:
        class Out:
            input_ids = torch.tensor([[b % 128 for b in text.encode()]])

        return Out()


# Calls that write a file in place; io.py is the one module allowed to make them.
_WRITERS = {"write_text", "write_bytes", "savefig", "dump", "to_csv", "save_file"}


def _in_place_writes(path: Path) -> list[str]:
    """Calls in ``path`` that write a file other than through allocsearch.io."""
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        mode = next((a.value for a in node.args[1:2] if isinstance(a, ast.Constant)), None)
        mode = next((k.value.value for k in node.keywords if k.arg == "mode"
                     and isinstance(k.value, ast.Constant)), mode)
        writes = name in _WRITERS or (name == "open" and isinstance(mode, str) and set(mode) & set("wax"))
        if name == "savefig" and node.args and isinstance(node.args[0], ast.Name) \
                and node.args[0].id == "buf":
            writes = False  # rendered into memory
        if writes and "atomic-exempt" not in lines[node.lineno - 1]:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


def test_every_file_is_written_through_allocsearch_io() -> None:
    files = [p for d in ("allocsearch", "benchmarks") for p in (ROOT / d).rglob("*.py")
             if p != ROOT / "allocsearch" / "io.py"]
    offenders = [w for p in files for w in _in_place_writes(p)]
    assert offenders == []
