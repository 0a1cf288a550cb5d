"""Exact masks on hand-made tensors: every expected zero is written out."""

from __future__ import annotations

import pytest
import torch

from allocsearch.pruners import LayerStats, Pattern, get_pruner
from allocsearch.pruners.masks import num_pruned, row_lowest_mask, split_count

T = torch.tensor
X = True
_ = False

W = T([[1.0, -8.0, 3.0, 2.0],
       [-5.0, 4.0, -0.5, 6.0],
       [7.0, 0.25, -9.0, 10.0]])


def norms(*values: float) -> LayerStats:
    # sq_norm holds squared channel norms; Wanda multiplies by their square roots.
    return LayerStats(tokens=1, sq_norm=T([v * v for v in values]))


def test_magnitude_unstructured_is_layer_wise() -> None:
    # 12 weights at 50%: the six smallest |w| anywhere: 0.25, 0.5, 1, 2, 3, 4.
    res = get_pruner("magnitude").prune(W, None, 0.5)
    expected = T([[X, _, X, X],
                  [_, X, X, _],
                  [_, X, _, _]])
    assert torch.equal(res.mask, expected)
    assert torch.equal(res.weight, W.masked_fill(expected, 0))


def test_magnitude_2_4() -> None:
    # Each group of 4 keeps its 2 largest |w|: row0 keeps -8, 3; row1 6, -5; row2 10, -9.
    res = get_pruner("magnitude").prune(W, None, None, "2:4")
    expected = T([[X, _, _, X],
                  [_, X, X, _],
                  [X, X, _, _]])
    assert torch.equal(res.mask, expected)
    assert res.sparsity == 0.5


def test_wanda_unstructured_compares_within_rows() -> None:
    # Scores |w| * ||x_j||: column norms 1, 0.1, 1, 1 make column 1 cheap everywhere.
    res = get_pruner("wanda").prune(W, norms(1.0, 0.1, 1.0, 1.0), 0.5)
    # row0 scores 1, 0.8, 3, 2 -> drop 0.8, 1;  row1 5, 0.4, 0.5, 6 -> drop 0.4, 0.5
    # row2 7, 0.025, 9, 10 -> drop 0.025, 7
    expected = T([[X, X, _, _],
                  [_, X, X, _],
                  [X, X, _, _]])
    assert torch.equal(res.mask, expected)
    assert torch.equal(res.weight, W.masked_fill(expected, 0))


def test_wanda_2_4_and_1_4() -> None:
    stats = norms(2.0, 1.0, 1.0, 0.5)
    # scores row0 2, 8, 3, 1;  row1 10, 4, 0.5, 3;  row2 14, 0.25, 9, 5
    res = get_pruner("wanda").prune(W, stats, None, "2:4")
    assert torch.equal(res.mask, T([[X, _, _, X], [_, _, X, X], [_, X, _, X]]))
    res = get_pruner("wanda").prune(W, stats, None, Pattern(1, 4))
    assert torch.equal(res.mask, T([[X, _, X, X], [_, X, X, X], [_, X, X, X]]))
    assert res.sparsity == 0.75


def test_wanda_4_8() -> None:
    w = T([[8.0, 1.0, 7.0, 2.0, 6.0, 3.0, 5.0, 4.0]])
    res = get_pruner("wanda").prune(w, norms(*[1.0] * 8), None, "4:8")
    assert torch.equal(res.mask, T([[_, X, _, X, _, X, _, X]]))


def test_row_wise_counts_spread_remainder_to_first_rows() -> None:
    # 3 rows x 4 at 5/12 -> 5 pruned: rows get 2, 2, 1 (first rows take the remainder).
    scores = T([[4.0, 3.0, 2.0, 1.0]] * 3)
    mask = row_lowest_mask(scores, 5 / 12)
    assert torch.equal(mask, T([[_, _, X, X], [_, _, X, X], [_, _, _, X]]))


