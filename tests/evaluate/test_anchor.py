"""Anchored (sequential-aware) scores: the anchor's fitness is its exact sequential prune;
one-shot (dense-input) prunes equal the cached masks."""

from __future__ import annotations

import pytest
import torch

from allocsearch.budget import identity_from_adapter, plan_from_values
from allocsearch.data import DataConfig
from allocsearch.data.windows import calibration_windows
from allocsearch.evaluate import Evaluator, EvaluatorConfig, VerifyConfig, perplexity
from allocsearch.evaluate.anchor import anchored_norms
from allocsearch.pipeline import PruneConfig, plan_targets, prune_with_plan
from allocsearch.plan import Plan, block_of
from allocsearch.profile import compute_profile
from tests.helpers import tiny_loaded

CONFIG = EvaluatorConfig(seqlen=32, fidelities=(64, 128), batch_size=2)
CAL = DataConfig("embedded", 3, 32, 1)


def _evaluator(arch: str) -> Evaluator:
    lm = tiny_loaded(arch)
    windows = torch.randint(0, 128, (4, 32), generator=torch.Generator().manual_seed(0))
    return Evaluator(lm, compute_profile(lm, windows, progress=False), CONFIG, progress=False)


def _plan(ev: Evaluator, seed: int, target: float = 0.7) -> Plan:
    ident = identity_from_adapter(ev.loaded.adapter, ev.loaded.name)
    g = torch.Generator().manual_seed(seed)
    values = (target + 0.4 * (torch.rand(len(ident.shapes), generator=g) - 0.5)).tolist()
    return plan_from_values(ident, target, values)


def _weights(ev: Evaluator) -> dict[str, torch.Tensor]:
    a = ev.loaded.adapter
    return {n: a.get_weight(m).clone() for n, m in a.prunable_layers().items()}


@pytest.mark.parametrize("arch", ["llama", "gpt2", "opt"])
def test_anchored_masks_equal_the_sequential_prune_of_the_anchor(arch: str) -> None:
    ev = _evaluator(arch)
    plan = _plan(ev, 0)
    dense = _weights(ev)
    ev.anchor(plan, CAL)
    assert all(torch.equal(w, dense[n]) for n, w in _weights(ev).items())  # left dense
    ev.apply(plan)
    cached = _weights(ev)
    # A fresh model of the same weights, pruned sequentially with Wanda on the same windows.
    fresh = tiny_loaded(arch)
    prune_with_plan(fresh, plan, "wanda", CAL, progress=False)
    a = fresh.adapter
    mismatched = [n for n, m in a.prunable_layers().items()
                  if not torch.equal(a.get_weight(m) == 0, cached[n] == 0)]
    assert mismatched == []
    # ... and so the anchor's fitness is the perplexity of its sequential prune.
    exact = perplexity(fresh.model, ev.windows[:4], progress=False).ppl
    assert ev.fitness(plan) == pytest.approx(exact, rel=1e-6)


def test_one_shot_masks_differ_from_sequential_ones_and_none_goes_back() -> None:
    ev = _evaluator("llama")
    plan = _plan(ev, 1)
    ev.apply(plan)
    one_shot = _weights(ev)
    ev.anchor(plan, CAL)
    ev.apply(plan)
    anchored = _weights(ev)
    # Layers of block 0 see the same inputs either way (calibration windows aside); later
    # blocks see pruned inputs, so some masks must move.
    assert any(not torch.equal(one_shot[n] == 0, anchored[n] == 0) for n in one_shot)
    ev.anchor(None)
    ev.apply(plan)
    assert all(torch.equal(w, one_shot[n]) for n, w in _weights(ev).items())
    ev.close()


def test_anchored_norms_cover_every_pruned_layer_and_need_wanda_scores() -> None:
    ev = _evaluator("llama")
    plan = _plan(ev, 2)
    norms = anchored_norms(ev.loaded, plan_targets(plan), CAL, progress=False)
    ev.restore()
    assert set(norms) == set(plan.modules)
    assert all(v.shape == ev.profile.sq_norm[n].shape and v.dtype == torch.float32
               for n, v in norms.items())
    mag = Evaluator(ev.loaded, ev.profile, EvaluatorConfig(pruner="magnitude", seqlen=32,
                                                           fidelities=(64,)), progress=False)
    with pytest.raises(ValueError, match="need Wanda scores"):
        mag.anchor(plan, CAL)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_one_shot_prune_equals_the_cached_masks_of_a_profile_on_the_same_windows(arch: str) -> None:
    """``inputs="dense"`` calibrates every block on the dense model: the masks the Evaluator
    caches from a dense profile of the same windows. The sequential prune differs after
    block 0 and equals it in block 0 (whose inputs are the same either way)."""
    lm = tiny_loaded(arch)
    windows = calibration_windows(lm.tokenizer, CAL.source, CAL.nsamples, CAL.seqlen, CAL.seed)
    ev = Evaluator(lm, compute_profile(lm, windows, progress=False), CONFIG, progress=False)
    plan = _plan(ev, 3)
    ev.apply(plan)
    cached = _weights(ev)
    masks = {}
    for inputs in ("dense", "pruned"):
        fresh = tiny_loaded(arch)
        prune_with_plan(fresh, plan, "wanda", CAL, progress=False, inputs=inputs)
        a = fresh.adapter
        masks[inputs] = {n: a.get_weight(m) == 0 for n, m in a.prunable_layers().items()}
    assert all(torch.equal(masks["dense"][n], cached[n] == 0) for n in cached)
    block0 = [n for n in cached if block_of(n) == 0]
    assert block0 and all(torch.equal(masks["pruned"][n], masks["dense"][n]) for n in block0)
    assert any(not torch.equal(masks["pruned"][n], masks["dense"][n]) for n in cached)


def test_calibration_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="inputs must be one of"):
        VerifyConfig(inputs="half")
    with pytest.raises(ValueError, match="inputs must be one of"):
        PruneConfig(inputs="half")


def test_a_reference_with_parameters_anchors_the_ranks_at_that_allocators_plan() -> None:
    """``reference: "ramp slope=0.3"`` on cached ranks: the masks of the ramp plan at the
    target are its sequential Wanda prune on the profile's calibration windows."""
    from dataclasses import replace

    from allocsearch.allocation import get_allocator

    lm = tiny_loaded("llama")
    windows = torch.randint(0, 128, (4, 32), generator=torch.Generator().manual_seed(0))
    profile = compute_profile(lm, windows, progress=False)
    ev = Evaluator(lm, profile, replace(CONFIG, profile=CAL, reference="ramp slope=0.3"), progress=False)
    ref = ev.use_reference(0.6)
    want = get_allocator("ramp", slope=0.3).allocate(profile, 0.6)
    assert ref is not None and ref.modules == want.modules and ev.reference_name == "ramp slope=0.3"
    ev.apply(ref)
    cached = _weights(ev)
    fresh = tiny_loaded("llama")
    prune_with_plan(fresh, ref, "wanda", CAL, progress=False)
    a = fresh.adapter
    assert all(torch.equal(a.get_weight(m) == 0, cached[n] == 0) for n, m in a.prunable_layers().items())
