"""The library calls behind ``allocsearch prune`` and ``allocsearch eval``, shared by the
CLI, the benchmarks and the notebooks (one obvious way to do each thing)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from allocsearch.budget import identity_from_adapter
from allocsearch.data.windows import DataConfig, calibration_windows, evaluation_windows
from allocsearch.engine import (
    LayerTarget,
    PruneReport,
    check_inputs,
    measure_sparsity,
    prune_sequential,
    uniform_targets,
)
from allocsearch.evaluate.perplexity import PerplexityResult, perplexity
from allocsearch.models.loading import LoadedModel
from allocsearch.plan import Plan
from allocsearch.profile import Profile, build_profile
from allocsearch.pruners import Pruner, get_pruner
from allocsearch.pruners.pattern import UNSTRUCTURED, Pattern
from allocsearch.structure import BlockSelection, StructureMasks, remove_structure, select_structure

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PruneConfig:
    """A uniform prune: one method, one sparsity (or N:M pattern) for every prunable layer."""

    method: str = "wanda"
    sparsity: float | None = 0.5
    pattern: Pattern = UNSTRUCTURED
    calibration: DataConfig = field(default_factory=DataConfig)
    batch_size: int = 1
    inputs: str = "pruned"  # sequential; "dense" calibrates every block on the dense model

    def __post_init__(self) -> None:
        get_pruner(self.method)  # fails early on an unknown name
        check_inputs(self.inputs)
        object.__setattr__(self, "sparsity", self.pattern.resolve_sparsity(self.sparsity))
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pattern"] = str(self.pattern)
        return d


def prune_uniform(loaded: LoadedModel, config: PruneConfig, *, progress: bool = True) -> PruneReport:
    """Prune ``loaded`` in place at one ratio with the configured pruner."""
    targets = uniform_targets(loaded.adapter, config.sparsity, config.pattern)
    return _prune_to_targets(loaded, get_pruner(config.method), targets, config.calibration,
                             config.batch_size, progress, config.inputs)


def _prune_to_targets(
    loaded: LoadedModel,
    pruner: Pruner,
    targets: Mapping[str, LayerTarget],
    calibration: DataConfig,
    batch_size: int,
    progress: bool,
    inputs: str = "pruned",
) -> PruneReport:
    """Draw calibration windows when the pruner needs data, then walk the blocks."""
    windows = None
    if pruner.needs_data:
        cal = calibration
        windows = calibration_windows(loaded.tokenizer, cal.source, cal.nsamples, cal.seqlen, cal.seed)
    return prune_sequential(
        loaded.model, loaded.adapter, pruner, targets, windows,
        batch_size=batch_size, progress=progress, inputs=inputs,
    )


def allocate_plan(
    loaded: LoadedModel,
    method: str,
    target: float,
    data: DataConfig | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> Plan:
    """Profile the dense model (cached) and run one registered allocator."""
    from allocsearch.allocation import get_allocator
    from allocsearch.profile import build_profile

    allocator = get_allocator(method, **dict(params or {}))  # fails before any work
    profile = build_profile(loaded, data or DataConfig(), cache_dir=cache_dir, progress=progress)
    plan = allocator.allocate(profile, target)
    plan.provenance["profile_from_cache"] = profile.from_cache
    return plan


def prune_with_plan(
    loaded: LoadedModel,
    plan: Plan,
    method: str = "wanda",
    calibration: DataConfig | None = None,
    *,
    batch_size: int = 1,
    progress: bool = True,
    inputs: str = "pruned",
    profile: Profile | None = None,
    cache_dir: Path | None = None,
    **pruner_params: Any,
) -> PruneReport:
    """Prune ``loaded`` in place at each module's planned sparsity and pattern; ``inputs``
    as in :func:`allocsearch.engine.prune_sequential` (sequential by default).

    A plan with structured actions first selects the heads/channels to remove from the dense
    ``profile`` (built on ``calibration`` when not given), prunes the unstructured modules with
    the structure masked in (so calibration sees the structurally pruned model), then removes
    the structure physically: ``loaded`` comes back smaller, its adapter refreshed."""
    plan.validate()
    plan.check_model(identity_from_adapter(loaded.adapter, loaded.name))
    pruner = get_pruner(method, **pruner_params)
    calibration = calibration or DataConfig()
    selection: dict[int, BlockSelection] = {}
    if plan.structured():
        profile = profile or build_profile(loaded, calibration, cache_dir=cache_dir, progress=progress)
        selection = select_structure(plan, profile, loaded.adapter)
    # Dense modules need no pruner pass (a plan of structure alone prunes nothing here).
    free = plan.unstructured_modules()
    targets = {n: t for n, t in plan_targets(plan).items() if n in free and t.sparsity > 0}
    with StructureMasks(loaded.adapter, selection):
        report = _prune_to_targets(loaded, pruner, targets, calibration, batch_size, progress, inputs)
    implied = plan.model.implied(plan.blocks)
    for name in plan.modules:  # structured shares, and the dense modules no pass touched
        if name not in report.sparsity:
            report.sparsity[name] = implied.get(name, 0.0)
            report.numel[name] = plan.model.numel(name)
    if selection:
        remove_structure(loaded, selection)
    return report


def plan_targets(plan: Plan) -> dict[str, LayerTarget]:
    """What each layer of a (validated) plan should become; the modules of structured
    sub-blocks stay dense here (their structure is applied by :mod:`allocsearch.structure`)."""
    free = plan.unstructured_modules()
    return {n: LayerTarget(c.sparsity, c.pattern) if n in free else LayerTarget(0.0)
            for n, c in plan.modules.items()}


def evaluate_perplexity(
    loaded: LoadedModel,
    source: str = "embedded",
    *,
    part: str = "evaluation",
    seqlen: int = 512,
    nsamples: int | None = None,
    batch_size: int = 1,
    progress: bool = True,
) -> PerplexityResult:
    """Perplexity on non-overlapping windows of one part of a source (all of it by default)."""
    windows = evaluation_windows(loaded.tokenizer, source, part, seqlen, nsamples)
    return perplexity(loaded.model, windows, batch_size=batch_size, progress=progress)


def overall_sparsity(loaded: LoadedModel) -> float:
    """Parameter-weighted fraction of zeros over the prunable layers."""
    per = measure_sparsity(loaded.adapter)
    layers = loaded.adapter.prunable_layers()
    sizes = {n: loaded.adapter.get_weight(m).numel() for n, m in layers.items()}
    return sum(per[n] * sizes[n] for n in per) / sum(sizes.values())


def write_prune_record(out_dir: Path, loaded: LoadedModel, config: PruneConfig,
                       report: PruneReport) -> Path:
    """``allocsearch_prune.json`` beside a saved model: how it was made and what it achieved."""
    record = {
        "schema_version": SCHEMA_VERSION,
        "source_model": loaded.name,
        "architecture": loaded.adapter.model_type,
        "config": config.to_dict(),
        "achieved_sparsity": report.overall,
        "calibration_tokens": report.calibration_tokens,
        "seconds": report.seconds,
        "layers": report.sparsity,
    }
    path = out_dir / "allocsearch_prune.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
