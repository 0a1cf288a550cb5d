"""Block-by-block calibration engine.

The inputs of the first decoder block are captured once; then each block in turn gets
statistics from hooks on its prunable layers, is pruned, and is run again (pruned) to
produce the next block's inputs. Peak memory is the model plus one set of block inputs,
(nsamples, seqlen, hidden) in the model dtype, plus one batch's activations inside a block.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from allocsearch.models.adapters import ModelAdapter
from allocsearch.pruners.base import Pruner
from allocsearch.pruners.pattern import UNSTRUCTURED, Pattern
from allocsearch.pruners.stats import LayerStats, StatsAccumulator

#: What a block is calibrated on: the already pruned model's outputs, or the dense model's.
CALIBRATION_INPUTS = ("pruned", "dense")


def check_inputs(inputs: str, what: str = "inputs") -> None:
    """Raise a ValueError naming ``what`` unless ``inputs`` is a known calibration input."""
    if inputs not in CALIBRATION_INPUTS:
        raise ValueError(f"{what} must be one of {CALIBRATION_INPUTS}, got {inputs!r}")


@dataclass(frozen=True)
class LayerTarget:
    """What one prunable layer should become."""

    sparsity: float
    pattern: Pattern = UNSTRUCTURED

    def __post_init__(self) -> None:
        # Normalises the pair: an N:M pattern fixes the sparsity; bounds are checked.
        object.__setattr__(self, "sparsity", self.pattern.resolve_sparsity(self.sparsity))


def uniform_targets(
    adapter: ModelAdapter, sparsity: float | None, pattern: Pattern = UNSTRUCTURED
) -> dict[str, LayerTarget]:
    """The same target for every prunable layer."""
    target = LayerTarget(pattern.resolve_sparsity(sparsity), pattern)
    return {name: target for name in adapter.prunable_layers()}


@dataclass
class PruneReport:
    """Achieved sparsity per layer (from the masks) and the layers' parameter counts."""

    pruner: str
    sparsity: dict[str, float] = field(default_factory=dict)
    numel: dict[str, int] = field(default_factory=dict)
    calibration_tokens: int = 0
    seconds: float = 0.0

    @property
    def overall(self) -> float:
        """Parameter-weighted sparsity over the prunable layers."""
        total = sum(self.numel.values())
        return sum(self.sparsity[n] * self.numel[n] for n in self.numel) / max(total, 1)


@dataclass
class _Batch:
    """One batch of block inputs: hidden states (B, T, H) and whatever else the model
    passes its blocks (position embeddings, masks); captured per batch so shapes match."""

    hidden: torch.Tensor
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class _Captured(Exception):
    """Stops the model's forward once the first block's inputs are seen."""


