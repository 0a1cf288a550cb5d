"""Structured pruning math: which heads/channels of a sub-block go, and what replaces them.

Pure tensor functions. A sub-block's *units* are the input columns of its output projection
(``o_proj``: heads x head_dim columns; ``down_proj``: one column per intermediate channel).

- **Fluctuation** (FLAP's WIFV): ``score[j] = Var_t(X[t, j]) * ||W[:, j]||^2``. A column whose
  input barely varies contributes an almost constant vector, which a bias can replace.
- **Bias compensation**: removing columns R of ``W`` changes the output by
  ``W[:, R] @ X[t, R]``; adding ``W[:, R] @ mean(X[:, R])`` as a bias cancels its mean.
- **Groups**: attention units are scored per KV group (the group's query heads together), so
  a removed group takes its key/value head with it and GQA stays consistent.
"""

from __future__ import annotations

import torch


def fluctuation(weight: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """(in,) FLAP fluctuation of each input column of an (out, in) output projection."""
    return var.float() * weight.float().square().sum(dim=0)


def group_scores(scores: torch.Tensor, group_width: int) -> torch.Tensor:
    """(in,) unit scores -> (in / group_width,) sums over consecutive groups of units."""
    if scores.numel() % group_width:
        raise ValueError(f"{scores.numel()} units do not split into groups of {group_width}")
    return scores.reshape(-1, group_width).sum(dim=1)


def keep_top(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Sorted indices of the ``keep`` highest scores (ties: the lower index stays)."""
    if not 0 <= keep <= scores.numel():
        raise ValueError(f"cannot keep {keep} of {scores.numel()} units")
    # A stable descending sort: equal scores keep their order, so the lower index wins.
    order = torch.sort(scores, descending=True, stable=True).indices
    return order[:keep].sort().values


def expand_groups(groups: torch.Tensor, group_width: int) -> torch.Tensor:
    """Kept group indices (g,) -> kept unit indices (g * group_width,), in order."""
    base = groups.unsqueeze(1) * group_width
    return (base + torch.arange(group_width, device=groups.device)).reshape(-1)


def compensation(weight: torch.Tensor, mean: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """(out,) bias that replaces the removed columns of an (out, in) weight by their mean
    contribution: ``W[:, removed] @ mean[removed]``."""
    removed = torch.ones(weight.shape[1], dtype=torch.bool, device=weight.device)
    removed[kept] = False
    return weight.float()[:, removed] @ mean.float().to(weight.device)[removed]


def select_units(
    weight: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor,
    keep_groups: int,
    group_width: int,
    *,
    compensate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Kept groups of an (out, in) output projection and its compensation bias.

    Units come in groups of ``group_width`` columns (a KV group of heads, or 1 channel);
    the ``keep_groups`` groups with the highest fluctuation stay. Returns (kept group
    indices, (out,) bias or None)."""
    scores = group_scores(fluctuation(weight, var), group_width)
    groups = keep_top(scores, keep_groups)
    bias = compensation(weight, mean, expand_groups(groups, group_width)) if compensate else None
    return groups, bias
