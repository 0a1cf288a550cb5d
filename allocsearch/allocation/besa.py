"""BESA-like differentiable allocation inside each block (after Xu et al., 2024).

For every prunable layer of a block, learnable logits over K candidate ratios
c_k = k / K give a distribution p. Weights are ranked within their output row by Wanda
score (rank fraction r in [0, 1), 0 = least important); weight j is kept with soft
probability P(c <= r_j) = cdf_p(r_j), and the forward pass uses the hard mask at the
expected ratio s = sum_k p_k c_k (r_j >= s) with a straight-through gradient from the soft
mask. The loss is the block's output reconstruction error relative to the dense block,
plus ``penalty * (block sparsity - target)^2``, so each block meets the target while its
layers trade sparsity. Blocks are learned in order, each fed the previous pruned outputs;
the model itself is never modified. The learned ratios are projected to the exact budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch.func import functional_call
from tqdm.auto import tqdm

from allocsearch.allocation.base import Allocator, AllocatorParams
from allocsearch.data.windows import calibration_windows
from allocsearch.engine import _Batch, block_stats, capture_block_inputs
from allocsearch.models.adapters import ModelAdapter
from allocsearch.profile import Profile
from allocsearch.pruners.wanda_sparsify import wanda_scores


@dataclass(frozen=True)
class BesaParams(AllocatorParams):
    steps: int = 20
    lr: float = 0.05
    candidates: int = 20
    penalty: float = 20.0
    rowwise: bool = False
    nsamples: int = 8
    seqlen: int = 128
    progress: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steps < 1 or self.candidates < 2 or self.nsamples < 1 or self.seqlen < 2:
            raise ValueError("BESA needs steps >= 1, candidates >= 2, nsamples >= 1, seqlen >= 2")


@dataclass
class _Layer:
    rel: str  # parameter name relative to the block, e.g. "mlp.up_proj.weight"
    weight: torch.Tensor  # (out, in) dense, float32
    frac: torch.Tensor  # (out, in) rank fraction within the row, 0 = least important
    bucket: torch.Tensor  # (out, in) long: index of the largest candidate <= frac
    logits: torch.Tensor  # (K,) or (out, K), requires grad


class BesaAllocator(Allocator):
    name = "besa"
    Params = BesaParams
    needs_model = True

    def _values(self, profile: Profile, target: float) -> Mapping[str, float]:
        p = self.params
        assert isinstance(p, BesaParams) and profile.loaded is not None
        lm = profile.loaded
        windows = calibration_windows(
            lm.tokenizer, profile.data.source, p.nsamples, min(p.seqlen, profile.data.seqlen),
            profile.data.seed,
        )
        batches = capture_block_inputs(lm.model, lm.adapter, windows, batch_size=p.nsamples)
        cands = torch.arange(p.candidates, dtype=torch.float32, device=lm.device) / p.candidates
        out: dict[str, float] = {}
        for index in tqdm(range(lm.adapter.num_blocks), desc="besa", disable=not p.progress):
            with lm.adapter.resident(index):
                out.update(self._block(lm.adapter, index, batches, cands, target))
        return out

    def _block(
        self, adapter: ModelAdapter, index: int, batches: list[_Batch],
        cands: torch.Tensor, target: float,
    ) -> dict[str, float]:
        p = self.params
        assert isinstance(p, BesaParams)
        block = adapter.block(index)
        prefix = adapter.block_prefix(index) + "."
        named = adapter.block_layers(index)
        stats, dense_out = block_stats(adapter, index, batches, norms=True, hessian=False)
        layers: dict[str, _Layer] = {}
        for name, layer in named.items():
            w = adapter.get_weight(layer).detach().float()
            rows, cols = w.shape
            scores = wanda_scores(w, stats[name].require_sq_norm(self.name))
            order = torch.argsort(scores, dim=1, stable=True)
            rank = torch.empty_like(order)
            rank.scatter_(1, order, torch.arange(cols, device=w.device).expand(rows, cols))
            frac = rank.float() / cols
            bucket = (frac * p.candidates).long().clamp_(max=p.candidates - 1)
            init = -10.0 * (cands - target).abs()
            logits = (init.expand(rows, -1).clone() if p.rowwise else init.clone()).requires_grad_()
            layers[name] = _Layer(name[len(prefix):] + ".weight", w, frac, bucket, logits)
        numel = torch.tensor([float(lay.weight.numel()) for lay in layers.values()])
        opt = torch.optim.Adam([lay.logits for lay in layers.values()], lr=p.lr)
        scale = sum(float(y.float().square().mean()) for y in dense_out) + 1e-12
        for _ in range(p.steps):
            opt.zero_grad()
            masked, ratios = self._masked(layers, cands, adapter, hard_only=False)
            recon = sum(
                (_call(block, masked, b) - y).float().square().mean()
                for b, y in zip(batches, dense_out, strict=True)
            )
            block_s = (torch.stack(ratios) * numel).sum() / numel.sum()
            loss = recon / scale + p.penalty * (block_s - target) ** 2
            loss.backward()
            opt.step()
        with torch.no_grad():
            masked, ratios = self._masked(layers, cands, adapter, hard_only=True)
            for b in batches:
                b.hidden = _call(block, masked, b)
        return {n: float(r) for n, r in zip(layers, ratios, strict=True)}

    def _masked(
        self, layers: Mapping[str, _Layer], cands: torch.Tensor, adapter: ModelAdapter,
        hard_only: bool,
    ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        """Masked weights (storage layout) keyed by block-relative name, and each layer's
        expected sparsity."""
        weights: dict[str, torch.Tensor] = {}
        ratios: list[torch.Tensor] = []
        for lay in layers.values():
            prob = torch.softmax(lay.logits, dim=-1)  # (K,) or (out, K)
            s = prob @ cands  # () or (out,)
            hard = (lay.frac >= (s.unsqueeze(-1) if s.ndim else s)).float()
            if hard_only:
                mask = hard
            else:
                cdf = torch.cumsum(prob, dim=-1)
                soft = cdf[lay.bucket] if cdf.ndim == 1 else cdf.gather(1, lay.bucket)
                mask = hard + soft - soft.detach()  # straight-through estimator
            w = (lay.weight * mask).to(_dtype_of(adapter))
            weights[lay.rel] = adapter.to_storage(w)
            ratios.append(s.mean())
        return weights, ratios


def _dtype_of(adapter: ModelAdapter) -> torch.dtype:
    return next(adapter.block(0).parameters()).dtype


def _call(block: torch.nn.Module, weights: dict[str, torch.Tensor], b: _Batch) -> torch.Tensor:
    out = functional_call(block, weights, (b.hidden, *b.args), b.kwargs, strict=False)
    hidden: torch.Tensor = out[0] if isinstance(out, tuple) else out
    return hidden
