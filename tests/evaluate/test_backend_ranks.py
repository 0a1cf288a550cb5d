"""Rank masks on hand-made scores, and the ranks backend's apply / restore on a tiny model."""

from __future__ import annotations

import pytest
import torch

from allocsearch.engine import LayerTarget
from allocsearch.evaluate.backends import BackendSettings, RankBackend, index_dtype, rank_mask, score_ranks
from allocsearch.pruners import LayerStats, MagnitudePruner, Pattern, WandaPruner
from allocsearch.pruners.masks import nm_mask, row_lowest_mask
from tests.helpers import tiny_profile

T, F = True, False


def test_ranks_by_hand_ties_by_position() -> None:
    scores = torch.tensor([[3.0, 1.0, 2.0, 1.0], [0.5, 0.4, 0.3, 0.2]])
    rank = score_ranks(scores, rowwise=True)
    assert rank.dtype == torch.int16
    assert rank.tolist() == [[3, 0, 2, 1], [3, 2, 1, 0]]
    flat = score_ranks(scores, rowwise=False)
    assert flat.tolist() == [[7, 4, 6, 5], [3, 2, 1, 0]]


def test_rank_mask_rowwise_exact_counts_and_remainder() -> None:
    rank = torch.tensor([[3, 0, 2, 1], [3, 2, 1, 0], [0, 1, 2, 3]], dtype=torch.int16)
    # 12 weights at 0.5 -> 6 pruned -> 2 per row.
    assert rank_mask(rank, 0.5, Pattern(), rowwise=True).tolist() == [
        [F, T, F, T], [F, F, T, T], [T, T, F, F]]
    # 0.6 -> round(7.2) = 7 pruned: the first row takes the extra one.
    assert rank_mask(rank, 0.6, Pattern(), rowwise=True).tolist() == [
        [F, T, T, T], [F, F, T, T], [T, T, F, F]]
    # Layer-wise ranks: the 3 lowest over the whole matrix.
    flat = torch.arange(12, dtype=torch.int16).flip(0).reshape(3, 4)
    assert rank_mask(flat, 0.25, Pattern(), rowwise=False).sum() == 3
    assert rank_mask(flat, 0.25, Pattern(), rowwise=False)[2].tolist() == [F, T, T, T]


def test_rank_mask_nm_by_hand() -> None:
    rank = torch.tensor([[3, 0, 2, 1, 7, 6, 5, 4]], dtype=torch.int16)
    assert rank_mask(rank, 0.5, Pattern(2, 4), rowwise=True).tolist() == [[F, T, F, T, F, F, T, T]]
    assert rank_mask(rank, 0.75, Pattern(1, 4), rowwise=True).tolist() == [[F, T, T, T, F, T, T, T]]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.77])
def test_rank_masks_equal_the_pruners_masks(seed: int, sparsity: float) -> None:
    g = torch.Generator().manual_seed(seed)
    # Rounded scores make ties common, so tie-breaking is checked too.
    scores = (torch.rand(7, 24, generator=g) * 8).round()
    rank = score_ranks(scores, rowwise=True)
    assert torch.equal(rank_mask(rank, sparsity, Pattern(), True), row_lowest_mask(scores, sparsity))
    for pat in (Pattern(2, 4), Pattern(4, 8), Pattern(1, 3)):
        assert torch.equal(rank_mask(rank, 0.0, pat, True), nm_mask(scores, pat))
    w = scores - 4
    mag = MagnitudePruner().prune(w, None, sparsity).mask
    assert torch.equal(rank_mask(score_ranks(w.abs(), rowwise=False), sparsity, Pattern(), False), mag)


def test_index_dtype_is_compact() -> None:
    assert index_dtype(576) == torch.int16
    assert index_dtype(32768) == torch.int16
    assert index_dtype(32769) == torch.int32


def test_apply_restore_bit_identical_and_incremental() -> None:
    prof = tiny_profile("llama")
    assert prof.loaded is not None
    model = prof.loaded.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cache = RankBackend(prof.loaded, prof, BackendSettings("wanda"))
    names = cache.names
    targets = {n: LayerTarget(0.6) for n in names}
    assert cache.apply(targets) == len(names)
    assert cache.apply(targets) == 0  # nothing changed, nothing written
    targets[names[3]] = LayerTarget(0.5, Pattern(2, 4))
    assert cache.apply(targets) == 1
    adapter = prof.loaded.adapter
    layers = adapter.prunable_layers()
    for n in names:
        w = adapter.get_weight(layers[n])
        t = targets[n]
        ref = WandaPruner().prune(cache.dense[n], LayerStats(1, prof.sq_norm[n]), t.sparsity, t.pattern)
        assert torch.equal(w, ref.weight), n
    cache.restore()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # A layer left out of the targets goes back to dense.
    cache.apply({names[0]: LayerTarget(0.5)})
    assert float((adapter.get_weight(layers[names[1]]) == 0).float().mean()) == 0.0
    assert float((adapter.get_weight(layers[names[0]]) == 0).float().mean()) == 0.5


def test_gpt2_conv1d_layers_are_written_in_their_own_layout() -> None:
    prof = tiny_profile("gpt2")
    assert prof.loaded is not None
    cache = RankBackend(prof.loaded, prof, BackendSettings("wanda"))
    cache.apply({n: LayerTarget(0.5) for n in cache.names})
    for name, layer in prof.loaded.adapter.prunable_layers().items():
        w = prof.loaded.adapter.get_weight(layer)  # (out, in)
        assert (w == 0).sum(1).tolist() == [w.shape[1] // 2] * w.shape[0], name


def test_unknown_layer_and_rule() -> None:
    prof = tiny_profile("llama")
    assert prof.loaded is not None
    cache = RankBackend(prof.loaded, prof, BackendSettings("magnitude"))
    with pytest.raises(ValueError, match="does not have"):
        cache.apply({"model.layers.9.mlp.up_proj": LayerTarget(0.5)})
    with pytest.raises(ValueError, match="masks: database"):
        RankBackend(prof.loaded, prof, BackendSettings("sparsegpt"))
    prof.sq_norm = {}
    with pytest.raises(ValueError, match="norms"):
        RankBackend(prof.loaded, prof, BackendSettings("wanda"))
