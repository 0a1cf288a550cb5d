"""The Evaluator on tiny models: exactness against fresh prunes, restore, fidelities, KL."""

from __future__ import annotations

import math

import pytest
import torch

from allocsearch.budget import identity_from_adapter, plan_from_values
from allocsearch.data import DataConfig
from allocsearch.evaluate import Evaluator, EvaluatorConfig, VerifyConfig, perplexity, verify
from allocsearch.evaluate.fitness import KLFitness, dense_reference
from allocsearch.pipeline import evaluate_perplexity, prune_with_plan
from allocsearch.plan import Plan, PlanError
from allocsearch.profile import compute_profile
from allocsearch.pruners import LayerStats, Pattern, StatsAccumulator, WandaPruner
from tests.helpers import tiny_loaded

CONFIG = EvaluatorConfig(seqlen=32, fidelities=(64, 160), topk=8, batch_size=2)


def _windows(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 128, (4, 32), generator=torch.Generator().manual_seed(seed))


def _evaluator(arch: str = "llama", config: EvaluatorConfig = CONFIG) -> Evaluator:
    lm = tiny_loaded(arch)
    prof = compute_profile(lm, _windows(), progress=False)
    return Evaluator(lm, prof, config, progress=False)


def _plan(ev: Evaluator, target: float = 0.6, seed: int = 0) -> Plan:
    ident = identity_from_adapter(ev.loaded.adapter, ev.loaded.name)
    g = torch.Generator().manual_seed(seed)
    values = (target + 0.3 * (torch.rand(len(ident.shapes), generator=g) - 0.5)).tolist()
    return plan_from_values(ident, target, values)


def _state(ev: Evaluator) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in ev.loaded.model.state_dict().items()}


@pytest.mark.parametrize("arch", ["llama", "gpt2", "opt"])
def test_cached_masks_equal_a_fresh_wanda_prune_on_dense_activations(arch: str) -> None:
    ev = _evaluator(arch)
    plan = _plan(ev)
    adapter = ev.loaded.adapter
    layers = adapter.prunable_layers()
    # Fresh statistics: hooks on every layer during one dense forward over the same windows.
    accs = {n: StatsAccumulator(adapter.get_weight(m).shape[1], norms=True, hessian=False,
                                device=torch.device("cpu")) for n, m in layers.items()}
    handles = [m.register_forward_hook(lambda _m, i, _o, a=accs[n]: a.add(i[0]))
               for n, m in layers.items()]
    with torch.no_grad():
        for w in _windows():
            ev.loaded.model(input_ids=w[None])
    for h in handles:
        h.remove()
    dense = {n: adapter.get_weight(m).clone() for n, m in layers.items()}
    ev.apply(plan)
    for n, m in layers.items():
        choice = plan.modules[n]
        fresh = WandaPruner().prune(dense[n], accs[n].result(), choice.sparsity, choice.pattern)
        assert torch.equal(adapter.get_weight(m), fresh.weight), n


def test_restore_is_bit_identical_after_fitness_and_verification() -> None:
    ev = _evaluator()
    before = _state(ev)
    ev.fitness(_plan(ev))
    ev.fitness(_plan(ev, 0.7, seed=1))
    ev.restore()
    assert all(torch.equal(v, before[k]) for k, v in ev.loaded.model.state_dict().items())
    cal = DataConfig("embedded", 2, 32, 0)
    verify(ev, _plan(ev), VerifyConfig("sparsegpt", cal, seqlen=32, nsamples=3))
    assert all(torch.equal(v, before[k]) for k, v in ev.loaded.model.state_dict().items())
    with ev:
        ev.apply(_plan(ev))
    assert all(torch.equal(v, before[k]) for k, v in ev.loaded.model.state_dict().items())


def test_fidelity_steps_are_prefix_perplexities() -> None:
    ev = _evaluator()
    plan = _plan(ev)
    steps = list(ev.iter_fitness(plan))
    assert [(s.fidelity, s.tokens, s.windows) for s in steps] == [(64, 64, 2), (160, 160, 5)]
    for s in steps:
        ref = perplexity(ev.loaded.model, ev.windows[: s.windows], progress=False)
        assert math.isclose(s.value, ref.ppl, rel_tol=1e-6)
    # An in-between fidelity is answered at whole windows (a prefix of 3 windows).
    assert math.isclose(ev.fitness(plan, fidelity=70),
                        perplexity(ev.loaded.model, ev.windows[:3], progress=False).ppl, rel_tol=1e-6)
    with pytest.raises(ValueError, match="above this evaluator's largest"):
        ev.fitness(plan, fidelity=161)


def test_a_large_batch_stops_at_each_rung() -> None:
    """Batches of 8 windows still answer the 64-token rung after 2 windows: a trial pruned
    there has cost 2 windows, not 8."""
    ev = _evaluator(config=EvaluatorConfig(seqlen=32, fidelities=(64, 160), batch_size=8))
    seen: list[int] = []
    hook = ev.loaded.model.register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(int(kw["input_ids"].shape[0])), with_kwargs=True)
    steps = ev.iter_fitness(_plan(ev))
    first = next(steps)
    assert (first.tokens, seen) == (64, [2])
    steps.close()
    hook.remove()


