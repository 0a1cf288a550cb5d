"""Input statistics of one linear layer, accumulated over calibration tokens.

Pure tensor code: the engine feeds it the layer inputs it captured with hooks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LayerStats:
    """What pruners may know about a layer's inputs X (tokens x in_features).

    ``sq_norm[j] = sum_t X[t, j]^2`` (Wanda's squared input-channel norm),
    ``total[j] = sum_t X[t, j]`` (with ``sq_norm``: the channel mean and variance that
    structured pruning's fluctuation score and bias compensation need), and
    ``hessian = 2/T * X^T X`` (SparseGPT's layer-wise Hessian), all float32.
    """

    tokens: int
    sq_norm: torch.Tensor | None = None  # (in,)
    hessian: torch.Tensor | None = None  # (in, in)
    total: torch.Tensor | None = None  # (in,)

    def require_sq_norm(self, who: str) -> torch.Tensor:
        if self.sq_norm is None:
            raise ValueError(f"{who} needs input-channel norms (LayerStats.sq_norm)")
        return self.sq_norm

    def require_hessian(self, who: str) -> torch.Tensor:
        if self.hessian is None:
            raise ValueError(f"{who} needs the input Hessian (LayerStats.hessian)")
        return self.hessian


class StatsAccumulator:
    """Running sums over batches of inputs of shape (..., in_features)."""

    def __init__(self, in_features: int, *, norms: bool, hessian: bool, device: torch.device):
        self.in_features = in_features
        self.tokens = 0
        self._sq = torch.zeros(in_features, dtype=torch.float32, device=device) if norms else None
        self._sum = torch.zeros(in_features, dtype=torch.float32, device=device) if norms else None
        self._h = (
            torch.zeros(in_features, in_features, dtype=torch.float32, device=device)
            if hessian
            else None
        )

    @torch.no_grad()
    def add(self, x: torch.Tensor) -> None:
        x2 = x.reshape(-1, self.in_features).float()  # (t, in)
        t = x2.shape[0]
        if self._sq is not None:
            self._sq += x2.square().sum(dim=0)
        if self._sum is not None:
            self._sum += x2.sum(dim=0)
        if self._h is not None:
            # Running mean of 2 x x^T keeps magnitudes bounded for long calibration sets.
            self._h.mul_(self.tokens / (self.tokens + t))
            xs = x2 * (2.0 / (self.tokens + t)) ** 0.5
            self._h.addmm_(xs.T, xs)
        self.tokens += t

    def result(self) -> LayerStats:
        return LayerStats(tokens=self.tokens, sq_norm=self._sq, hessian=self._h, total=self._sum)


def relative_error(weight: torch.Tensor, pruned: torch.Tensor, stats: LayerStats | None) -> float:
    """How much of a layer's output a pruned weight loses on the calibration inputs:
    ||(W' - W) X||^2 / ||W X||^2 = tr(D H D^T) / tr(W H W^T) with D = W' - W, both (out, in).

    Uses the Hessian when the statistics hold one, else its diagonal (the squared input
    norms), else the identity (plain Frobenius norms, for data-free pruners)."""
    w = weight.float()
    d = pruned.float() - w
    if stats is not None and stats.hessian is not None:
        h = stats.hessian.to(w.device)
        num = float(((d @ h) * d).sum())
        den = float(((w @ h) * w).sum())
    elif stats is not None and stats.sq_norm is not None:
        n = stats.sq_norm.to(w.device).float()
        num = float((d.square() * n).sum())
        den = float((w.square() * n).sum())
    else:
        num, den = float(d.square().sum()), float(w.square().sum())
    return num / den if den > 0 else 0.0
