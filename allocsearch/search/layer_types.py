"""Per-block layer types ``only where the budget allows``: undo the choices it cannot absorb.

A block kept dense (sparsity 0) or given an N:M pattern (sparsity n/m) is *pinned*; the
unpinned modules must absorb the rest of the budget within the space's bounds. Random
per-block choices at a high target pin too much (at 70% on a 30-block model, a block in four
kept dense already needs the rest near 95%), and an infeasible trial teaches a sampler little.
So rather than failing the trial, pins are undone one block at a time (that block goes back
to unstructured) until the target is reachable: the pins furthest from the target first
(dense before 2:4 when the target is too high), and among equal pins the block whose offset
asks for the most sparsity (it wanted to be pruned harder anyway).
"""

from __future__ import annotations

from collections.abc import Mapping

from allocsearch.plan import ModelIdentity, block_of


def repair_layer_types(
    identity: ModelIdentity,
    target: float,
    pins: Mapping[int, float],
    offsets: Mapping[int, float],
    bounds: tuple[float, float],
) -> dict[int, float]:
    """The subset of ``pins`` (block -> pinned sparsity) that keeps ``target`` reachable.

    Unpinned modules range over ``bounds``; ``offsets`` (block -> offset, 0 when absent) break
    ties. Returns ``pins`` itself when it is feasible; may return an empty dict.
    """
    mass: dict[int, float] = {}
    for n in identity.shapes:
        mass[block_of(n)] = mass.get(block_of(n), 0.0) + identity.numel(n)
    total = sum(mass.values())
    kept = dict(pins)

    def reach() -> tuple[float, float]:
        lo = sum(m * kept.get(b, bounds[0]) for b, m in mass.items()) / total
        hi = sum(m * kept.get(b, bounds[1]) for b, m in mass.items()) / total
        return lo, hi

    lo, hi = reach()
    while kept and not lo - 1e-12 <= target <= hi + 1e-12:
        too_high = target > hi  # too much kept dense (or at 50%) for the target
        # Too high: undo the least sparse pin, the block with the largest offset first.
        # Too low: undo the sparsest pin, the block with the smallest offset first.
        sign = 1.0 if too_high else -1.0
        b = min(kept, key=lambda k: (sign * kept[k], -sign * offsets.get(k, 0.0), k))
        del kept[b]
        lo, hi = reach()
    return kept
