"""Measure each block's loss curve with the Evaluator: block ``b`` alone pruned at each level.

One fitness evaluation per (block, level) on the search split, through the Evaluator's own
masks (cached ranks or a level database), so the curves see exactly the damage the search's
fitness sees. For SmolLM2-135M (30 blocks) at the 8 default levels that is 240 evaluations:
count their tokens against a search that starts from these curves
(:mod:`allocsearch.allocation.curves`). Measured :class:`Around` a plan at the target, every
other block stays at that plan's sparsities instead of dense (the marginal damage where the
search operates)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from allocsearch.allocation.curves import BlockCurves, curve_plan
from allocsearch.evaluate.evaluator import Evaluator
from allocsearch.evaluate.reference import ReferencePlan
from allocsearch.io import atomic_write_json
from allocsearch.models.loading import default_cache_dir
from allocsearch.plan import ModelIdentity, ModuleChoice, Plan, block_of

log = logging.getLogger(__name__)

DEFAULT_CURVE_LEVELS = (0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
#: Levels for curves around a plan: the allocation stays within them, so they reach low.
AROUND_CURVE_LEVELS = (0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


@dataclass(frozen=True)
class Around:
    """The plan block curves are measured around, with the label they record."""

    label: str
    plan: Plan

    @staticmethod
    def reference(raw: str, ev: Evaluator, target: float) -> Around:
        """An allocator's plan at ``target`` (``"uniform"``, ``"ramp slope=0.1"``: the
        reference spellings), as the Evaluator writes it."""
        ref = ReferencePlan.parse(raw)
        return Around(ref.label, ev.prepare(ref.plan(ev.profile, target)))


def single_block_plan(identity: ModelIdentity, block: int, level: float, base: Plan | None = None) -> Plan:
    """Every module of ``block`` at ``level``, every other module at ``base``'s sparsity (dense
    without one); the plan's target is the budget this reaches."""
    modules = {n: ModuleChoice(level if block_of(n) == block else
                               (base.modules[n].sparsity if base is not None else 0.0))
               for n in identity.shapes}
    plan = Plan(identity, 0.0, modules, {"method": "single_block", "block": block, "level": level})
    plan.target = plan.budget()
    plan.validate()
    return plan


def _rise(fitness: str, value: float, dense: float) -> float:
    """The damage of ``value`` over the dense model's: in log space for perplexity (a ratio,
    additive over blocks), as is for KL (already a log-ratio, 0 when dense)."""
    return math.log(value) - math.log(dense) if fitness == "ppl" else value - dense


def backend_levels(ev: Evaluator, levels: Sequence[float]) -> tuple[float, ...]:
    """``levels`` as the Evaluator's backend can write them: each moved to the nearest pruned
    level of a level database's grid (duplicates dropped); as they are for cached ranks."""
    grid = getattr(ev.backend, "grid", None)
    if grid is None:
        return tuple(float(v) for v in levels)
    pruned = grid.pruned
    return tuple(sorted({min(pruned, key=lambda g: abs(g - v)) for v in levels}))


def measure_block_curves(ev: Evaluator, identity: ModelIdentity,
                         levels: Sequence[float] = DEFAULT_CURVE_LEVELS, *,
                         tokens: int | None = None, progress: bool = True,
                         around: Around | None = None) -> BlockCurves:
    """The curves of every block at ``levels`` (on a level database: its nearest grid levels,
    :func:`backend_levels`) with ``tokens`` search tokens each (the Evaluator's first fidelity
    by default), from the dense model or ``around`` a plan (the rise over that plan's
    fitness); the dense weights are back afterwards."""
    tokens = tokens or ev.config.fidelities[0]
    levels = backend_levels(ev, levels)
    base = around.plan if around is not None else None
    start = time.perf_counter()
    base_fitness = ev.fitness(base, tokens)  # the dense model's without ``around``
    rows = []
    bar = tqdm(total=identity.num_blocks * len(levels), desc="block curves", disable=not progress,
               unit="eval")
    try:
        for block in range(identity.num_blocks):
            row = []
            for level in levels:
                value = ev.fitness(single_block_plan(identity, block, level, base), tokens)
                row.append(_rise(ev.config.fitness, value, base_fitness))
                bar.update(1)
            rows.append(tuple(row))
    finally:
        bar.close()
        ev.restore()
    return BlockCurves(tuple(float(v) for v in levels), tuple(rows), tokens, ev.config.fitness,
                       identity.fingerprint, time.perf_counter() - start,
                       around.label if around is not None else "")


