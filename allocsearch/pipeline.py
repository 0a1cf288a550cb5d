"""The library calls behind ``allocsearch prune`` and ``allocsearch eval``, shared by the
CLI, the benchmarks and the notebooks (one obvious way to do each thing)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from allocsearch.apply import plan_targets, prune_to_targets, prune_with_plan
from allocsearch.data.windows import DataConfig
from allocsearch.engine import PruneReport, check_inputs, measure_sparsity, uniform_targets
from allocsearch.evaluate.perplexity import evaluate_perplexity
from allocsearch.io import atomic_write_json
from allocsearch.models.loading import LoadedModel
from allocsearch.plan import Plan
from allocsearch.pruners import get_pruner
from allocsearch.pruners.pattern import UNSTRUCTURED, Pattern

#: Re-exported: the calls the CLI, notebooks and benchmarks reach through this module.
__all__ = ["PruneConfig", "allocate_plan", "evaluate_perplexity", "overall_sparsity",
           "plan_targets", "prune_uniform", "prune_with_plan", "write_prune_record"]

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
    return prune_to_targets(loaded, get_pruner(config.method), targets, config.calibration,
                            config.batch_size, progress, config.inputs)


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


def overall_sparsity(loaded: LoadedModel) -> float:
    """Parameter-weighted fraction of zeros over the prunable layers."""
    per = measure_sparsity(loaded.adapter)
    layers = loaded.adapter.prunable_layers()
    sizes = {n: loaded.adapter.get_weight(m).numel() for n, m in layers.items()}
    return sum(per[n] * sizes[n] for n in per) / sum(sizes.values())


def write_prune_record(out_dir: Path, loaded: LoadedModel, config: PruneConfig,
                       report: PruneReport, plan: Path | None = None) -> Path:
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
    } | ({"plan": str(plan)} if plan is not None else {})
    return atomic_write_json(out_dir / "allocsearch_prune.json", record)
