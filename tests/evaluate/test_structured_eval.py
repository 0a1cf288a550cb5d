"""The Evaluator on structured plans: cheap masked fitness equals the physically smaller
model's, hooks come and go with plans, verification prunes a copy, latency is per shape."""

from __future__ import annotations

import copy
import math

import torch

from allocsearch.actions import BlockAction
from allocsearch.budget import plan_from_actions, plan_from_values
from allocsearch.evaluate import (
    Evaluator,
    EvaluatorConfig,
    LatencyConfig,
    PlanLatency,
    VerifyConfig,
    perplexity,
    verify,
)
from allocsearch.models import LoadedModel, ModelAdapter
from allocsearch.structure import remove_structure, select_structure
from tests.helpers import tiny_evaluator

CONFIG = EvaluatorConfig(seqlen=32, fidelities=(64, 160), topk=8, batch_size=2)
ACTIONS = {0: BlockAction(heads=2, mlp_channels=20), 1: BlockAction(drop="attention")}


def _state(ev: Evaluator) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in ev.loaded.model.state_dict().items()}


def test_masked_fitness_equals_the_physically_pruned_model() -> None:
    ev = tiny_evaluator(CONFIG)
    plan = plan_from_actions(ev.identity, ACTIONS)
    fit = ev.fitness(plan)
    ev.restore()
    model = copy.deepcopy(ev.loaded.model)
    small = LoadedModel(model, ev.loaded.tokenizer, ModelAdapter(model), "copy", torch.device("cpu"))
    remove_structure(small, select_structure(plan.structured(), ev.profile, small.adapter))
    ref = perplexity(model, ev.windows[:5], batch_size=2, progress=False).ppl
    assert math.isclose(fit, ref, rel_tol=1e-5)


def test_structured_then_unstructured_plans_leave_no_hooks_behind() -> None:
    ev = tiny_evaluator(CONFIG)
    dense = ev.fitness(None)
    before = _state(ev)
    structured = plan_from_actions(ev.identity, ACTIONS)
    unstructured = plan_from_values(ev.identity, 0.5, [0.5] * len(ev.identity.shapes))
    a = ev.fitness(structured)
    b = ev.fitness(unstructured)
    assert ev.fitness(structured) == a and ev.fitness(unstructured) == b
    assert a != dense and b != dense
    assert ev.fitness(None) == dense
    ev.close()
    after = _state(ev)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_mixed_plan_masks_structure_and_prunes_the_rest() -> None:
    ev = tiny_evaluator(CONFIG)
    plan = plan_from_values(ev.identity, 0.5, [0.5] * len(ev.identity.shapes),
                            blocks={1: BlockAction(drop="mlp")})
    assert plan.blocks and abs(plan.budget() - 0.5) < 1e-6
    assert all(c.sparsity == 1.0 for n, c in plan.modules.items() if "layers.1.mlp" in n)
    attn0 = plan.modules["model.layers.0.self_attn.q_proj"].sparsity
    assert 0.0 < attn0 < 0.95  # the unstructured rest absorbs what the dropped MLP leaves
    assert math.isfinite(ev.fitness(plan))


def test_verify_prunes_a_copy_physically_and_keeps_the_model() -> None:
    ev = tiny_evaluator(CONFIG)
    before = _state(ev)
    plan = plan_from_actions(ev.identity, {1: BlockAction(drop="block")})
    result = verify(ev, plan, VerifyConfig("wanda", seqlen=32, nsamples=4))
    assert math.isfinite(result.ppl) and abs(result.achieved_sparsity - 0.5) < 1e-12
    assert ev.loaded.adapter.num_blocks == 2
    after = _state(ev)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_latency_is_measured_once_per_shape() -> None:
    ev = tiny_evaluator(CONFIG)
    cfg = LatencyConfig(prefill=16, prompt=4, decode=4, repeats=1)
    timer = PlanLatency(ev, cfg)
    a = timer.measure(plan_from_actions(ev.identity, {1: BlockAction(drop="block")}))
    assert a.decode_tok_s > 0 and a.prefill_tok_s > 0
    dense = timer.measure(None)
    assert dense.params > a.params
    again = timer.measure(plan_from_actions(ev.identity, {1: BlockAction(drop="block")}))
    assert again is a
    assert len(timer.cache.measured) == 2
