"""Structured pruning math on hand-made tensors: exact scores, selections and compensation."""

from __future__ import annotations

import pytest
import torch

from allocsearch.pruners.structured_sparsify import (
    compensation,
    expand_groups,
    fluctuation,
    group_scores,
    keep_top,
    select_units,
)


def test_fluctuation_is_variance_times_column_energy() -> None:
    w = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 1.0]])  # (out 2, in 3)
    var = torch.tensor([0.5, 2.0, 4.0])
    # column energies: 1+9=10, 4+0=4, 0+1=1
    assert torch.equal(fluctuation(w, var), torch.tensor([5.0, 8.0, 4.0]))


def test_group_scores_and_expansion() -> None:
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.5, 0.5])
    assert torch.equal(group_scores(scores, 2), torch.tensor([3.0, 7.0, 1.0]))
    assert torch.equal(expand_groups(torch.tensor([0, 2]), 2), torch.tensor([0, 1, 4, 5]))
    with pytest.raises(ValueError, match="groups of 4"):
        group_scores(scores, 4)


def test_keep_top_is_sorted_and_ties_keep_the_lower_index() -> None:
    assert torch.equal(keep_top(torch.tensor([0.1, 0.9, 0.5, 0.9]), 2), torch.tensor([1, 3]))
    assert torch.equal(keep_top(torch.tensor([1.0, 1.0, 1.0]), 2), torch.tensor([0, 1]))
    assert keep_top(torch.tensor([1.0, 2.0]), 0).numel() == 0
    with pytest.raises(ValueError, match="cannot keep 3 of 2"):
        keep_top(torch.tensor([1.0, 2.0]), 3)


def test_compensation_replaces_removed_columns_by_their_mean() -> None:
    w = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mean = torch.tensor([10.0, 20.0, 30.0])
    # keep column 1: the bias is W[:, [0, 2]] @ [10, 30] = [100, 220]
    assert torch.equal(compensation(w, mean, torch.tensor([1])), torch.tensor([100.0, 220.0]))


def test_compensation_is_exact_for_constant_inputs() -> None:
    torch.manual_seed(0)
    w = torch.randn(5, 8)
    x = torch.randn(16, 8)
    x[:, [1, 4, 6]] = torch.tensor([0.3, -1.2, 2.0])  # these channels never vary
    mean, var = x.mean(0), x.var(0, unbiased=False)
    kept, bias = select_units(w, mean, var, keep_groups=5, group_width=1)
    assert torch.equal(kept, torch.tensor([0, 2, 3, 5, 7]))  # the constant channels go
    assert bias is not None
    torch.testing.assert_close(x[:, kept] @ w[:, kept].T + bias, x @ w.T)
