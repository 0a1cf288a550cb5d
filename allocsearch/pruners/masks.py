"""Mask selection helpers shared by the pruners: exact counts, row-wise and N:M groups.

All masks are boolean tensors shaped like the weight (out_features, in_features) and are
True where a weight is *removed*. Ties are broken by position (stable sort), so results are
deterministic and can be written out by hand in tests.
"""

from __future__ import annotations

import torch

from allocsearch.pruners.pattern import Pattern


def num_pruned(numel: int, sparsity: float) -> int:
    """How many of ``numel`` weights a ``sparsity`` removes (round half up)."""
    return min(numel, int(sparsity * numel + 0.5))


def split_count(total: int, sizes: list[int]) -> list[int]:
    """Split ``total`` pruned weights over groups of the given sizes, proportionally.

    Cumulative rounding makes the parts add up to ``total`` exactly, so a layer's achieved
    sparsity is exact whatever the group shape.
    """
    numel = sum(sizes)
    if numel == 0:
        return [0 for _ in sizes]
    out: list[int] = []
    done = 0
    seen = 0
    for size in sizes:
        seen += size
        upto = (total * seen + numel // 2) // numel
        out.append(upto - done)
        done = upto
    return out


def lowest_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the ``k`` lowest entries of ``scores`` over the whole tensor."""
    mask = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    if k > 0:
        order = torch.argsort(scores.reshape(-1), stable=True)
        mask[order[:k]] = True
    return mask.view_as(scores)


def row_lowest_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Per output row, mask the lowest scores; rows share the exact layer-wide count.

    scores: (rows, cols). Each row prunes ``k`` or ``k + 1`` entries (the first rows take
    the remainder), so the matrix loses exactly ``num_pruned(rows * cols, sparsity)``.
    """
    rows, cols = scores.shape
    total = num_pruned(rows * cols, sparsity)
    base, extra = divmod(total, rows)
    per_row = torch.full((rows, 1), base, dtype=torch.long, device=scores.device)
    per_row[:extra] += 1
    if total == 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    # The k-th lowest score of each row (a selection, about twice as fast as sorting the
    # row on CPU), then the entries below it and, among those equal to it, the first ones by
    # position: exactly what a stable sort would pick.
    thr = torch.empty((rows, 1), dtype=scores.dtype, device=scores.device)
    for k in {base, base + 1} - {0}:
        sel = per_row.view(-1) == k
        if bool(sel.any()):
            thr[sel] = scores[sel].kthvalue(k, dim=1, keepdim=True).values
    below = scores < thr  # (rows, cols)
    tied = scores == thr
    mask = below | (tied & (tied.cumsum(1) <= per_row - below.sum(1, keepdim=True)))
    return mask & (per_row > 0)  # rows that prune nothing (base 0) take no tied entries


def nm_mask(scores: torch.Tensor, pattern: Pattern) -> torch.Tensor:
    """In each group of M consecutive inputs of a row, mask the M - N lowest scores."""
    rows, cols = scores.shape
    if not pattern.is_nm:
        raise ValueError("nm_mask needs an N:M pattern")
    if cols % pattern.m:
        raise ValueError(
            f"pattern {pattern} needs in_features divisible by {pattern.m}, got {cols}"
        )
    groups = scores.reshape(rows, cols // pattern.m, pattern.m)
    order = torch.argsort(groups, dim=-1, stable=True)[..., : pattern.m - pattern.n]
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(-1, order, True)
    return mask.reshape(rows, cols)
