"""SparseGPT: one-shot OBS pruning with weight reconstruction (Frantar & Alistarh, 2023).

Columns are visited left to right in blocks. Within a block the mask is chosen by the OBS
saliency w^2 / [H^-1]_jj^2 and each removed weight's error is spread over the columns not
yet visited, using rows of the upper Cholesky factor of H^-1; whole blocks then push their
accumulated error to the rest of the matrix (the lazy batched update).
"""

from __future__ import annotations

import torch

from allocsearch.pruners.base import Pruner, PruneResult
from allocsearch.pruners.masks import lowest_mask, nm_mask, num_pruned, split_count
from allocsearch.pruners.pattern import Pattern
from allocsearch.pruners.stats import LayerStats


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
    rows, cols = weight.shape
    if pattern.is_nm and (cols % pattern.m or blocksize % pattern.m):
        raise ValueError(
            f"pattern {pattern} needs in_features ({cols}) and blocksize ({blocksize}) "
            f"divisible by {pattern.m}"
        )
    w_all = weight.float().clone()
    u = inverse_hessian_factor(hessian, percdamp)  # (in, in), upper triangular
    mask = torch.zeros(rows, cols, dtype=torch.bool, device=weight.device)
    starts = list(range(0, cols, blocksize))
    block_counts: list[int] = []
    if not pattern.is_nm:
        sizes = [rows * (min(i + blocksize, cols) - i) for i in starts]
        block_counts = split_count(num_pruned(rows * cols, sparsity), sizes)

    for b, i1 in enumerate(starts):
        i2 = min(i1 + blocksize, cols)
        w1 = w_all[:, i1:i2].clone()  # (rows, bs)
        u1 = u[i1:i2, i1:i2]  # (bs, bs)
        d = u1.diagonal()  # (bs,)
        err1 = torch.zeros_like(w1)
        if pattern.is_nm:
            mask1 = torch.zeros_like(w1, dtype=torch.bool)
        else:
            mask1 = lowest_mask(w1.square() / d.square().unsqueeze(0), block_counts[b])
        for i in range(i2 - i1):
            if pattern.is_nm and i % pattern.m == 0:
                # Chosen group by group, with the weights already updated by earlier columns.
                sal = w1[:, i : i + pattern.m].square() / d[i : i + pattern.m].square()
                mask1[:, i : i + pattern.m] = nm_mask(sal, pattern)
            col = w1[:, i]
            q = col.masked_fill(mask1[:, i], 0.0)
            err = (col - q) / d[i]  # (rows,)
            # Column i becomes q exactly; later columns absorb the error.
            w1[:, i:] -= err.unsqueeze(1) * u1[i, i:].unsqueeze(0)
            w1[:, i] = q
            err1[:, i] = err
        w_all[:, i1:i2] = w1
        mask[:, i1:i2] = mask1
        w_all[:, i2:] -= err1 @ u[i1:i2, i2:]
    w_all.masked_fill_(mask, 0.0)
    return PruneResult(mask, w_all.to(weight.dtype))


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
