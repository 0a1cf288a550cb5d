"""SparseGPT: one-shot OBS pruning with weight reconstruction (Frantar & Alistarh, 2023).

Columns are visited left to right in blocks. Within a block the mask is chosen by the OBS
saliency w^2 / [H^-1]_jj^2 and each removed weight's error is spread over the columns not
yet visited, using rows of the upper Cholesky factor of H^-1; whole blocks then push their
accumulated error to the rest of the matrix (the lazy batched update).

Several sparsities of one matrix share the Hessian factor: :func:`sparsegpt_levels` runs them
side by side, stacked on a leading level axis. The column sweep is elementwise, so a level
computed in a stack is bit-identical to the same level computed alone; the block updates are
matrix products, run per level at the single-level shape for the same reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from allocsearch.pruners.base import Pruner, PruneResult
from allocsearch.pruners.masks import lowest_mask, nm_mask, num_pruned, split_count
from allocsearch.pruners.pattern import UNSTRUCTURED, Pattern
from allocsearch.pruners.stats import LayerStats

#: Levels swept together; bounds the stacked copies at this many times the weight (float32).
LEVELS_PER_PASS = 8


def inverse_hessian_factor(hessian: torch.Tensor, percdamp: float) -> torch.Tensor:
    """Upper Cholesky factor U of (H + damp I)^-1, so that H^-1 = U^T U. Shape (in, in).

    Input channels that never fired (zero diagonal) get a unit diagonal so H stays positive
    definite; their weights see only zero inputs, so any value reconstructs them.
    """
    h = hessian.float().clone()
    diag = h.diagonal()
    diag[diag == 0] = 1.0
    damp = percdamp * diag.mean()
    diag.add_(damp)
    chol = torch.linalg.cholesky(h)
    hinv = torch.cholesky_inverse(chol)
    upper: torch.Tensor = torch.linalg.cholesky(hinv, upper=True)
    return upper


def _sweep(
    weight: torch.Tensor, u: torch.Tensor, sparsities: Sequence[float], pattern: Pattern,
    blocksize: int,
) -> list[PruneResult]:
    """The column sweep for L sparsities at once: weights stacked as (L, rows, cols)."""
    rows, cols = weight.shape
    n_lv = len(sparsities)
    w_all = weight.float().unsqueeze(0).repeat(n_lv, 1, 1)  # (L, rows, cols)
    mask = torch.zeros(n_lv, rows, cols, dtype=torch.bool, device=weight.device)
    starts = list(range(0, cols, blocksize))
    sizes = [rows * (min(i + blocksize, cols) - i) for i in starts]
    # counts[l][b]: weights level l removes in column block b (exact total per level).
    counts = [split_count(num_pruned(rows * cols, s), sizes) for s in sparsities]
    for b, i1 in enumerate(starts):
        i2 = min(i1 + blocksize, cols)
        w1 = w_all[:, :, i1:i2].clone()  # (L, rows, bs)
        u1 = u[i1:i2, i1:i2]  # (bs, bs)
        d = u1.diagonal()  # (bs,)
        err1 = torch.zeros_like(w1)
        if pattern.is_nm:
            mask1 = torch.zeros_like(w1, dtype=torch.bool)
        else:
            sal = w1.square() / d.square()  # (L, rows, bs)
            mask1 = torch.stack([lowest_mask(sal[lv], counts[lv][b]) for lv in range(n_lv)])
        for i in range(i2 - i1):
            if pattern.is_nm and i % pattern.m == 0:
                # Chosen group by group, with the weights already updated by earlier columns.
                sal = w1[:, :, i : i + pattern.m].square() / d[i : i + pattern.m].square()
                group = nm_mask(sal.reshape(n_lv * rows, pattern.m), pattern)
                mask1[:, :, i : i + pattern.m] = group.reshape(n_lv, rows, pattern.m)
            col = w1[:, :, i]  # (L, rows)
            q = col.masked_fill(mask1[:, :, i], 0.0)
            err = (col - q) / d[i]  # (L, rows)
            # Column i becomes q exactly; later columns absorb the error.
            w1[:, :, i:] -= err.unsqueeze(2) * u1[i, i:]
            w1[:, :, i] = q
            err1[:, :, i] = err
        w_all[:, :, i1:i2] = w1
        mask[:, :, i1:i2] = mask1
        for lv in range(n_lv):
            w_all[lv, :, i2:] -= err1[lv] @ u[i1:i2, i2:]
    w_all.masked_fill_(mask, 0.0)
    return [PruneResult(mask[lv], w_all[lv].to(weight.dtype)) for lv in range(n_lv)]


def _check_pattern(cols: int, pattern: Pattern, blocksize: int) -> None:
    if pattern.is_nm and (cols % pattern.m or blocksize % pattern.m):
        raise ValueError(
            f"pattern {pattern} needs in_features ({cols}) and blocksize ({blocksize}) "
            f"divisible by {pattern.m}"
        )


def sparsegpt_sparsify(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float,
    pattern: Pattern,
    *,
    blocksize: int = 128,
    percdamp: float = 0.01,
) -> PruneResult:
    """Prune ``weight`` (out, in) given the layer Hessian (in, in); returns mask and new weight."""
    _check_pattern(weight.shape[1], pattern, blocksize)
    u = inverse_hessian_factor(hessian, percdamp)  # (in, in), upper triangular
    return _sweep(weight, u, [sparsity], pattern, blocksize)[0]


def sparsegpt_levels(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsities: Sequence[float],
    *,
    blocksize: int = 128,
    percdamp: float = 0.01,
    per_pass: int = LEVELS_PER_PASS,
) -> list[PruneResult]:
    """Unstructured SparseGPT at every sparsity in ``sparsities`` from one Hessian factor;
    each result equals :func:`sparsegpt_sparsify` at that sparsity, bit for bit."""
    u = inverse_hessian_factor(hessian, percdamp)
    out: list[PruneResult] = []
    for i in range(0, len(sparsities), max(per_pass, 1)):
        out += _sweep(weight, u, list(sparsities[i : i + per_pass]), UNSTRUCTURED, blocksize)
    return out


class SparseGPTPruner(Pruner):
    name = "sparsegpt"
    needs_hessian = True

    def __init__(self, blocksize: int = 128, percdamp: float = 0.01) -> None:
        if blocksize < 1:
            raise ValueError(f"blocksize must be positive, got {blocksize}")
        if not (0.0 <= percdamp < 1.0):
            raise ValueError(f"percdamp must lie in [0, 1), got {percdamp}")
        self.blocksize = blocksize
        self.percdamp = percdamp

    def _prune(
        self, weight: torch.Tensor, stats: LayerStats | None, sparsity: float, pattern: Pattern
    ) -> PruneResult:
        assert stats is not None  # checked by Pruner.prune
        return sparsegpt_sparsify(
            weight,
            stats.require_hessian(self.name),
            sparsity,
            pattern,
            blocksize=self.blocksize,
            percdamp=self.percdamp,
        )

    def _prune_levels(
        self, weight: torch.Tensor, stats: LayerStats | None, sparsities: list[float]
    ) -> list[PruneResult]:
        assert stats is not None
        return sparsegpt_levels(weight, stats.require_hessian(self.name), sparsities,
                                blocksize=self.blocksize, percdamp=self.percdamp)