def test_row_selection_equals_a_stable_sort_with_ties_and_edge_counts() -> None:
    """The selection (k-th value, ties by position) picks what a stable row sort picks, for
    counts from nothing through rows that prune none (base 0) to whole rows."""
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (7, 9), generator=g).float()  # few values: many ties
    rows, cols = scores.shape
    for total in range(rows * cols + 1):
        sparsity = total / (rows * cols)
        base, extra = divmod(num_pruned(rows * cols, sparsity), rows)
        counts = torch.tensor([base + (r < extra) for r in range(rows)]).unsqueeze(1)
        order = torch.argsort(scores, dim=1, stable=True)
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(cols).expand(rows, cols))
        assert torch.equal(row_lowest_mask(scores, sparsity), rank < counts), total


def test_ties_break_by_position() -> None:
    res = get_pruner("magnitude").prune(torch.ones(1, 4), None, 0.5)
    assert torch.equal(res.mask, T([[X, X, _, _]]))


def test_sparsegpt_identity_hessian_is_magnitude_without_update() -> None:
    # H = I: the OBS saliency is |w| and no error flows between columns, so with one
    # block covering the matrix SparseGPT keeps exactly the magnitude mask and weights.
    stats = LayerStats(tokens=1, hessian=torch.eye(4))
    res = get_pruner("sparsegpt", blocksize=4).prune(W, stats, 0.5)
    mag = get_pruner("magnitude").prune(W, None, 0.5)
    assert torch.equal(res.mask, mag.mask)
    assert torch.allclose(res.weight, mag.weight)


def test_sparsegpt_updates_the_kept_weight() -> None:
    # Two perfectly correlated inputs: pruning w0 moves its contribution onto w1.
    w = T([[1.0, 4.0]])
    h = T([[1.0, 1.0], [1.0, 1.0]]) * 2
    res = get_pruner("sparsegpt", blocksize=2, percdamp=1e-3).prune(
        w, LayerStats(tokens=1, hessian=h), 0.5
    )
    assert torch.equal(res.mask, T([[X, _]]))
    assert torch.allclose(res.weight, T([[0.0, 5.0]]), atol=1e-2)


def test_sparsegpt_2_4_hand_made() -> None:
    stats = LayerStats(tokens=1, hessian=torch.eye(4))
    res = get_pruner("sparsegpt", blocksize=4).prune(W, stats, None, "2:4")
    mag = get_pruner("magnitude").prune(W, None, None, "2:4")
    assert torch.equal(res.mask, mag.mask)


@pytest.mark.parametrize(("total", "sizes", "expected"), [
    (5, [4, 4, 4], [2, 1, 2]),
    (7, [10, 10], [4, 3]),
    (0, [3, 3], [0, 0]),
    (6, [6], [6]),
])
def test_split_count(total: int, sizes: list[int], expected: list[int]) -> None:
    assert split_count(total, sizes) == expected


def test_num_pruned_rounds_half_up() -> None:
    assert num_pruned(10, 0.25) == 3
    assert num_pruned(576 * 576, 0.5) == 576 * 288


@pytest.mark.parametrize("bad", ["4:4", "0:4", "3:2", "2-4", "abc"])
def test_bad_patterns(bad: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        Pattern.parse(bad)


def test_nm_sparsity_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"implies sparsity 0\.5"):
        get_pruner("magnitude").prune(W, None, 0.7, "2:4")


def test_nm_needs_divisible_width() -> None:
    with pytest.raises(ValueError, match="divisible by 4"):
        get_pruner("magnitude").prune(torch.ones(2, 6), None, None, "2:4")


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_sparsity_bounds(bad: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        get_pruner("magnitude").prune(W, None, bad)


def test_data_pruners_need_stats() -> None:
    with pytest.raises(ValueError, match="calibration statistics"):
        get_pruner("wanda").prune(W, None, 0.5)
    with pytest.raises(ValueError, match="Hessian"):
        get_pruner("sparsegpt").prune(W, norms(1, 1, 1, 1), 0.5)


def test_unknown_pruner_lists_choices() -> None:
    with pytest.raises(ValueError, match="magnitude, sparsegpt, wanda"):
        get_pruner("obs")
