"""Budget projection: the one way every allocator and the search meet a sparsity target.

Given any per-module vector ``v`` (sparsities, or scores already mapped to sparsities), the
nearest vector in parameter-weighted L2 that meets the target exactly within per-module
bounds is ``clip(v + shift, lower, upper)`` for one scalar ``shift`` (the KKT conditions of
min sum_i n_i (x_i - v_i)^2 s.t. sum_i n_i x_i = target * sum_i n_i, lower <= x <= upper).
The shift is found by bisection; the last rounding residue is spread over unclipped modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from allocsearch.actions import BlockAction
from allocsearch.plan import ModelIdentity, ModuleChoice, Plan, PlanError, block_of
from allocsearch.pruners.pattern import UNSTRUCTURED, Pattern

DEFAULT_BOUNDS = (0.0, 0.95)


def project_to_budget(
    values: ArrayLike,
    weights: ArrayLike,
    target: float,
    lower: ArrayLike = DEFAULT_BOUNDS[0],
    upper: ArrayLike = DEFAULT_BOUNDS[1],
) -> NDArray[np.float64]:
    """The nearest vector to ``values`` whose ``weights``-weighted mean is ``target``."""
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    lo = np.broadcast_to(np.asarray(lower, dtype=np.float64), v.shape)
    hi = np.broadcast_to(np.asarray(upper, dtype=np.float64), v.shape)
    if v.shape != w.shape or v.ndim != 1 or v.size == 0:
        raise ValueError(f"values and weights must be equal-length 1-D, got {v.shape} and {w.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("values must be finite")
    if np.any(lo > hi) or np.any(w <= 0):
        raise ValueError("need lower <= upper and positive weights")
    total = w.sum()
    want = target * total
    lo_sum, hi_sum = float(w @ lo), float(w @ hi)
    if not (lo_sum - 1e-12 * total <= want <= hi_sum + 1e-12 * total):
        raise ValueError(
            f"target {target} is unreachable within the bounds "
            f"(weighted range [{lo_sum / total:.4f}, {hi_sum / total:.4f}])"
        )

    def mass(shift: float) -> float:
        return float(w @ np.clip(v + shift, lo, hi))

    a, b = float((lo - v).min()), float((hi - v).max())
    for _ in range(200):
        mid = 0.5 * (a + b)
        if mass(mid) < want:
            a = mid
        else:
            b = mid
    x = np.clip(v + 0.5 * (a + b), lo, hi)
    free = (x > lo) & (x < hi)
    if free.any():
        x[free] += (want - float(w @ x)) / w[free].sum()
        x = np.clip(x, lo, hi)
    return x


def identity_from_adapter(adapter: object, name: str) -> ModelIdentity:
    """The plan identity of a loaded model (``adapter`` is a ModelAdapter)."""
    from allocsearch.models.adapters import ModelAdapter

    assert isinstance(adapter, ModelAdapter)
    shapes = {
        n: (int(adapter.get_weight(m).shape[0]), int(adapter.get_weight(m).shape[1]))
        for n, m in adapter.prunable_layers().items()
    }
    return ModelIdentity(name, adapter.model_type, adapter.num_blocks, shapes,
                         structure=adapter.structure())


def projected_values(
    identity: ModelIdentity,
    target: float,
    values: Mapping[str, float] | Sequence[float],
    *,
    patterns: Mapping[str, Pattern] | None = None,
    fixed: Mapping[str, float] | None = None,
    bounds: tuple[float, float] = DEFAULT_BOUNDS,
    blocks: Mapping[int, BlockAction] | None = None,
    module_bounds: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, float]:
    """Per-module values projected to the exact budget (see :func:`plan_from_values`), without
    making a plan: for values that are not sparsities yet, such as structured shares still to
    be rounded to whole channels. ``module_bounds`` overrides ``bounds`` for some modules."""
    names = list(identity.shapes)
    vals = [values[n] for n in names] if isinstance(values, Mapping) else list(values)
    if len(vals) != len(names):
        raise ValueError(f"expected {len(names)} values, got {len(vals)}")
    pats = [(patterns or {}).get(n, UNSTRUCTURED) for n in names]
    held = dict(fixed or {}) | identity.implied(blocks or {})
    pinned = [p.sparsity if p.is_nm else held.get(n) for n, p in zip(names, pats, strict=True)]
    limits = [(f, f) if f is not None else (module_bounds or {}).get(n, bounds)
              for n, f in zip(names, pinned, strict=True)]
    start = np.array([f if f is not None else v for f, v in zip(pinned, vals, strict=True)])
    weights = np.array([identity.numel(n) for n in names], dtype=np.float64)
    x = project_to_budget(start, weights, target, [lo for lo, _ in limits], [hi for _, hi in limits])
    return dict(zip(names, (float(v) for v in x), strict=True))


def plan_from_values(
    identity: ModelIdentity,
    target: float,
    values: Mapping[str, float] | Sequence[float],
    *,
    patterns: Mapping[str, Pattern] | None = None,
    fixed: Mapping[str, float] | None = None,
    bounds: tuple[float, float] = DEFAULT_BOUNDS,
    provenance: Mapping[str, object] | None = None,
    blocks: Mapping[int, BlockAction] | None = None,
) -> Plan:
    """Project per-module values to the exact budget and wrap them as a validated Plan.

    Modules with an N:M pattern keep the pattern's sparsity, modules in ``fixed`` keep their
    given sparsity (0 = keep dense), modules of sub-blocks with a structured action in
    ``blocks`` keep the share it removes; the others absorb the rest.
    """
    x = projected_values(identity, target, values, patterns=patterns, fixed=fixed, bounds=bounds,
                         blocks=blocks)
    pats = patterns or {}
    modules = {n: ModuleChoice(x[n], pats.get(n, UNSTRUCTURED)) for n in identity.shapes}
    plan = Plan(identity, float(target), modules, dict(provenance or {}), dict(blocks or {}))
    plan.validate()
    return plan


def random_plan(
    identity: ModelIdentity,
    target: float,
    *,
    block_spread: float = 0.15,
    module_spread: float = 0.05,
    seed: int = 0,
    bounds: tuple[float, float] = DEFAULT_BOUNDS,
) -> Plan:
    """A random plan meeting ``target``: one uniform offset in +-``block_spread`` per block
    plus +-``module_spread`` per module, projected to the budget. Varied plans for
    benchmarks, predictor training data and tests."""
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-block_spread, block_spread, identity.num_blocks)
    names = list(identity.shapes)
    values = [
        target + offsets[block_of(n)] + rng.uniform(-module_spread, module_spread) for n in names
    ]
    prov = {"method": "random", "params": {"block_spread": block_spread,
                                           "module_spread": module_spread}, "seed": seed}
    return plan_from_values(identity, target, values, bounds=bounds, provenance=prov)


def plan_from_actions(
    identity: ModelIdentity,
    blocks: Mapping[int, BlockAction],
    *,
    requested: float | None = None,
    provenance: Mapping[str, object] | None = None,
) -> Plan:
    """A plan of structured actions alone (every other module dense). Its target is the
    budget the actions reach: heads and channels are whole units, so a ``requested`` target
    (kept in the provenance) is met to within one unit."""
    implied = identity.implied(blocks)
    modules = {n: ModuleChoice(float(implied.get(n, 0.0))) for n in identity.shapes}
    prov = dict(provenance or {})
    if requested is not None:
        prov["requested_target"] = requested
    plan = Plan(identity, 0.0, modules, prov, dict(blocks))
    plan.target = plan.budget()
    plan.validate()
    return plan


def snap_to_levels(plan: Plan, levels: Sequence[float]) -> Plan:
    """The plan with every module's sparsity on the level grid ``levels``, meeting the same
    target: each module goes to its nearest level, then single-level moves (one module one
    level up or down; the module furthest from its wish in that direction first) close the
    budget gap while each move shrinks it. With a grid step of ``s`` the gap left is at most
    ``s`` times the smallest module's share, usually zero (EvoPress's level switches keep it
    so). Raises PlanError for patterns or structured actions (no level holds them)."""
    if plan.structured() or any(c.pattern.is_nm for c in plan.modules.values()):
        raise PlanError("a level grid holds unstructured sparsities only: this plan has N:M "
                        "patterns or structured actions")
    grid = np.array(sorted(set(levels)), dtype=np.float64)
    names = list(plan.modules)
    wish = np.array([plan.modules[n].sparsity for n in names], dtype=np.float64)
    size = np.array([plan.model.numel(n) for n in names], dtype=np.float64)
    idx = np.abs(wish[:, None] - grid[None, :]).argmin(axis=1)
    want = plan.target * size.sum()
    eps = 1e-12 * size.sum()
    for _ in range(len(names) * len(grid)):
        gap = float(size @ grid[idx]) - want
        if abs(gap) <= eps:
            break
        step = -1 if gap > 0 else 1
        nxt = np.clip(idx + step, 0, len(grid) - 1)
        new_gap = np.abs(gap + size * (grid[nxt] - grid[idx]))
        ok = (nxt != idx) & (new_gap < abs(gap) - eps)
        if not ok.any():
            break
        # How far each module sits from its wish on the side the move goes against.
        pref = np.where(ok, (grid[idx] - wish) * -step, -np.inf)
        i = int(np.argmax(pref))
        idx[i] = nxt[i]
    modules = {n: ModuleChoice(float(grid[i])) for n, i in zip(names, idx, strict=True)}
    prov = dict(plan.provenance) | {"levels": [float(v) for v in grid]}
    out = Plan(plan.model, plan.target, modules, prov, {})
    try:
        out.validate()
    except PlanError as exc:
        raise PlanError(f"cannot meet target {plan.target} on the level grid: {exc}") from None
    return out
