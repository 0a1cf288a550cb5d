"""Level-switch mutations of a trial's values, as the short-lister makes its candidates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from allocsearch.search.layout import SpaceLayout
from allocsearch.search.params import ParamSpec
from allocsearch.search.space import SearchSpace

SWITCH_SHARE = 0.05  # a level switch moves one step of 5% of the parameter's range
SWITCHABLE = ("block", "type", "module")  # granularities whose values trade budget in pairs


@dataclass(frozen=True)
class Level:
    """Where a switchable value may go: its bounds and one level's step."""

    low: float
    high: float
    step: float


def level_switch(values: dict[str, Any], names: Sequence[str], levels: Level | Mapping[str, Level],
                 rng: np.random.Generator, tries: int = 20) -> tuple[str, str] | None:
    """One of ``names`` up a level and another down one, both inside their bounds (so
    equal-sized blocks or modules keep the budget), in place; the pair moved (up, down), or
    None when ``tries`` random pairs found no legal one. ``levels``: one for every name (a
    space parameter's), or one per name. The EvoPress-style sampler and the short-lister's
    mutations both switch through here."""
    for _ in range(tries):
        i, j = rng.choice(len(names), size=2, replace=False)
        up, down = names[int(i)], names[int(j)]
        lu, ld = (levels, levels) if isinstance(levels, Level) else (levels[up], levels[down])
        if values[up] + lu.step <= lu.high + 1e-12 and values[down] - ld.step >= ld.low - 1e-12:
            values[up] = min(values[up] + lu.step, lu.high)
            values[down] = max(values[down] - ld.step, ld.low)
            return up, down
    return None


def mutate(values: dict[str, Any], space: SearchSpace, layout: SpaceLayout, rng: np.random.Generator,
           other_rate: float = 0.05) -> dict[str, Any]:
    """Level switches (1 to 4) between two blocks, types or modules of a per-block, per-type
    or per-module float parameter; other parameters resampled (categorical) or jittered
    (scalar) with probability ``other_rate`` each."""
    out = dict(values)
    switchable = [p for p in space.parameters.values() if p.per in SWITCHABLE and p.type == "float"]
    names = {spec.name: spec.names(layout) for spec in switchable}
    for _ in range(int(rng.integers(1, 5)) if switchable else 0):
        spec = switchable[int(rng.integers(len(switchable)))]
        assert spec.low is not None and spec.high is not None
        moved = level_switch(out, names[spec.name], Level(spec.low, spec.high, _step(spec)), rng)
        for name in moved or ():
            out[name] = spec.clip(out[name])  # on the parameter's step grid, without float drift
    for spec in space.parameters.values():
        if spec in switchable:
            continue
        for name in spec.names(layout):
            if rng.random() >= other_rate and switchable:
                continue
            if spec.type == "categorical":
                out[name] = spec.choices[int(rng.integers(len(spec.choices)))]
            else:
                out[name] = spec.clip(float(out[name]) + rng.normal(0.0, 2 * _step(spec)))
    return out


def _step(spec: ParamSpec) -> float:
    assert spec.low is not None and spec.high is not None
    return float(spec.step or SWITCH_SHARE * (spec.high - spec.low))
