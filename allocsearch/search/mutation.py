"""Level-switch mutations of a trial's values, as the short-lister makes its candidates."""

from __future__ import annotations

from typing import Any

import numpy as np

from allocsearch.search.layout import SpaceLayout
from allocsearch.search.params import ParamSpec
from allocsearch.search.space import SearchSpace

SWITCH_SHARE = 0.05  # a level switch moves one step of 5% of the parameter's range
SWITCHABLE = ("block", "type", "module")  # granularities whose values trade budget in pairs


def mutate(values: dict[str, Any], space: SearchSpace, layout: SpaceLayout, rng: np.random.Generator,
           other_rate: float = 0.05) -> dict[str, Any]:
    """Level switches (1 to 4) between two blocks, types or modules of a per-block, per-type
    or per-module float parameter; other parameters resampled (categorical) or jittered
    (scalar) with probability ``other_rate`` each."""
    out = dict(values)
    switchable = [p for p in space.parameters.values() if p.per in SWITCHABLE and p.type == "float"]
    for _ in range(int(rng.integers(1, 5)) if switchable else 0):
        spec = switchable[int(rng.integers(len(switchable)))]
        names = spec.names(layout)
        i, j = rng.choice(len(names), size=2, replace=False)
        step = _step(spec)
        out[names[int(i)]] = spec.clip(out[names[int(i)]] + step)
        out[names[int(j)]] = spec.clip(out[names[int(j)]] - step)
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
