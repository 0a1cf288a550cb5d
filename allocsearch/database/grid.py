"""The level grid of a database: the sparsities each module is stored at.

Level 0.0 (dense) is always on the grid, so a plan can keep any module dense; the other levels
are the sparsities the pruner is run at (EvoPress-style: a plan picks one level per module).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: dense, then 0.30 .. 0.95 in steps of 0.05
DEFAULT_LEVELS: tuple[float, ...] = (0.0, *(round(0.30 + 0.05 * i, 4) for i in range(14)))


@dataclass(frozen=True)
class LevelGrid:
    """Sorted, distinct sparsities in [0, 1), 0.0 included. Values are rounded to 1e-6 so a
    grid written as YAML or JSON reads back as the same grid."""

    levels: tuple[float, ...] = DEFAULT_LEVELS

    def __post_init__(self) -> None:
        vals = sorted({round(float(v), 6) for v in (0.0, *self.levels)})
        bad = [v for v in vals if not (math.isfinite(v) and 0.0 <= v < 1.0)]
        if bad:
            raise ValueError(f"levels must lie in [0, 1), got {bad}")
        if len(vals) < 2:
            raise ValueError("a level grid needs at least one sparsity besides dense (0.0)")
        object.__setattr__(self, "levels", tuple(vals))

    @classmethod
    def parse(cls, spec: str | Sequence[float]) -> LevelGrid:
        """A list of sparsities, or ``start:stop:step`` (stop included), e.g. ``0.3:0.95:0.05``."""
        if isinstance(spec, str):
            parts = spec.split(":")
            try:
                nums = [float(p) for p in (parts if len(parts) == 3 else spec.split(","))]
            except ValueError:
                nums = []
            if not nums or (len(parts) == 3 and nums[2] <= 0):
                raise ValueError(f"levels {spec!r}: expected start:stop:step (step > 0) or a comma list")
            if len(parts) == 3:
                a, b, s = nums
                n = math.floor((b - a) / s + 1e-9) + 1
                return cls(tuple(a + i * s for i in range(n)))
            return cls(tuple(nums))
        return cls(tuple(float(v) for v in spec))

    @property
    def pruned(self) -> tuple[float, ...]:
        """The levels a pruner runs at (all but dense)."""
        return self.levels[1:]

    def index(self, sparsity: float, tol: float = 1e-6) -> int:
        """Position of ``sparsity`` on the grid; ValueError when it is not a level."""
        for i, v in enumerate(self.levels):
            if abs(v - sparsity) <= tol:
                return i
        raise ValueError(f"sparsity {sparsity:.6g} is not a level of the grid {self.describe()}")

    def describe(self) -> str:
        steps = {round(b - a, 6) for a, b in zip(self.levels[1:], self.levels[2:], strict=False)}
        if len(steps) == 1 and len(self.levels) > 3:
            return f"dense + {self.levels[1]:g}..{self.levels[-1]:g} step {steps.pop():g}"
        return ", ".join(f"{v:g}" for v in self.levels)

    @staticmethod
    def tensor_name(level: float) -> str:
        return f"level_{level:.6f}"
