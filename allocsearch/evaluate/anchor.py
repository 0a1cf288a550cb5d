"""Sequential-aware scores: the input norms a sequential prune sees under an anchor plan.

The mask cache ranks every layer by Wanda scores |W| * ||X||, with ||X|| taken from the
*dense* model (one-shot masks). A sequential prune (``Evaluator.verify``, llm-compressor)
takes the norms of layer l from the model already pruned up to l. The two give nearly the
same perplexity for a smooth plan (a depth ramp), but a plan searched against one-shot masks
fits those masks and keeps less of its gain under the sequential prune (BENCHMARKS.md
compares them: "Under one-shot pruning" against "Anchored rounds"). Scoring with the norms seen while
pruning sequentially at an anchor plan makes the fitness of the anchor itself exact (same
calibration windows, same masks) and that of plans near it close; a search then moves the
anchor round by round (:func:`allocsearch.search.anchored.run_anchored`).
"""

from __future__ import annotations

import torch

from allocsearch.data.windows import DataConfig, calibration_windows
from allocsearch.engine import LayerTarget, prune_sequential
from allocsearch.models.loading import LoadedModel
from allocsearch.pruners import get_pruner
from allocsearch.pruners.stats import LayerStats


def anchored_norms(
    loaded: LoadedModel,
    targets: dict[str, LayerTarget],
    calibration: DataConfig,
    *,
    batch_size: int = 1,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Prune ``loaded`` sequentially with Wanda at ``targets`` on the ``calibration`` windows
    and return each layer's squared input norms, name -> (in,) float32 on the CPU, as the
    pruner saw them. The model is left pruned: the caller restores its dense weights."""
    windows = calibration_windows(loaded.tokenizer, calibration.source, calibration.nsamples,
                                  calibration.seqlen, calibration.seed)
    norms: dict[str, torch.Tensor] = {}

    def record(name: str, stats: LayerStats) -> None:
        norms[name] = stats.require_sq_norm("anchored scores").float().cpu()

    prune_sequential(loaded.model, loaded.adapter, get_pruner("wanda"), targets, windows,
                     batch_size=batch_size, progress=progress, on_stats=record)
    return norms