def curves_key(ev: Evaluator, levels: Sequence[float], tokens: int, around: Around | None = None) -> str:
    """What decides the curves: the profile (model weights and calibration), the Evaluator's
    settings and anchor, the device and dtype its fitness runs on, the levels and tokens, and
    the plan they are measured around (absent from the key of curves from dense, so that
    those keep their key)."""
    p = next(ev.loaded.model.parameters())
    anchor = ev.anchor_plan.to_dict() if ev.anchor_plan is not None else None
    fields = {"profile": ev.profile.key, "evaluator": ev.config.to_dict(), "anchor": anchor,
              "device": p.device.type, "dtype": str(p.dtype), "levels": [float(v) for v in levels],
              "tokens": tokens}
    if around is not None:
        fields["around"] = {"label": around.label,
                            "sparsity": {n: c.sparsity for n, c in sorted(around.plan.modules.items())}}
    raw = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def cached_block_curves(ev: Evaluator, levels: Sequence[float] | None = None, *,
                        tokens: int | None = None, progress: bool = True,
                        around: Around | None = None) -> BlockCurves:
    """:func:`measure_block_curves`, kept in the cache folder (``block_curves/<key>.json``) so
    that the studies of one model and Evaluator measure them once; ``levels`` by default
    :data:`DEFAULT_CURVE_LEVELS`, or :data:`AROUND_CURVE_LEVELS` for curves ``around`` a plan."""
    if levels is None:
        levels = AROUND_CURVE_LEVELS if around is not None else DEFAULT_CURVE_LEVELS
    tokens = tokens or ev.config.fidelities[0]
    key = curves_key(ev, levels, tokens, around)
    path = (ev.cache_dir or default_cache_dir()) / "block_curves" / f"{key}.json"
    if path.is_file():
        try:
            curves = BlockCurves.from_dict(json.loads(path.read_text()))
            log.info("reusing cached block curves %s", path)
            return curves
        except (ValueError, KeyError, TypeError) as exc:  # a damaged entry: measure again
            log.warning("cached block curves %s are unreadable (%s); measuring them again", path, exc)
    curves = measure_block_curves(ev, ev.identity, levels, tokens=tokens, progress=progress, around=around)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, curves.to_dict())
    return curves


@dataclass(frozen=True)
class CurveMix:
    """One mix of the curves allocation with a prior: the plan as the Evaluator writes it
    (snapped to a level database's grid) and its full-fidelity fitness on the search split."""

    mix: float
    plan: Plan
    fitness: float


def curve_mixes(ev: Evaluator, curves: BlockCurves, target: float, prior: Plan | None,
                mixes: Sequence[float]) -> list[CurveMix]:
    """Each ``mixes`` share of :func:`~allocsearch.allocation.curves.curve_plan` at ``target``
    (``prior``'s block sparsities for the rest; None only with every mix 1), prepared and
    scored, in the order given; the dense weights are back afterwards. The lowest fitness
    is the mix to take: it is chosen on the search split alone."""
    out = []
    try:
        for mix in mixes:
            plan = ev.prepare(curve_plan(ev.identity, curves, target, prior=prior, mix=mix))
            out.append(CurveMix(float(mix), plan, ev.fitness(plan)))
    finally:
        ev.restore()
    return out
