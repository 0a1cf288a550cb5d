"""Space steps: small classes that turn a trial's values into changes of a draft plan.

Each step declares the parameters it reads (their type and ``per``), applies itself to a
:class:`Draft`, and says which values reproduce a prior's plan. The space runs its steps in
the order of :data:`allocsearch.search.steps.STEPS`, then repairs the pins the budget cannot
absorb and projects to the exact budget (:func:`allocsearch.search.steps.finish`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from allocsearch.actions import BlockAction
from allocsearch.plan import ModelIdentity, Plan
from allocsearch.pruners.pattern import Pattern
from allocsearch.search.layout import SpaceLayout

if TYPE_CHECKING:
    from allocsearch.allocation.flap import Unit
    from allocsearch.profile import Profile
    from allocsearch.search.params import ParamSpec


class StepError(ValueError):
    """A step whose YAML or values cannot be used."""


@dataclass
class Pin:
    """What one block's choice fixes: module -> sparsity, an N:M pattern for all of them or
    a structured action. Pins the budget cannot absorb are undone as a whole."""

    values: dict[str, float]
    pattern: Pattern | None = None
    action: BlockAction | None = None


@dataclass
class Draft:
    """A plan under construction: per-module values before the budget projection."""

    identity: ModelIdentity
    target: float
    values: dict[str, float]  # module -> sparsity before projection
    offsets: dict[int, float] = field(default_factory=dict)  # block -> offset (repair order)
    pins: dict[int, Pin] = field(default_factory=dict)  # block -> repairable choice
    fixed: dict[str, float] = field(default_factory=dict)  # module -> sparsity, unless pinned
    actions: dict[int, BlockAction] = field(default_factory=dict)  # fixed structured actions
    #: blocks whose MLP value is a structured removal share, rounded to channels after projection
    mlp_channels: set[int] = field(default_factory=set)
    #: scored heads/channels: the budget's rest removes the lowest (FLAP-like units)
    units: list[Unit] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    #: the profile the plan is built on (influence, statistics), for steps that rank by it
    profile: Profile | None = None
    _layout: SpaceLayout | None = field(default=None, repr=False)

    @property
    def layout(self) -> SpaceLayout:
        """The model's modules by block, type and module (built once per draft)."""
        if self._layout is None:
            self._layout = SpaceLayout.of(self.identity)
        return self._layout


class Step(ABC):
    """One recipe step. ``key`` is its name under ``plan:``; ``refs`` maps the step's roles to
    declared parameter names (a plain string in the YAML is the single role ``value``)."""

    key: ClassVar[str]
    #: True for steps that make structured actions (only they can express structured priors)
    structured: ClassVar[bool] = False
    #: True for steps that add their values to the draft (0 is neutral): on a space whose base
    #: allocator reproduces a prior, they take 0
    additive: ClassVar[bool] = False
    #: role -> (parameter type, per, required)
    roles: ClassVar[dict[str, tuple[str, str, bool]]]

    def __init__(self, refs: dict[str, str], params: dict[str, ParamSpec], where: str) -> None:
        unknown = sorted(set(refs) - set(self.roles))
        if unknown:
            raise StepError(f"{where}.{self.key}: unknown role(s) {unknown}; allowed: {sorted(self.roles)}")
        for role, (kind, per, required) in self.roles.items():
            ref = refs.get(role)
            if ref is None:
                if required:
                    raise StepError(f"{where}.{self.key}: needs {role!r}")
                continue
            spec = params.get(ref)
            if spec is None:
                raise StepError(f"{where}.{self.key}: {ref!r} names no declared parameter")
            if spec.type not in kind.split("|") or spec.per != per:
                raise StepError(f"{where}.{self.key}: parameter {ref!r} must be a {kind} with per: {per}")
        self.refs = refs
        self.params = {role: params[ref] for role, ref in refs.items()}
        self.check(where)

    def check(self, where: str) -> None:  # noqa: B027 - optional hook, most steps need none
        """Further validation of the parameters (choices, ranges)."""

    def value(self, values: dict[str, Any], role: str, part: int | str | None = None) -> Any:
        """The value of ``role`` for one block (``part=3``), type or module (see
        :mod:`allocsearch.search.layout`), or its only value (``part=None``)."""
        return values[self.params[role].key(part)]

    @abstractmethod
    def apply(self, draft: Draft, values: dict[str, Any]) -> None:
        """Change ``draft`` by this step's values."""

    def prior_values(self, prior: Plan, layout: SpaceLayout,
                     before: dict[str, float] | None) -> dict[str, Any] | None:
        """Values of this step's parameters that reproduce ``prior`` (its neutral values by
        default); None when the step cannot express it. ``before``: the draft's per-module
        values after the earlier steps took their values for the prior (on a uniform base;
        None otherwise)."""
        return {}

    def neutral(self, layout: SpaceLayout) -> dict[str, Any]:
        """0 for every value of an additive step's parameters."""
        return {name: spec.clip(0.0) for spec in self.params.values() for name in spec.names(layout)}


class AddedOffset(Step):
    """A float parameter of granularity ``per`` whose value for each module (its type's, or
    its own) is added to the module's draft value."""

    additive = True
    per: ClassVar[str]

    def apply(self, draft: Draft, values: dict[str, Any]) -> None:
        layout = draft.layout
        for n in draft.values:
            draft.values[n] += float(self.value(values, "value", layout.part(n, self.per)))
