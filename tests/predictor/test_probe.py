"""The window probe and its stack: a probe is exactly the Evaluator's fitness on one window
(the first one's equals the first-window fidelity; a later one's follows from two running
values), and the stack's weights are the within-study least squares, each study weighted by
the inverse variance of its labels (worked by hand below)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from allocsearch.budget import random_plan
from allocsearch.evaluate import EvaluatorConfig
from allocsearch.predictor.probe import ProbeStack, WindowProbe
from tests.helpers import tiny_evaluator

CONFIG = EvaluatorConfig(seqlen=32, fidelities=(64, 128), topk=8, batch_size=2)


def test_first_window_probe_is_the_first_window_fitness() -> None:
    ev = tiny_evaluator(CONFIG)
    plan = random_plan(ev.identity, 0.6, seed=1)
    for fitness in ("ppl", "kl"):
        probe = WindowProbe(ev, 0, fitness)
        assert probe(plan) == pytest.approx(ev.fitness(plan, fidelity=32, fitness=fitness), rel=1e-6)
    assert WindowProbe(ev, 0, "kl")(None) == pytest.approx(0.0, abs=1e-6)  # dense against itself
    assert WindowProbe(ev, 0).fitness == "ppl"  # the evaluator's by default
    assert WindowProbe(ev, 0).tokens == 32


def test_later_window_probe_is_that_window_alone() -> None:
    """Each window scores 31 next tokens, so the third window's mean NLL is 3 x the running one
    after three windows less 2 x the running one after two."""
    ev = tiny_evaluator(CONFIG)
    plan = random_plan(ev.identity, 0.5, seed=2)
    two, three = ev.fitness(plan, fidelity=64), ev.fitness(plan, fidelity=96)
    alone = math.exp(3 * math.log(three) - 2 * math.log(two))
    assert WindowProbe(ev, 2)(plan) == pytest.approx(alone, rel=1e-9)
    assert WindowProbe(ev, 2)(plan) != pytest.approx(WindowProbe(ev, 1)(plan), rel=1e-3)
    logs = WindowProbe(ev, 2).log_many([plan, plan])
    assert logs.shape == (2,) and logs[0] == pytest.approx(math.log(alone), rel=1e-9)


def test_a_window_the_evaluator_lacks_is_refused() -> None:
    ev = tiny_evaluator(CONFIG)  # 128 tokens: windows 0..3
    with pytest.raises(ValueError, match="not one of the evaluator's 4 search windows"):
        WindowProbe(ev, 4)
    with pytest.raises(ValueError, match="unknown fitness"):
        WindowProbe(ev, 0, "bleu")


def test_stack_recovers_weights_whatever_each_studys_offset() -> None:
    rng = np.random.default_rng(0)
    pred, probe = rng.normal(size=30), rng.normal(size=30)
    groups = ["a"] * 10 + ["b"] * 10 + ["c"] * 10
    offsets = np.repeat([0.0, 5.0, -3.0], 10)
    label = 2.0 * pred + 0.5 * probe + offsets
    stack = ProbeStack.fit(pred, probe, label, groups)
    assert (stack.model, stack.probe) == pytest.approx((2.0, 0.5), abs=1e-9)
    assert stack.score(pred, probe) == pytest.approx(label - offsets, abs=1e-9)


def test_each_study_counts_by_the_inverse_variance_of_its_labels() -> None:
    """Study A (labels 10x wider) follows the prediction, study B the probe. Rows scaled by
    1/sqrt(var) (A's labels' variance 50, B's 0.5): each column squares to 200/50 + 2/0.5 = 8
    and X'y = (4, 4), so the weights are (1/2, 1/2). Unweighted, X'X = 202 I and X'y =
    (200, 2): A would take 99% of the say."""
    up, down = np.array([1.0, -1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0, -1.0])
    pred, probe = np.r_[10 * up, up], np.r_[10 * down, down]
    label = np.r_[10 * up, down]
    stack = ProbeStack.fit(pred, probe, label, ["A"] * 4 + ["B"] * 4)
    assert (stack.model, stack.probe) == pytest.approx((0.5, 0.5), abs=1e-12)


def test_studies_that_cannot_order_anything_are_left_out() -> None:
    pred = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 7.0, 7.0, 7.0])
    probe = np.array([0.0, 1.0, 0.0, 1.0, 3.0, 3.0, 1.0, 2.0, 3.0])
    label = np.r_[pred[:4] + probe[:4], [9.0, -9.0], [4.0, 4.0, 4.0]]  # b: 2 plans; c: one label
    stack = ProbeStack.fit(pred, probe, label, ["a"] * 4 + ["b"] * 2 + ["c"] * 3)
    assert (stack.model, stack.probe) == pytest.approx((1.0, 1.0), abs=1e-12)
    with pytest.raises(ValueError, match="no study with 3 or more plans"):
        ProbeStack.fit(pred[4:], probe[4:], label[4:], ["b"] * 2 + ["c"] * 3)
    with pytest.raises(ValueError, match="one entry per plan"):
        ProbeStack.fit(pred, probe[:3], label, ["a"] * 9)


def test_stack_round_trips_and_refuses_other_data() -> None:
    stack = ProbeStack(0.4, 0.7)
    assert ProbeStack.from_dict(stack.to_dict()) == stack
    with pytest.raises(ValueError, match="not a probe stack"):
        ProbeStack.from_dict({"format": "allocsearch-damage", "schema_version": 1, "model": 1, "probe": 1})