@torch.no_grad()
def capture_block_inputs(
    model: nn.Module, adapter: ModelAdapter, windows: torch.Tensor, batch_size: int
) -> list[_Batch]:
    """Run the embedding stage on (n, seqlen) windows and keep what block 0 receives."""
    batches: list[_Batch] = []
    device = adapter.input_device()

    def hook(_mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        batches.append(_Batch(args[0], tuple(args[1:]), dict(kwargs)))
        raise _Captured

    # prepend: runs before an offloading hook would move block 0 in for nothing
    handle = adapter.block(0).register_forward_pre_hook(hook, with_kwargs=True, prepend=True)
    try:
        for chunk in windows.split(batch_size):
            with contextlib.suppress(_Captured):
                model(input_ids=chunk.to(device), use_cache=False)
    finally:
        handle.remove()
    return batches


def _run_block(block: nn.Module, batches: list[_Batch], keep_outputs: bool) -> list[torch.Tensor]:
    """Run one block on every batch; keep_outputs writes the outputs over the inputs,
    otherwise they are returned (block outputs are (B, T, H))."""
    outs: list[torch.Tensor] = []
    for b in batches:
        out = block(b.hidden, *b.args, **b.kwargs)
        hidden = out[0] if isinstance(out, tuple) else out
        if keep_outputs:
            b.hidden = hidden
        else:
            outs.append(hidden)
    return outs


@torch.no_grad()
def block_stats(
    adapter: ModelAdapter,
    index: int,
    batches: list[_Batch],
    *,
    norms: bool,
    hessian: bool,
    names: set[str] | None = None,
    keep_outputs: bool = False,
) -> tuple[dict[str, LayerStats], list[torch.Tensor]]:
    """One forward of block ``index`` with hooks accumulating its layers' input statistics.

    Returns the statistics of each prunable layer (those in ``names`` when given) and the
    block outputs, unless ``keep_outputs`` wrote them over the inputs.
    """
    accs: dict[str, StatsAccumulator] = {}
    handles = []

    def make_hook(acc: StatsAccumulator) -> Callable[..., None]:
        def hook(_mod: nn.Module, inputs: tuple[torch.Tensor, ...], _out: Any) -> None:
            acc.add(inputs[0])

        return hook

    for name, layer in adapter.block_layers(index).items():
        if names is not None and name not in names:
            continue
        w = adapter.get_weight(layer)
        acc = StatsAccumulator(w.shape[1], norms=norms, hessian=hessian, device=w.device)
        accs[name] = acc
        handles.append(layer.register_forward_hook(make_hook(acc)))
    try:
        outs = _run_block(adapter.block(index), batches, keep_outputs=keep_outputs)
    finally:
        for h in handles:
            h.remove()
    return {name: acc.result() for name, acc in accs.items()}, outs


@torch.no_grad()
def prune_sequential(
    model: nn.Module,
    adapter: ModelAdapter,
    pruner: Pruner,
    targets: Mapping[str, LayerTarget],
    windows: torch.Tensor | None,
    *,
    batch_size: int = 1,
    progress: bool = True,
    on_stats: Callable[[str, LayerStats], None] | None = None,
    inputs: str = "pruned",
) -> PruneReport:
    """Prune every layer named in ``targets`` in place, block by block.

    ``windows`` (n, seqlen) are the calibration tokens; a data-free pruner (magnitude)
    may pass None. Layers missing from ``targets`` stay dense. ``inputs`` says what each
    block is calibrated on: ``pruned`` (sequential: the outputs of the blocks already
    pruned, as SparseGPT and Wanda do) or ``dense`` (one-shot: the dense model's
    activations, as llm-compressor's basic pipeline and the Evaluator's cached masks).
    ``on_stats`` sees each layer's statistics as the pruner gets them.
    """
    check_inputs(inputs)
    unknown = set(targets) - set(adapter.prunable_layers())
    if unknown:
        raise ValueError(f"targets name layers the model does not have: {sorted(unknown)[:5]}")
    start = time.perf_counter()
    report = PruneReport(pruner=pruner.name)
    batches: list[_Batch] = []
    if not targets:
        return report
    if pruner.needs_data:
        if windows is None:
            raise ValueError(f"pruner {pruner.name!r} needs calibration windows")
        batches = capture_block_inputs(model, adapter, windows, batch_size)
        report.calibration_tokens = int(windows.numel())

    # Blocks after the last targeted one are left alone: no need to propagate into them.
    last = max((adapter.block_index(n) for n in targets), default=-1)
    bar = tqdm(range(last + 1), desc=f"prune ({pruner.name})", disable=not progress)
    for index in bar:
        with adapter.resident(index):
            _prune_block(adapter, index, pruner, targets, batches, report, on_stats,
                         propagate=batches != [] and index < last and inputs == "pruned",
                         dense_inputs=inputs == "dense")
    report.seconds = time.perf_counter() - start
    return report


def _prune_block(
    adapter: ModelAdapter,
    index: int,
    pruner: Pruner,
    targets: Mapping[str, LayerTarget],
    batches: list[_Batch],
    report: PruneReport,
    on_stats: Callable[[str, LayerStats], None] | None,
    *,
    propagate: bool,
    dense_inputs: bool,
) -> None:
    """Statistics, pruning and (``propagate``) the pruned block's outputs for one block."""
    layers = {n: m for n, m in adapter.block_layers(index).items() if n in targets}
    stats: dict[str, LayerStats] = {}
    if batches:
        # One-shot: the dense block's outputs replace its inputs before it is pruned.
        stats, _ = block_stats(adapter, index, batches, norms=pruner.needs_norms,
                               hessian=pruner.needs_hessian, names=set(layers),
                               keep_outputs=dense_inputs)
        if on_stats is not None:
            for name, st in stats.items():
                on_stats(name, st)
    for name, layer in layers.items():
        weight = adapter.get_weight(layer)
        t = targets[name]
        result = pruner.prune(weight, stats.get(name), t.sparsity, t.pattern)
        adapter.set_weight(layer, result.weight)
        report.sparsity[name] = result.sparsity
        report.numel[name] = weight.numel()
    if propagate:
        _run_block(adapter.block(index), batches, keep_outputs=True)


def measure_sparsity(adapter: ModelAdapter) -> dict[str, float]:
    """Fraction of exact zeros in each prunable layer's weight."""
    out: dict[str, float] = {}
    for name, layer in adapter.prunable_layers().items():
        w = adapter.get_weight(layer)
        out[name] = float((w == 0).sum().item()) / w.numel()
    return out
