"""The level database on disk: one safetensors file per module, holding its pruned weights at
every level of the grid, found by a key over everything that decides them.

    <cache>/levels/<key>/index.json           what the database is (spec, model, grid, dtype)
    <cache>/levels/<key>/<module>.safetensors  tensors level_0.300000 ... (out, in), model dtype;
                                               header: key, module, grid, shape, the
                                               reconstruction error per level, a data digest

Each entry is written atomically and describes itself, so an entry is valid exactly when its
file parses (safetensors rejects a file its header does not cover: a torn write) and its
header names this key, module, grid, shape and dtype; anything else is rebuilt. Two processes
building the same entry write the same bytes, and the last rename wins. Entries are read on
demand through safetensors' memory map: the database never has to fit in memory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from allocsearch.data.windows import DataConfig
from allocsearch.database.grid import LevelGrid
from allocsearch.io import atomic_write_bytes, atomic_write_text
from allocsearch.plan import ModelIdentity

DATABASE_VERSION = 1
#: What each block is calibrated on: the dense model (one-shot), or the model pruned
#: sequentially at an anchor plan (as a sequential prune at that plan sees it).
DATABASE_INPUTS = ("dense", "anchor")
INDEX = "index.json"


class DatabaseError(ValueError):
    """A database that cannot be built or used, with the reason."""


@dataclass(frozen=True)
class DatabaseSpec:
    """Everything besides the model that decides a database's contents."""

    pruner: str = "sparsegpt"
    grid: LevelGrid = field(default_factory=LevelGrid)
    data: DataConfig = field(default_factory=DataConfig)
    #: digest of the anchor plan's sparsities when ``inputs == "anchor"``
    anchor: str | None = None
    pruner_params: tuple[tuple[str, Any], ...] = ()

    @property
    def inputs(self) -> str:
        return "dense" if self.anchor is None else "anchor"

    def to_dict(self) -> dict[str, Any]:
        return {"version": DATABASE_VERSION, "pruner": self.pruner,
                "pruner_params": dict(self.pruner_params), "levels": list(self.grid.levels),
                "data": vars(self.data), "inputs": self.inputs, "anchor": self.anchor}

    def key(self, identity: ModelIdentity, digest: str, dtype: str) -> str:
        raw = json.dumps([self.to_dict(), identity.fingerprint, digest, dtype], sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:20]


def anchor_digest(sparsities: Mapping[str, float]) -> str:
    """A digest of an anchor plan's per-module sparsities (rounded to 1e-7)."""
    raw = json.dumps({n: round(float(s), 7) for n, s in sorted(sparsities.items())})
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def levels_root(cache_dir: Path) -> Path:
    return cache_dir / "levels"


