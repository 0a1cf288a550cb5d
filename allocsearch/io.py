"""Crash-safe writes: every file allocsearch writes appears whole or not at all.

One helper per kind of output, all built on :func:`atomic_write_bytes` (a temporary file in
the same folder, flushed to disk, renamed over the target): text, JSON, figures, and whole
directories (a saved model). Append-only logs (``screening.jsonl``) are written one record
batch per ``write`` call; :func:`read_jsonl` skips a torn last line that a crash mid-append
could leave.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any, Protocol


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it
    over ``path``: a crash leaves the old file or the new one, never a torn one. Two writers
    of one path (processes or threads) each use their own temporary file; the last rename wins."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; outputs are ordinary files
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, payload: Any, indent: int | None = 2) -> Path:
    """``payload`` as JSON (with a final newline), atomically."""
    return atomic_write_text(path, json.dumps(payload, indent=indent) + "\n")


class _Figure(Protocol):
    def savefig(self, fname: Any, **kwargs: Any) -> Any: ...


def atomic_write_figure(path: Path, fig: _Figure, **kwargs: Any) -> Path:
    """A matplotlib figure, rendered in memory (format from the suffix), then written atomically."""
    path = Path(path)
    buf = BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", **kwargs)
    return atomic_write_bytes(path, buf.getvalue())


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Fill a temporary directory beside ``path``; when the block ends without an exception,
    it replaces ``path`` (an existing directory there is removed after the swap). An
    interrupted run leaves ``path`` as it was and no half-written directory under its name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        for f in tmp.rglob("*"):  # the files' bytes on disk before the rename publishes them
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.{os.getpid()}.old")
            path.rename(old)
        tmp.rename(path)
        if old is not None:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def append_text(path: Path, text: str) -> None:
    """Append ``text`` to a log in one ``write`` call and flush it to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[Any]:
    """The records of a JSON-lines log; a torn last line (a crash mid-append) is skipped."""
    lines = Path(path).read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i != len(lines) - 1:
                raise
    return out


def json_digest(data: Any, length: int = 16) -> str:
    """A short, stable digest of JSON-able data (keys sorted): the cache and settings keys."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:length]
