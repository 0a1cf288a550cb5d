"""Allocation from measured block loss curves: the cheapest plan under an additive model.

A :class:`BlockCurves` holds, for every transformer block ``b`` and level ``s``, the rise in
log-perplexity (or KL) when block ``b`` alone is pruned at ``s`` and every other block stays dense
(measured by :func:`allocsearch.evaluate.sensitivity.measure_block_curves`). Taking damage as
additive over blocks, the best plan at a target minimises ``sum_b C_b(s_b)`` subject to the
parameter budget; :func:`curve_allocation` solves it exactly on a grid by dynamic
programming over the budget, the per-block form of SPDY's and OBC's dynamic programmes.

Damage is not additive at high sparsity: pruning many blocks hard compounds. So
:func:`curve_plan` can ``mix`` the curve allocation with a smooth prior's block sparsities
(``mix = 1``: the curves alone; ``0``: the prior alone) before the exact budget projection;
the mix is chosen on the search split like any prior parameter.

Curves can also be measured *around* a plan at the target (``around``: block ``b`` moved to
each level, every other block at that plan's sparsities): the damage of one more (or less)
sparsity in one block when the rest is already pruned, the marginal cost at the operating
point rather than in a dense model. Their levels bound the allocation from below (nothing is
known under the lowest), and the programme is the same.

The curves are plain data with a schema version: a study saves them beside its trials.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from allocsearch.budget import DEFAULT_BOUNDS, plan_from_values
from allocsearch.plan import ModelIdentity, Plan, block_of

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class BlockCurves:
    """``delta[b][j]``: the damage when only block ``b`` is pruned at ``levels[j]``, over the
    dense model's (on ``tokens`` search tokens of ``fitness``: log-perplexity for ``ppl``, the
    KL itself for ``kl``); ``model``: the fingerprint of the model measured."""

    levels: tuple[float, ...]
    delta: tuple[tuple[float, ...], ...]
    tokens: int
    fitness: str = "ppl"
    model: str = ""
    seconds: float = 0.0  # the wall time of their measurement (0: not recorded)
    around: str = ""  # the label of the plan they were measured around ("": the dense model)

    def __post_init__(self) -> None:
        lv = list(self.levels)
        if not lv or lv != sorted(set(lv)) or lv[0] <= 0.0 or lv[-1] >= 1.0:
            raise ValueError(f"levels must increase strictly within (0, 1), got {lv}")
        if not self.delta or any(len(row) != len(lv) for row in self.delta):
            raise ValueError(f"delta needs one row of {len(lv)} values per block")

    @property
    def num_blocks(self) -> int:
        return len(self.delta)

    @property
    def tokens_read(self) -> int:
        """Search tokens their measurement read: one fitness per (block, level) and the dense one."""
        return (self.num_blocks * len(self.levels) + 1) * self.tokens

    @property
    def floor(self) -> float:
        """The lowest sparsity the curves describe: 0 (the dense model) for curves from dense,
        the lowest level for curves around a plan."""
        return self.levels[0] if self.around else 0.0

    def cost(self, grid: NDArray[np.float64]) -> NDArray[np.float64]:
        """(blocks, len(grid)): each block's curve on ``grid`` (from :attr:`floor`), linear
        between levels, made non-decreasing (a noisy dip never makes pruning more look free);
        curves from dense start at 0 at sparsity 0."""
        start = () if self.around else (0.0,)  # curves from dense: no damage at sparsity 0
        lv = np.array([*start, *self.levels])
        rows = [np.maximum.accumulate(np.array([*start, *row])) for row in self.delta]
        return np.stack([np.interp(grid, lv, row) for row in rows])

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "levels": list(self.levels),
                "delta": [list(r) for r in self.delta], "tokens": self.tokens,
                "fitness": self.fitness, "model": self.model, "seconds": self.seconds,
                "around": self.around}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlockCurves:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"block curves of schema {data.get('schema_version')!r}; "
                             f"this version reads {SCHEMA_VERSION}")
        return cls(tuple(float(v) for v in data["levels"]),
                   tuple(tuple(float(v) for v in row) for row in data["delta"]),
                   int(data["tokens"]), str(data["fitness"]), str(data.get("model", "")),
                   float(data.get("seconds", 0.0)), str(data.get("around", "")))


def curve_allocation(curves: BlockCurves, target: float, weights: Sequence[float], *,
                     step: float = 0.01, bounds: tuple[float, float] = DEFAULT_BOUNDS) -> NDArray[np.float64]:
    """(blocks,) block sparsities on a ``step`` grid within ``bounds`` (at most the last
    measured level, at least the curves' :attr:`~BlockCurves.floor`) minimising the summed
    curves at the ``weights``-weighted budget ``target`` (weights: each block's prunable
    parameters), by an exact dynamic programme over the budget
    in grid units: each block's weight is rounded to a multiple of the smallest, so models of
    equal blocks are solved exactly. The grid meets the budget to within half a grid unit;
    :func:`curve_plan` projects to the exact budget."""
    w = np.asarray(weights, dtype=np.float64)  # (blocks,)
    if w.shape != (curves.num_blocks,) or np.any(w <= 0):
        raise ValueError(f"need {curves.num_blocks} positive block weights, got {w.shape}")
    top = min(bounds[1], curves.levels[-1])
    bottom = max(bounds[0], curves.floor)
    if not bottom <= target <= top:
        raise ValueError(f"target {target} lies outside [{bottom}, {top}] "
                         "(the bounds and the measured levels)")
    lo = int(np.ceil(bottom / step - 1e-9))
    hi = int(np.floor(top / step + 1e-9))
    grid = step * np.arange(lo, hi + 1, dtype=np.float64)  # (G,)
    cost = curves.cost(grid)  # (blocks, G)
    units = np.rint(w / w.min()).astype(np.int64)  # (blocks,) block sizes in smallest-block units
    # State: the summed grid index x units over the blocks so far; cost inf where unreachable.
    size = int(units.sum() * hi) + 1
    best = np.full(size, np.inf)
    best[0] = 0.0
    picks = np.zeros((curves.num_blocks, size), dtype=np.int64)
    for b in range(curves.num_blocks):
        options = np.full((len(grid), size), np.inf)  # (G, states)
        for g in range(len(grid)):
            shift = int(units[b] * (lo + g))
            options[g, shift:] = best[: size - shift] + cost[b, g]
        picks[b] = np.argmin(options, axis=0)
        best = options[picks[b], np.arange(size)]
    goal = target / step * units.sum()
    reachable = np.flatnonzero(np.isfinite(best))
    state = int(reachable[np.argmin(np.abs(reachable - goal) * 1e6 + best[reachable])])
    out = np.zeros(curves.num_blocks)
    for b in reversed(range(curves.num_blocks)):
        g = int(picks[b, state])
        out[b] = grid[g]
        state -= int(units[b] * (lo + g))
    return out


def curve_plan(identity: ModelIdentity, curves: BlockCurves, target: float, *,
               prior: Plan | None = None, mix: float = 1.0,
               bounds: tuple[float, float] = DEFAULT_BOUNDS) -> Plan:
    """The plan at ``target`` whose block sparsities are ``mix`` x the curve allocation plus
    ``1 - mix`` x ``prior``'s (every module of a block at its block's value), projected to
    the exact budget."""
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"mix must lie in [0, 1], got {mix}")
    if curves.num_blocks != identity.num_blocks:
        raise ValueError(f"curves of {curves.num_blocks} blocks for a model of {identity.num_blocks}")
    weights = [0.0] * identity.num_blocks
    for name in identity.shapes:
        weights[block_of(name)] += identity.numel(name)
    blocks = curve_allocation(curves, target, weights, bounds=bounds)
    if mix < 1.0:
        if prior is None:
            raise ValueError("a mix below 1 needs a prior plan")
        blocks = mix * blocks + (1.0 - mix) * np.asarray(prior.block_sparsity())
    values = {n: float(blocks[block_of(n)]) for n in identity.shapes}
    record = {"method": "curves", "params": {"mix": mix, "prior": (prior.provenance if prior else None)},
              "curves": {"levels": list(curves.levels), "tokens": curves.tokens,
                         **({"around": curves.around} if curves.around else {})}}
    return plan_from_values(identity, target, values, bounds=bounds, provenance=record)
