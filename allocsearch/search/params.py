"""Search-space parameters: their spec (type, range, grid, granularity) and its validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from allocsearch.search.layout import GRANULARITIES, SpaceLayout

PARAM_TYPES = ("float", "int", "categorical")
PARAM_KEYS = {"type", "low", "high", "step", "log", "choices", "per"}


class SpaceError(ValueError):
    """A search space that cannot be used, with a message naming the file and the key."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    per: str = "none"  # one of GRANULARITIES

    def names(self, layout: SpaceLayout) -> list[str]:
        """The Optuna parameter names: ``offset_0 .. offset_29`` for a per-block one."""
        return [self.key(part) for part in layout.parts(self.per)]

    def key(self, part: int | str | None) -> str:
        """The Optuna name of the value for one block, type or module (``None``: the only one)."""
        return self.name if part is None else f"{self.name}_{part}"

    def clip(self, value: float) -> float:
        assert self.low is not None and self.high is not None
        v = min(max(float(value), self.low), self.high)
        if self.step:
            v = self.low + round((v - self.low) / self.step) * self.step
            v = min(max(v, self.low), self.high)
        return round(v) if self.type == "int" else v


def check_keys(data: Any, allowed: set[str], at: str, what: str = "key(s)") -> None:
    """A mapping whose keys are all allowed, or a SpaceError naming the strays."""
    if not isinstance(data, dict):
        raise SpaceError(f"{at}: expected a mapping")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SpaceError(f"{at}: unknown {what} {unknown}; allowed: {sorted(allowed)}")


def parse_param(name: str, spec: Any, where: str) -> ParamSpec:
    """One entry of a space's ``parameters``, validated (SpaceError naming the key)."""
    at = f"{where}: parameters.{name}"
    check_keys(spec, PARAM_KEYS, at)
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise SpaceError(f"{at}: type must be one of {list(PARAM_TYPES)}, got {kind!r}")
    per = spec.get("per", "none")
    if per not in GRANULARITIES:
        raise SpaceError(f"{at}: per must be one of {list(GRANULARITIES)}, got {per!r}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{at}: a categorical parameter needs a non-empty choices list")
        return ParamSpec(name, kind, choices=tuple(choices), per=per)
    low, high = spec.get("low"), spec.get("high")
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        raise SpaceError(f"{at}: low and high must be numbers")
    if not low < high:
        raise SpaceError(f"{at}: low ({low}) must be below high ({high})")
    step = spec.get("step")
    if step is not None and (not isinstance(step, int | float) or step <= 0):
        raise SpaceError(f"{at}: step must be a positive number")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise SpaceError(f"{at}: a log-scaled parameter needs low > 0")
    return ParamSpec(name, kind, float(low), float(high), step, log, per=per)
