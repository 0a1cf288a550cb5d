"""Perplexity of a causal LM on token windows."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from allocsearch.data.windows import evaluation_windows
from allocsearch.models.loading import LoadedModel


@dataclass(frozen=True)
class PerplexityResult:
    """``tokens`` counts the predicted tokens: each window of T tokens predicts T - 1."""

    ppl: float
    nll: float  # mean negative log-likelihood per predicted token (nats)
    tokens: int
    windows: int
    seqlen: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def perplexity(
    model: nn.Module,
    windows: torch.Tensor,
    *,
    batch_size: int = 1,
    progress: bool = True,
    desc: str = "perplexity",
) -> PerplexityResult:
    """exp(mean next-token NLL) over (n, seqlen) windows, computed in float32."""
    if windows.ndim != 2 or windows.shape[1] < 2:
        raise ValueError(f"expected (n, seqlen >= 2) windows, got {tuple(windows.shape)}")
    device = next(model.parameters()).device
    total = 0.0
    count = 0
    chunks = windows.split(batch_size)
    for chunk in tqdm(chunks, desc=desc, disable=not progress, unit="batch"):
        ids = chunk.to(device)
        logits = model(input_ids=ids, use_cache=False).logits  # (B, T, V)
        loss = F.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]),
            ids[:, 1:].reshape(-1),
            reduction="sum",
        )
        total += float(loss)
        count += ids[:, 1:].numel()
    nll = total / count
    return PerplexityResult(
        ppl=math.exp(nll), nll=nll, tokens=count, windows=int(windows.shape[0]),
        seqlen=int(windows.shape[1]),
    )


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
