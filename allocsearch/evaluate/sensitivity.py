"""Measure each block's loss curve with the Evaluator: block ``b`` alone pruned at each level.

One fitness evaluation per (block, level) on the search split, through the Evaluator's own
masks (cached ranks or a level database), so the curves see exactly the damage the search's
fitness sees. For SmolLM2-135M (30 blocks) at the 8 default levels that is 240 evaluations:
count their tokens against a search that starts from these curves
(:mod:`allocsearch.allocation.curves`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from tqdm.auto import tqdm

from allocsearch.allocation.curves import BlockCurves
from allocsearch.evaluate.evaluator import Evaluator
from allocsearch.plan import ModelIdentity, ModuleChoice, Plan, block_of

DEFAULT_CURVE_LEVELS = (0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def single_block_plan(identity: ModelIdentity, block: int, level: float) -> Plan:
    """Every module of ``block`` at ``level``, every other module dense; the plan's target is
    the budget this reaches."""
    modules = {n: ModuleChoice(level if block_of(n) == block else 0.0) for n in identity.shapes}
    plan = Plan(identity, 0.0, modules, {"method": "single_block", "block": block, "level": level})
    plan.target = plan.budget()
    plan.validate()
    return plan


def _rise(fitness: str, value: float, dense: float) -> float:
    """The damage of ``value`` over the dense model's: in log space for perplexity (a ratio,
    additive over blocks), as is for KL (already a log-ratio, 0 when dense)."""
    return math.log(value) - math.log(dense) if fitness == "ppl" else value - dense


def measure_block_curves(ev: Evaluator, identity: ModelIdentity,
                         levels: Sequence[float] = DEFAULT_CURVE_LEVELS, *,
                         tokens: int | None = None, progress: bool = True) -> BlockCurves:
    """The curves of every block at ``levels`` with ``tokens`` search tokens each (the
    Evaluator's first fidelity by default); the dense weights are back afterwards."""
    tokens = tokens or ev.config.fidelities[0]
    dense = ev.fitness(None, tokens)
    rows = []
    bar = tqdm(total=identity.num_blocks * len(levels), desc="block curves", disable=not progress,
               unit="eval")
    try:
        for block in range(identity.num_blocks):
            row = []
            for level in levels:
                value = ev.fitness(single_block_plan(identity, block, level), tokens)
                row.append(_rise(ev.config.fitness, value, dense))
                bar.update(1)
            rows.append(tuple(row))
    finally:
        bar.close()
        ev.restore()
    return BlockCurves(tuple(float(v) for v in levels), tuple(rows), tokens, ev.config.fitness,
                       identity.fingerprint)
