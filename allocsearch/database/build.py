"""Building a level database: every module pruned at every level of the grid, in one walk.

Block by block, each module's calibration statistics are collected once (for SparseGPT one
Hessian, whose inverse factor serves every level) and the pruner runs at every level
(:meth:`allocsearch.pruners.Pruner.prune_levels`). Inputs are the dense model's activations
(one-shot), or, with an anchor plan, those of the model pruned sequentially at that plan, as
the sequential verification sees them near it. Modules whose entries are already valid are
skipped, so an interrupted build resumes and a torn entry is rebuilt alone.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from allocsearch.budget import identity_from_adapter
from allocsearch.data.windows import calibration_windows
from allocsearch.database.store import (
    DatabaseError,
    DatabaseSpec,
    LevelDatabase,
    anchor_digest,
    levels_root,
)
from allocsearch.engine import LayerTarget, prune_sequential
from allocsearch.models.loading import LoadedModel, default_cache_dir
from allocsearch.profile import weights_digest
from allocsearch.pruners import Pruner, get_pruner
from allocsearch.pruners.stats import LayerStats, relative_error

log = logging.getLogger(__name__)
#: Disk kept free beyond the estimate (headers, the index, other files).
DISK_MARGIN = 64 * 2**20


@dataclass
class BuildReport:
    """What a build did: the database, the entries it wrote and how long it took."""

    database: LevelDatabase
    built: list[str] = field(default_factory=list)
    reused: int = 0
    bytes_written: int = 0
    estimate: int = 0
    seconds: float = 0.0


def estimate_bytes(shapes: Mapping[str, tuple[int, int]], levels: int, element_size: int) -> int:
    """Bytes of the entries of ``shapes`` at ``levels`` pruned levels (tensor data only)."""
    return sum(a * b for a, b in shapes.values()) * levels * element_size


def _dtype_name(loaded: LoadedModel) -> str:
    return str(loaded.dtype).removeprefix("torch.")


def open_database(
    loaded: LoadedModel, spec: DatabaseSpec, cache_dir: Path | None = None
) -> LevelDatabase:
    """The database of ``spec`` for this model (created empty when new)."""
    identity = identity_from_adapter(loaded.adapter, loaded.name)
    dtype = _dtype_name(loaded)
    digest = weights_digest(loaded)
    root = levels_root(cache_dir or default_cache_dir())
    return LevelDatabase.create(root, spec.key(identity, digest, dtype), spec, identity, digest, dtype)


def check_disk(folder: Path, need: int) -> None:
    """Refuse a build the disk cannot hold (DatabaseError naming both sizes)."""
    free = shutil.disk_usage(folder).free
    if need + DISK_MARGIN > free:
        raise DatabaseError(
            f"the level database needs {need / 2**30:.2f} GiB at {folder}, but only "
            f"{free / 2**30:.2f} GiB are free; free some space, point $ALLOCSEARCH_CACHE at "
            f"a larger disk, or use fewer levels")


def build_database(
    loaded: LoadedModel,
    spec: DatabaseSpec,
    *,
    anchor: Mapping[str, LayerTarget] | None = None,
    cache_dir: Path | None = None,
    batch_size: int = 1,
    progress: bool = True,
) -> BuildReport:
    """Build (or complete) the database of ``spec`` for ``loaded`` and return it.

    ``anchor`` (the targets of the anchor plan, whose digest ``spec.anchor`` must be) makes
    each block's statistics those of a sequential prune at the anchor. The model's weights
    are the same before and after."""
    start = time.perf_counter()
    if (anchor is None) != (spec.anchor is None) or (
            anchor is not None and anchor_digest({n: t.sparsity for n, t in anchor.items()}) != spec.anchor):
        raise ValueError("spec.anchor must be the digest of the anchor targets given")
    db = open_database(loaded, spec, cache_dir)
    problems = db.problems()
    report = BuildReport(db, reused=len(db.shapes) - len(problems))
    if not problems:
        report.seconds = time.perf_counter() - start
        return report
    element = torch.empty((), dtype=loaded.dtype).element_size()
    report.estimate = estimate_bytes({n: db.shapes[n] for n in problems}, len(db.grid.pruned), element)
    message = (f"level database {db.key}: {len(problems)} of {len(db.shapes)} modules x "
               f"{len(db.grid.pruned)} levels ({db.grid.describe()}), {spec.pruner} on "
               f"{spec.inputs} inputs, {report.estimate / 2**30:.2f} GiB at {db.folder}")
    log.info(message)
    if progress:
        tqdm.write(message)
    check_disk(db.folder, report.estimate)
    pruner = get_pruner(spec.pruner, **dict(spec.pruner_params))
    todo = set(problems)
    layers = loaded.adapter.prunable_layers()

    def store(name: str, stats: LayerStats | None) -> None:
        if name not in todo:
            return
        weight = loaded.adapter.get_weight(layers[name])  # (out, in), not yet pruned here
        results = pruner.prune_levels(weight, stats, db.grid.pruned)
        errors = [relative_error(weight, r.weight, stats) for r in results]
        report.bytes_written += db.write_entry(name, [r.weight for r in results], errors)
        report.built.append(name)

    if not pruner.needs_data:
        for name in tqdm(sorted(todo), desc=f"levels ({spec.pruner})", disable=not progress):
            store(name, None)
    else:
        _walk(loaded, pruner, spec, anchor, todo, store, batch_size, progress)
    report.seconds = time.perf_counter() - start
    return report


def _walk(
    loaded: LoadedModel, pruner: Pruner, spec: DatabaseSpec,
    anchor: Mapping[str, LayerTarget] | None, todo: set[str],
    store: Callable[[str, LayerStats], None], batch_size: int, progress: bool,
) -> None:
    """One block walk with ``store(name, stats)`` called on each module's statistics: on the
    dense model (targets at 0.0: nothing changes), or pruned at the anchor (restored after)."""
    adapter = loaded.adapter
    layers = adapter.prunable_layers()
    d = spec.data
    windows = calibration_windows(loaded.tokenizer, d.source, d.nsamples, d.seqlen, d.seed)
    if anchor is None:
        targets = {n: LayerTarget(0.0) for n in todo}
        prune_sequential(loaded.model, adapter, pruner, targets, windows, batch_size=batch_size,
                         progress=progress, on_stats=store, inputs="dense")
        return
    dense = {n: adapter.get_weight(m).detach().clone() for n, m in layers.items()}
    try:
        prune_sequential(loaded.model, adapter, pruner, dict(anchor), windows,
                         batch_size=batch_size, progress=progress, on_stats=store, inputs="pruned")
    finally:
        for n, m in layers.items():
            adapter.get_weight(m).copy_(dense[n])