def test_verification_equals_the_pipeline_on_a_fresh_model() -> None:
    ev = _evaluator()
    plan = _plan(ev, 0.5)
    cal = DataConfig("embedded", 2, 32, 0)
    v = verify(ev, plan, VerifyConfig("wanda", cal, seqlen=32, nsamples=4))
    lm = tiny_loaded("llama")
    report = prune_with_plan(lm, plan, "wanda", cal, progress=False)
    ref = evaluate_perplexity(lm, seqlen=32, nsamples=4, progress=False)
    assert v.ppl == pytest.approx(ref.ppl, rel=1e-9)
    assert v.achieved_sparsity == pytest.approx(report.overall, abs=1e-12)
    assert abs(v.achieved_sparsity - 0.5) < 1e-3  # tiny layers round to whole weights


def test_kl_is_zero_for_dense_and_exact_when_topk_is_the_vocabulary() -> None:
    ev = _evaluator(config=EvaluatorConfig(fitness="kl", seqlen=32, fidelities=(64, 128), topk=8))
    assert ev.fitness(None) == pytest.approx(0.0, abs=1e-6)
    plan = _plan(ev)
    assert ev.fitness(plan) > 0
    # With k = the whole vocabulary, the cached KL is the exact KL(dense || pruned).
    ev.restore()
    windows = ev.windows[:4]
    with torch.no_grad():
        dense_lp = torch.log_softmax(ev.loaded.model(input_ids=windows).logits[:, :-1], -1)
        full = KLFitness(dense_reference(ev.loaded.model, windows, topk=128))
        ev.apply(plan)
        logits = ev.loaded.model(input_ids=windows).logits
    full.update(logits, windows, 0)
    pruned_lp = torch.log_softmax(logits[:, :-1], -1)
    exact = (dense_lp.exp() * (dense_lp - pruned_lp)).sum(-1).mean()
    # (float32 noise in the empty "rest" bucket is ~1e-7 per token)
    assert full.value() == pytest.approx(float(exact), abs=2e-6)
    # Top-k merging can only lower the divergence.
    top8 = KLFitness(dense_reference_from(dense_lp, 8))
    top8.update(logits, windows, 0)
    assert 0 < top8.value() <= full.value() + 1e-7


def dense_reference_from(logprobs: torch.Tensor, k: int):  # type: ignore[no-untyped-def]
    from allocsearch.evaluate.fitness import DenseReference

    top = logprobs.topk(k, dim=-1)
    return DenseReference(top.values, top.indices.to(torch.int32))


def test_nm_plans_apply_through_the_cache() -> None:
    ev = _evaluator()
    ident = identity_from_adapter(ev.loaded.adapter, ev.loaded.name)
    mlp = {n: Pattern(2, 4) for n in ident.shapes if ".mlp." in n}
    plan = plan_from_values(ident, 0.5, [0.5] * len(ident.shapes), patterns=mlp)
    ev.apply(plan)
    layers = ev.loaded.adapter.prunable_layers()
    for n in mlp:
        w = ev.loaded.adapter.get_weight(layers[n])
        assert ((w != 0).reshape(w.shape[0], -1, 4).sum(-1) == 2).all(), n
    # The Wanda N:M mask on the profile's statistics, exactly.
    n = next(iter(mlp))
    ref = WandaPruner().prune(ev.backend.dense[n], LayerStats(1, ev.profile.sq_norm[n]), None, "2:4")
    assert torch.equal(ev.loaded.adapter.get_weight(layers[n]), ref.weight)


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="increasing"):
        EvaluatorConfig(fidelities=(8192, 2048))
    with pytest.raises(ValueError, match="unknown fitness"):
        EvaluatorConfig(fitness="accuracy")
    with pytest.raises(ValueError, match="masks: database"):
        EvaluatorConfig(pruner="sparsegpt")
    with pytest.raises(ValueError, match="unknown masks"):
        EvaluatorConfig(masks="bitmaps")
    with pytest.raises(ValueError, match="unknown pruner"):
        EvaluatorConfig(masks="database", pruner="obc")
    with pytest.raises(ValueError, match="levels must lie"):
        EvaluatorConfig(masks="database", pruner="sparsegpt", levels=(0.5, 1.2))
    with pytest.raises(ValueError, match="holds"):
        _evaluator(config=EvaluatorConfig(seqlen=32, fidelities=(10**9,)))
    ev = _evaluator()
    other = _evaluator("gpt2")
    with pytest.raises(PlanError, match="plan is for another model"):
        ev.apply(_plan(other))


def test_an_evaluator_refuses_a_model_another_left_written() -> None:
    a = _evaluator()
    lm, prof = a.loaded, a.profile
    before = _state(a)
    plan = _plan(a)
    a.fitness(plan)  # leaves the plan written
    assert lm.written_by is a
    with pytest.raises(ValueError, match="restore"):
        Evaluator(lm, prof, CONFIG, progress=False)
    with pytest.raises(ValueError, match="restore"):
        Evaluator.build(lm, CONFIG, progress=False)  # refused before profiling pruned weights
    with pytest.raises(ValueError, match="restore"):
        Evaluator(lm.clone(), prof, CONFIG, progress=False)  # the copy holds the plan too
    a.restore()
    assert lm.written_by is None
    b = Evaluator(lm, prof, CONFIG, progress=False)
    assert all(torch.equal(b.backend.dense[n], w) for n, w in a.backend.dense.items())
    b.apply(plan)
    written = _state(b)
    # a's backend would rewrite only the layers it thinks changed, over b's plan
    with pytest.raises(RuntimeError, match="restore"):
        a.apply(_plan(a, 0.7, seed=1))
    with pytest.raises(RuntimeError, match="restore"):
        a.restore()
    b.restore()
    assert all(torch.equal(v, before[k]) for k, v in lm.model.state_dict().items())
    a.apply(plan)
    assert all(torch.equal(v, written[k]) for k, v in lm.model.state_dict().items())
    a.close()
    assert lm.written_by is None
