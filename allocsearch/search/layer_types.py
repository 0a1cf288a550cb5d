"""Per-block pins ``only where the budget allows``: undo the choices it cannot absorb.

A block kept dense (sparsity 0), given an N:M pattern (sparsity n/m), or given a structured
action (a dropped block or sub-block removes 1.0 of its modules, a narrowed one its share)
is *pinned*; the unpinned modules must absorb the rest of the budget within their bounds.
Random per-block choices at a high target pin too much (at 70% on a 30-block model, a block
in four kept dense already needs the rest near 95%), and an infeasible trial teaches a
sampler little. So rather than failing the trial, pins are undone one block at a time (that
block goes back to unstructured) until the target is reachable: the pins furthest from the
target first (dense before 2:4 when the target is too high, drops first when it is too low),
and among equal pins the block whose offset asks for the most sparsity (too high) or the
least (too low).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from allocsearch.plan import ModelIdentity, block_of

P = TypeVar("P", float, Mapping[str, float])


def repair_layer_types(
    identity: ModelIdentity,
    target: float,
    pins: Mapping[int, P],
    offsets: Mapping[int, float],
    bounds: tuple[float, float],
    module_bounds: Mapping[str, tuple[float, float]] | None = None,
) -> dict[int, P]:
    """The subset of ``pins`` that keeps ``target`` reachable.

    A pin is a block's sparsity (every module of the block) or a mapping module -> sparsity
    (only those modules). Unpinned modules range over ``module_bounds`` (``bounds`` when a
    module has none); ``offsets`` (block -> offset, 0 when absent) break ties. Returns
    ``pins`` itself when it is feasible; may return an empty dict.
    """
    per_block: dict[int, list[str]] = {}
    for n in identity.shapes:
        per_block.setdefault(block_of(n), []).append(n)
    total = float(sum(identity.numel(n) for n in identity.shapes))
    limits = {n: (module_bounds or {}).get(n, bounds) for n in identity.shapes}
    kept = dict(pins)

    def pinned(b: int) -> dict[str, float]:
        pin = kept.get(b)
        if pin is None:
            return {}
        if isinstance(pin, Mapping):
            return dict(pin)
        return {n: float(pin) for n in per_block.get(b, [])}

    def level(b: int) -> float:
        """A pin's parameter-weighted sparsity over the modules it pins."""
        vals = pinned(b)
        mass = sum(identity.numel(n) for n in vals)
        return sum(v * identity.numel(n) for n, v in vals.items()) / max(mass, 1)

    def reach() -> tuple[float, float]:
        fixed: dict[str, float] = {}
        for b in kept:
            fixed.update(pinned(b))
        lo = sum(identity.numel(n) * fixed.get(n, limits[n][0]) for n in identity.shapes) / total
        hi = sum(identity.numel(n) * fixed.get(n, limits[n][1]) for n in identity.shapes) / total
        return lo, hi

    lo, hi = reach()
    while kept and not lo - 1e-12 <= target <= hi + 1e-12:
        too_high = target > hi  # too much kept dense (or at 50%) for the target
        # Too high: undo the least sparse pin, the block with the largest offset first.
        # Too low: undo the sparsest pin, the block with the smallest offset first.
        sign = 1.0 if too_high else -1.0
        b = min(kept, key=lambda k: (sign * level(k), -sign * offsets.get(k, 0.0), k))
        del kept[b]
        lo, hi = reach()
    return kept
