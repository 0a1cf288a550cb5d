"""The reference plan a backend anchors at: an allocator with its parameters.

A study names it in ``evaluator.reference`` as an allocator (``ramp``), a label with
parameters (``"ramp slope=0.1"``, the form warm-start labels take) or a mapping
(``{method: ramp, slope: 0.1}``). :meth:`ReferencePlan.parse` reads all three and
:attr:`ReferencePlan.label` writes the one canonical string a config stores, so two spellings
of the same reference compare equal when a study resumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from allocsearch.allocation import ALLOCATORS, get_allocator
from allocsearch.plan import Plan
from allocsearch.profile import Profile

#: The reference meaning "no anchor": the backend scores one-shot, on dense activations.
NO_REFERENCE = "none"


def _scalar(text: str) -> Any:
    """``"0.1"`` -> 0.1, ``"3"`` -> 3, ``"true"`` -> True; anything else stays a string."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


@dataclass(frozen=True)
class ReferencePlan:
    """``method`` (an allocator name) at ``params``; its plan at a target is the anchor."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in ALLOCATORS:
            raise ValueError(f"reference must be {NO_REFERENCE!r} or an allocator "
                             f"({', '.join(ALLOCATORS)}), got {self.method!r}")
        get_allocator(self.method, **self.params)  # unknown or invalid parameters fail here

    @staticmethod
    def parse(raw: str | dict[str, Any]) -> ReferencePlan:
        """From ``"ramp"``, ``"ramp slope=0.1"`` or ``{method: ramp, slope: 0.1}`` (also
        ``{method: ramp, params: {slope: 0.1}}``)."""
        if isinstance(raw, dict):
            rest = dict(raw)
            if "method" not in rest:
                raise ValueError(f"a reference mapping needs a method, got {raw!r}")
            method = str(rest.pop("method"))
            return ReferencePlan(method, dict(rest.pop("params", None) or {}) | rest)
        method, *pairs = str(raw).split()
        params: dict[str, Any] = {}
        for pair in pairs:
            key, eq, value = pair.partition("=")
            if not eq or not key:
                raise ValueError(f"reference parameters are key=value, got {pair!r} in {raw!r}")
            params[key] = _scalar(value)
        return ReferencePlan(method, params)

    @property
    def label(self) -> str:
        """The canonical string: the method, then ``key=value`` sorted by key."""
        return " ".join([self.method, *(f"{k}={v}" for k, v in sorted(self.params.items()))])

    def plan(self, profile: Profile, target: float) -> Plan:
        return get_allocator(self.method, **self.params).allocate(profile, target)


def canonical_reference(raw: str | dict[str, Any]) -> str:
    """The label a config stores for ``raw`` (``none`` stays ``none``)."""
    if isinstance(raw, str) and raw.strip() == NO_REFERENCE:
        return NO_REFERENCE
    return ReferencePlan.parse(raw).label
