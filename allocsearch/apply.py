"""Applying a plan to a loaded model: the sequential prune at its ratios and patterns, and its
structured actions (physical removal). Shared by ``allocsearch prune`` (through
:mod:`allocsearch.pipeline`) and by the Evaluator's exact verification, which sits above this
module: nothing here imports ``evaluate/``, ``search/`` or the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from allocsearch.budget import identity_from_adapter
from allocsearch.data.windows import DataConfig, calibration_windows
from allocsearch.engine import LayerTarget, PruneReport, prune_sequential
from allocsearch.models.loading import LoadedModel
from allocsearch.plan import Plan
from allocsearch.profile import Profile, build_profile
from allocsearch.pruners import Pruner, get_pruner
from allocsearch.structure import BlockSelection, StructureMasks, remove_structure, select_structure


def prune_to_targets(
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
        selection = select_structure(plan.structured(), profile, loaded.adapter)
    # Dense modules need no pruner pass (a plan of structure alone prunes nothing here).
    free = plan.unstructured_modules()
    targets = {n: t for n, t in plan_targets(plan).items() if n in free and t.sparsity > 0}
    with StructureMasks(loaded.adapter, selection):
        report = prune_to_targets(loaded, pruner, targets, calibration, batch_size, progress, inputs)
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
