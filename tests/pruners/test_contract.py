"""Contract every registered pruner must honour (parametrised over the registry)."""

from __future__ import annotations

import pytest
import torch

from allocsearch.pruners import PRUNERS, LayerStats, Pattern, StatsAccumulator, get_pruner
from allocsearch.pruners.masks import num_pruned


def _inputs(rows: int = 24, cols: int = 64, seed: int = 0) -> tuple[torch.Tensor, LayerStats]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g)
    x = torch.randn(200, cols, generator=g) * torch.linspace(0.1, 3.0, cols)
    acc = StatsAccumulator(cols, norms=True, hessian=True, device=w.device)
    acc.add(x[:120])
    acc.add(x[120:])  # two batches: the running sums must equal one pass
    return w, acc.result()


@pytest.fixture(params=sorted(PRUNERS))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.7333, 0.9])
def test_exact_ratio_and_zeros(name: str, sparsity: float) -> None:
    w, stats = _inputs()
    before = w.clone()
    res = get_pruner(name).prune(w, stats, sparsity)
    assert res.mask.dtype == torch.bool and res.mask.shape == w.shape
    assert int(res.mask.sum()) == num_pruned(w.numel(), sparsity)
    assert abs(res.sparsity - sparsity) <= 0.5 / w.numel() + 1e-12
    assert torch.all(res.weight[res.mask] == 0)
    assert res.weight.dtype == w.dtype
    assert torch.equal(w, before), "pruners must not modify their input"


@pytest.mark.parametrize("pattern", ["2:4", "4:8", "1:4", "3:8"])
def test_nm_groups_keep_exactly_n(name: str, pattern: str) -> None:
    w, stats = _inputs()
    pat = Pattern.parse(pattern)
    res = get_pruner(name).prune(w, stats, None, pat)
    kept = (~res.mask).reshape(w.shape[0], -1, pat.m).sum(-1)
    assert torch.all(kept == pat.n)
    assert res.sparsity == pytest.approx(pat.sparsity, abs=1e-12)


def test_deterministic(name: str) -> None:
    w, stats = _inputs()
    a = get_pruner(name).prune(w, stats, 0.6)
    b = get_pruner(name).prune(w, stats, 0.6)
    assert torch.equal(a.mask, b.mask) and torch.equal(a.weight, b.weight)


def test_keeps_bfloat16(name: str) -> None:
    w, stats = _inputs()
    res = get_pruner(name).prune(w.bfloat16(), stats, 0.5)
    assert res.weight.dtype == torch.bfloat16
    assert int(res.mask.sum()) == w.numel() // 2


def test_prune_levels_equal_one_prune_per_level_bit_for_bit(name: str) -> None:
    # One Hessian factor (SparseGPT) or one score order shared by every level must not change
    # a single bit of any level: the level database relies on it.
    w, stats = _inputs(rows=40, cols=96)
    levels = [0.0, 0.3, 0.55, 0.7, 0.95]
    params = {"blocksize": 32} if name == "sparsegpt" else {}  # several column blocks
    got = get_pruner(name, **params).prune_levels(w, stats, levels)
    assert len(got) == len(levels)
    for s, res in zip(levels, got, strict=True):
        ref = get_pruner(name, **params).prune(w, stats, s)
        assert torch.equal(res.weight, ref.weight), s
        assert torch.equal(res.mask, ref.mask), s


def test_ranking_pruners_mask_their_lowest_scores() -> None:
    from allocsearch.pruners import RankingPruner, ranking_pruners
    from allocsearch.pruners.masks import lowest_mask, row_lowest_mask

    assert ranking_pruners() == ["magnitude", "wanda"]
    w, stats = _inputs()
    for n in ranking_pruners():
        pruner = get_pruner(n)
        assert isinstance(pruner, RankingPruner)
        scores = pruner.scores(w, stats)
        k = num_pruned(w.numel(), 0.6)
        want = row_lowest_mask(scores, 0.6) if pruner.rowwise else lowest_mask(scores, k)
        assert torch.equal(pruner.prune(w, stats, 0.6).mask, want), n


def test_stats_accumulate_like_one_pass() -> None:
    _w, stats = _inputs()
    g = torch.Generator().manual_seed(0)
    torch.randn(24, 64, generator=g)
    x = torch.randn(200, 64, generator=g) * torch.linspace(0.1, 3.0, 64)
    assert stats.tokens == 200
    assert stats.sq_norm is not None and stats.hessian is not None
    torch.testing.assert_close(stats.sq_norm, x.square().sum(0), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(stats.hessian, 2 * x.T @ x / 200, rtol=1e-4, atol=1e-4)


def test_reconstruction_order_on_scaled_inputs() -> None:
    # Error ||(W - W')X^T||^2 = tr(dW H dW^T) * T / 2, with H = 2/T X^T X.
    w, stats = _inputs(rows=32, cols=128, seed=1)
    assert stats.hessian is not None
    errs = {}
    for n in ("magnitude", "wanda", "sparsegpt"):
        dw = w - get_pruner(n).prune(w, stats, 0.5).weight
        errs[n] = float(torch.trace(dw @ stats.hessian @ dw.T))
    assert errs["sparsegpt"] < errs["wanda"] < errs["magnitude"]
