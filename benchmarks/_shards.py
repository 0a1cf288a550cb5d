"""Split a resumable benchmark's measurements between processes (one core each).

A run with ``--shard I/N`` measures every N-th item from the I-th and keeps its rows in its
own file beside the partial file (``<partial>.s<I>of<N>``), so that side-by-side processes
never write the same file. A last run without ``--shard`` reads the partial file with its
shards' files over it, measures what is still missing, and folds everything back into the
partial file (:func:`save_partial`) before it writes the result.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from allocsearch.io import atomic_write_text


def shard_of(text: str) -> tuple[int, int]:
    """``I/N`` -> (I, N) with 0 <= I < N."""
    i, n = (int(v) for v in text.split("/"))
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text}: want I/N with 0 <= I < N")
    return i, n


def shard_path(partial_path: Path, shard: tuple[int, int]) -> Path:
    """The file shard ``(I, N)`` keeps its rows in."""
    return partial_path.with_name(f"{partial_path.name}.s{shard[0]}of{shard[1]}")


def load_done(partial_path: Path) -> dict[str, Any]:
    """Finished rows: the partial file's, with its shards' files' over them."""
    done: dict[str, Any] = {}
    for path in [partial_path, *sorted(partial_path.parent.glob(partial_path.name + ".s*of*"))]:
        if path.exists():
            done |= json.loads(path.read_text())
    return done


def save_rows(partial_path: Path, done: dict[str, Any], shard: tuple[int, int] | None,
              own: Iterable[str]) -> None:
    """After each measurement: without a shard, every row into the partial file
    (:func:`save_partial`); a shard writes only its own rows (keys ``own``) into its file, so
    that merging never goes back over a row another process extended."""
    if shard is None:
        save_partial(partial_path, done)
    else:
        atomic_write_text(shard_path(partial_path, shard),
                          json.dumps({k: done[k] for k in own if k in done}, indent=1))


def save_partial(partial_path: Path, done: dict[str, Any]) -> None:
    """Every row into the partial file, and its shards' files removed: their rows are in it now,
    and an older shard row must not go back over a row this run extended."""
    atomic_write_text(partial_path, json.dumps(done, indent=1))
    for path in partial_path.parent.glob(partial_path.name + ".s*of*"):
        path.unlink()
