"""Profile: what it measures, and the on-disk cache keyed by model, data and seed."""

from __future__ import annotations

from pathlib import Path

import torch

from allocsearch.data import DataConfig
from allocsearch.profile import build_profile, compute_profile, tensor_digest, weights_digest
from tests.helpers import tiny_loaded


def test_norms_match_a_direct_hook() -> None:
    lm = tiny_loaded("llama")
    windows = torch.randint(0, 128, (3, 16), generator=torch.Generator().manual_seed(0))
    prof = compute_profile(lm, windows, progress=False)
    name = "model.layers.1.mlp.down_proj"
    seen: list[torch.Tensor] = []
    layer = lm.adapter.prunable_layers()[name]
    h = layer.register_forward_hook(lambda _m, i, _o: seen.append(i[0].reshape(-1, i[0].shape[-1])))
    with torch.no_grad():
        lm.model(windows)
    h.remove()
    x = torch.cat(seen)
    torch.testing.assert_close(prof.sq_norm[name], x.square().sum(0), rtol=1e-4, atol=1e-5)
    assert prof.tokens == 48
    assert set(prof.alpha) == set(lm.adapter.prunable_layers())
    assert all(a > 1.0 for a in prof.alpha.values())


def test_cache_is_reused_and_keyed(tmp_path: Path) -> None:
    lm = tiny_loaded("llama")
    data = DataConfig("embedded", 2, 16, seed=0)
    first = build_profile(lm, data, cache_dir=tmp_path, progress=False)
    again = build_profile(lm, data, cache_dir=tmp_path, progress=False)
    assert not first.from_cache and again.from_cache
    assert again.key == first.key
    for n in first.sq_norm:
        assert torch.equal(again.sq_norm[n], first.sq_norm[n])
    assert again.alpha == first.alpha
    other_seed = build_profile(lm, DataConfig("embedded", 2, 16, seed=1), cache_dir=tmp_path,
                               progress=False)
    assert not other_seed.from_cache and other_seed.key != first.key
    # Changed weights (a pruned copy, say) never reuse a dense profile.
    w = lm.adapter.get_weight(next(iter(lm.adapter.prunable_layers().values())))
    w[0, 0] += 1.0
    changed = build_profile(lm, data, cache_dir=tmp_path, progress=False)
    assert not changed.from_cache


def test_weights_digest_is_the_same_for_any_thread_count() -> None:
    """A float sum of a large weight rounds by the reduction's order, which follows torch's
    threads (it keyed the SmolLM2 profile apart under 1 and 2 threads); the digest does not."""
    w = torch.randn(2048, 1536, generator=torch.Generator().manual_seed(0)) * 0.02  # (out, in)
    before = torch.get_num_threads()
    try:
        digests = []
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            digests.append(tensor_digest(w))
    finally:
        torch.set_num_threads(before)
    one = digests[0]
    assert digests == [one] * 3
    # Exact: one ulp on one weight far from the first row changes it, as does a sign.
    bumped = w.clone()
    bumped[1000, 700] = torch.nextafter(bumped[1000, 700], torch.tensor(1.0))
    assert tensor_digest(bumped) != one
    flipped = w.clone()
    flipped[5, 5] = -flipped[5, 5]
    assert tensor_digest(flipped) != one
    assert tensor_digest(w.to(torch.bfloat16)) == tensor_digest(w.to(torch.bfloat16).float())
    lm = tiny_loaded("llama")
    torch.set_num_threads(1)
    try:
        single = weights_digest(lm)
    finally:
        torch.set_num_threads(before)
    assert weights_digest(lm) == single