def _data_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class LevelDatabase:
    """One database folder: its spec, and its module entries (see the module docstring)."""

    def __init__(self, folder: Path, index: dict[str, Any]) -> None:
        self.folder = folder
        self.index = index
        self.key: str = index["key"]
        self.grid = LevelGrid(tuple(index["levels"]))
        self.shapes: dict[str, tuple[int, int]] = {n: (int(a), int(b))
                                                   for n, (a, b) in index["shapes"].items()}
        self.dtype: str = index["dtype"]
        self._handles: dict[str, Any] = {}
        self._errors: dict[str, list[float]] = {}

    # ------------------------------------------------------------ create / open
    @classmethod
    def create(cls, root: Path, key: str, spec: DatabaseSpec, identity: ModelIdentity,
               digest: str, dtype: str) -> LevelDatabase:
        """Open the database of ``key`` under ``root``, writing its index if it is new."""
        folder = root / key
        path = folder / INDEX
        if path.is_file():
            db = cls.open(folder)
            if db.shapes != dict(identity.shapes) or db.dtype != dtype:
                raise DatabaseError(f"{path}: another model's database under this key")
            return db
        folder.mkdir(parents=True, exist_ok=True)
        index = {"key": key, "spec": spec.to_dict(), "levels": list(spec.grid.levels),
                 "model": identity.name, "fingerprint": identity.fingerprint, "digest": digest,
                 "dtype": dtype, "shapes": {n: list(s) for n, s in identity.shapes.items()}}
        atomic_write_text(path, json.dumps(index, indent=1))
        return cls(folder, index)

    @classmethod
    def open(cls, folder: Path) -> LevelDatabase:
        path = folder / INDEX
        try:
            index = json.loads(path.read_text())
            return cls(folder, index)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DatabaseError(f"{path}: not a level database index ({exc})") from exc

    # ----------------------------------------------------------------- entries
    def entry_path(self, name: str) -> Path:
        return self.folder / f"{name}.safetensors"

    def _expected(self, name: str) -> dict[str, str]:
        return {"key": self.key, "module": name, "levels": json.dumps(list(self.grid.levels)),
                "shape": json.dumps(list(self.shapes[name])), "dtype": self.dtype}

    def entry_problem(self, name: str) -> str | None:
        """None when the entry of ``name`` is present and whole, else what is wrong with it."""
        path = self.entry_path(name)
        if not path.is_file():
            return "missing"
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                names = set(fh.keys())
        except (SafetensorError, OSError) as exc:
            return f"unreadable ({exc})"
        for k, v in self._expected(name).items():
            if meta.get(k) != v:
                return f"mismatched {k} ({meta.get(k)!r}, expected {v!r})"
        wanted = {self.grid.tensor_name(lv) for lv in self.grid.pruned}
        if names != wanted:
            return "mismatched levels"
        return None

    def problems(self, names: list[str] | None = None) -> dict[str, str]:
        """Entry problems of ``names`` (all modules by default): name -> reason."""
        out = {}
        for n in names if names is not None else list(self.shapes):
            p = self.entry_problem(n)
            if p is not None:
                out[n] = p
        return out

    def verify_data(self, name: str) -> bool:
        """Re-read an entry and compare its data with the digest written beside it."""
        with safe_open(str(self.entry_path(name)), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open is no dict)
        return meta.get("sha256") == _data_digest(tensors)

    def write_entry(self, name: str, weights: list[torch.Tensor], errors: list[float]) -> int:
        """Store ``name``'s pruned weights, one (out, in) tensor per pruned level in grid
        order, with their reconstruction errors; returns the bytes written."""
        levels = self.grid.pruned
        if len(weights) != len(levels) or len(errors) != len(levels):
            raise ValueError(f"{name}: expected {len(levels)} levels, got {len(weights)}")
        tensors = {self.grid.tensor_name(lv): w.detach().to("cpu").contiguous()
                   for lv, w in zip(levels, weights, strict=True)}
        meta = self._expected(name) | {"errors": json.dumps([float(e) for e in errors]),
                                       "sha256": _data_digest(tensors)}
        data = save(tensors, metadata=meta)
        self._handles.pop(name, None)
        self._errors.pop(name, None)
        atomic_write_bytes(self.entry_path(name), data)
        return len(data)

    def _handle(self, name: str) -> Any:
        fh = self._handles.get(name)
        if fh is None:
            try:
                fh = safe_open(str(self.entry_path(name)), framework="pt")
            except (SafetensorError, OSError) as exc:
                raise DatabaseError(f"{self.entry_path(name)}: unreadable entry ({exc}); "
                                    f"rebuild with `allocsearch database build`") from exc
            self._handles[name] = fh
        return fh

    def load(self, name: str, level: float) -> torch.Tensor:
        """(out, in) weights of ``name`` pruned at ``level`` (a pruned level of the grid),
        read through the memory map, on the CPU in the stored dtype."""
        i = self.grid.index(level)
        if i == 0:
            raise ValueError("level 0.0 is the dense weight: the database does not store it")
        t: torch.Tensor = self._handle(name).get_tensor(self.grid.tensor_name(self.grid.levels[i]))
        return t

    def errors(self, name: str) -> list[float]:
        """Relative reconstruction error of ``name`` at every level (0.0 at dense)."""
        if name not in self._errors:
            meta = self._handle(name).metadata() or {}
            self._errors[name] = [0.0, *(float(e) for e in json.loads(meta["errors"]))]
        return self._errors[name]

    def error_table(self) -> dict[str, list[float]]:
        return {n: self.errors(n) for n in self.shapes}

    def close(self) -> None:
        self._handles.clear()

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("*.safetensors"))


def list_databases(root: Path) -> list[LevelDatabase]:
    """Every database folder under ``root`` with a readable index (newest first)."""
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if (folder / INDEX).is_file():
            try:
                out.append(LevelDatabase.open(folder))
            except DatabaseError:
                continue
    return out


def clear_databases(root: Path, key: str | None = None) -> list[Path]:
    """Delete every database under ``root`` (or the one whose key starts with ``key``);
    returns the folders removed."""
    if not root.is_dir():
        return []
    gone = []
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and (key is None or folder.name.startswith(key)):
            shutil.rmtree(folder)
            gone.append(folder)
    return gone
