"""The published formulas on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from allocsearch.allocation import get_allocator
from allocsearch.allocation.alpha import alpha_sparsities
from allocsearch.allocation.owl import outlier_ratio, owl_sparsities
from allocsearch.allocation.ramp import ramp_sparsities
from allocsearch.profile import hill_alpha
from tests.helpers import tiny_profile


def test_outlier_ratio_counts_scores_above_m_times_mean() -> None:
    # Mean of [1]*8 + [12, 30] is 5: above 3*5=15 only 30; above 10 both; above 30 none.
    scores = [torch.ones(2, 4), torch.tensor([[12.0, 30.0]])]
    assert outlier_ratio(scores, 3.0) == pytest.approx(1 / 10)
    assert outlier_ratio(scores, 2.0) == pytest.approx(2 / 10)
    assert outlier_ratio(scores, 6.0) == 0.0


def test_owl_formula() -> None:
    # Ratios 0.01, 0.03, 0.05 -> scaled into [0, 2*0.08] = 0, 0.08, 0.16 -> centred on the
    # keep ratio 0.3 -> keep 0.22, 0.30, 0.38 -> sparsity 0.78, 0.70, 0.62.
    got = owl_sparsities([0.01, 0.03, 0.05], target=0.7, lam=0.08)
    np.testing.assert_allclose(got, [0.78, 0.70, 0.62], atol=1e-12)
    # More outliers -> lower sparsity; equal ratios -> uniform.
    np.testing.assert_allclose(owl_sparsities([0.2, 0.2], 0.5, 0.1), [0.5, 0.5])


def test_owl_allocator_follows_outliers() -> None:
    prof = tiny_profile("llama")
    # Make block 1 outlier-heavy: 5% of its weights scaled up 20x (ratio 0.5% -> 2.7% at M=5).
    assert prof.loaded is not None
    g = torch.Generator().manual_seed(0)
    for layer in prof.loaded.adapter.block_layers(1).values():
        w = prof.loaded.adapter.get_weight(layer)
        w[torch.rand(w.shape, generator=g) < 0.05] *= 20.0
    plan = get_allocator("owl", M=5.0, lam=0.1).allocate(prof, 0.5)
    b0, b1 = plan.block_sparsity()
    assert b1 < b0
    assert b0 - b1 == pytest.approx(0.2, abs=0.01)  # the full 2*lambda spread


def test_alpha_mapping_is_linear_in_alpha() -> None:
    got = alpha_sparsities(np.array([2.0, 3.0, 6.0]), target=0.6, eps=0.1)
    np.testing.assert_allclose(got, [0.5, 0.55, 0.7])


def test_hill_alpha_heavier_tail_is_smaller() -> None:
    g = torch.Generator().manual_seed(0)
    gaussian = torch.randn(256, 256, generator=g)
    u, _, v = torch.linalg.svd(gaussian)
    heavy = u @ torch.diag(torch.arange(1, 257, dtype=torch.float32) ** -1.0) @ v
    assert hill_alpha(heavy) < hill_alpha(gaussian)


def test_ramp_endpoints() -> None:
    np.testing.assert_allclose(ramp_sparsities(5, 0.7, 0.3), [0.55, 0.625, 0.7, 0.775, 0.85])
    plan = get_allocator("ramp", slope=0.3).allocate(tiny_profile("llama"), 0.7)
    np.testing.assert_allclose(plan.block_sparsity(), [0.55, 0.85], atol=1e-9)
