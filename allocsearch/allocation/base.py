"""The allocator interface: ``allocate(profile, target) -> Plan`` meeting the budget exactly."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np

from allocsearch.actions import BlockAction
from allocsearch.budget import DEFAULT_BOUNDS, plan_from_actions, plan_from_values
from allocsearch.models.heads import Structure
from allocsearch.plan import ModelIdentity, Plan, block_of
from allocsearch.profile import Profile

GRANULARITIES = ("block", "module")


@dataclass(frozen=True)
class AllocatorParams:
    """Base of each allocator's parameters; subclasses add typed fields with defaults."""

    min_sparsity: float = DEFAULT_BOUNDS[0]
    max_sparsity: float = DEFAULT_BOUNDS[1]

    def __post_init__(self) -> None:
        if not (0.0 <= self.min_sparsity <= self.max_sparsity < 1.0):
            raise ValueError(
                f"need 0 <= min_sparsity <= max_sparsity < 1, got "
                f"{self.min_sparsity}, {self.max_sparsity}"
            )


class Allocator(ABC):
    """A published allocation rule. Subclasses set ``name``, ``Params`` and ``_values``."""

    name: ClassVar[str]
    Params: ClassVar[type[AllocatorParams]] = AllocatorParams
    #: Whether the profile needs the dense model attached (Wanda scores, block forwards).
    needs_model: ClassVar[bool] = False
    #: Structured allocators return block actions (whole heads/channels/blocks), so they meet
    #: a target to within one unit's share rather than exactly; see :class:`StructuredAllocator`.
    structured: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        known = {f.name for f in fields(self.Params)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(
                f"allocator {self.name!r} has no parameter(s) {unknown}; it takes: "
                f"{', '.join(sorted(known))}"
            )
        self.params = self.Params(**params)

    def allocate(self, profile: Profile, target: float, **provenance: Any) -> Plan:
        if not (0.0 <= target < 1.0):
            raise ValueError(f"target sparsity must lie in [0, 1), got {target}")
        if self.needs_model and profile.loaded is None:
            raise ValueError(f"allocator {self.name!r} needs the dense model attached to the profile")
        values = self._values(profile, target)
        p = self.params
        record = {
            "method": self.name,
            "params": asdict(p),
            "data": vars(profile.data),
            "profile": profile.key,
            **provenance,
        }
        return plan_from_values(
            profile.identity, target, values,
            bounds=(p.min_sparsity, p.max_sparsity), provenance=record,
        )

    @abstractmethod
    def _values(self, profile: Profile, target: float) -> Mapping[str, float]:
        """Per-module sparsities before projection to the exact budget."""


class StructuredAllocator(Allocator):
    """An allocator of structured actions: ``_actions`` says what each block drops or keeps;
    the other modules stay dense. The plan's target is the budget reached (the requested one
    is in the provenance): within one removable unit (an MLP channel or a KV group) of it."""

    structured = True

    def allocate(self, profile: Profile, target: float, **provenance: Any) -> Plan:
        if not (0.0 <= target < 1.0):
            raise ValueError(f"target sparsity must lie in [0, 1), got {target}")
        if profile.identity.structure is None:
            raise ValueError(f"allocator {self.name!r} needs a LLaMA-like model (heads, MLP width)")
        record = {"method": self.name, "params": asdict(self.params), "data": vars(profile.data),
                  "profile": profile.key, **provenance}
        actions = self._actions(profile, target)
        return plan_from_actions(profile.identity, actions, requested=target, provenance=record)

    def _values(self, profile: Profile, target: float) -> Mapping[str, float]:
        raise NotImplementedError("structured allocators return actions")

    @abstractmethod
    def _actions(self, profile: Profile, target: float) -> dict[int, BlockAction]:
        """Block -> structured action."""


def subblock_mass(identity: ModelIdentity) -> list[dict[str, int]]:
    """Per block, the parameter count of its attention and MLP projections."""
    out: list[dict[str, int]] = [{"attention": 0, "mlp": 0} for _ in range(identity.num_blocks)]
    for name in identity.shapes:
        out[block_of(name)][identity.kind(name)] += identity.numel(name)
    return out


def unit_cost(identity: ModelIdentity, block: int, kind: str) -> float:
    """Parameters one KV group (attention) or one channel (MLP) of a block holds."""
    s = identity.structure
    assert s is not None
    units = s.kv_heads if kind == "attention" else s.intermediate
    return subblock_mass(identity)[block][kind] / units


def counts_to_actions(s: Structure, heads: list[int], channels: list[int]) -> dict[int, BlockAction]:
    """Per-block kept heads and channels -> the actions that change something."""
    out: dict[int, BlockAction] = {}
    for b, (h, c) in enumerate(zip(heads, channels, strict=True)):
        action = BlockAction.from_counts(s, h, c)
        if not action.is_noop:
            out[b] = action
    return out


@dataclass(frozen=True)
class GroupedParams(AllocatorParams):
    """Parameters of allocators that score groups of modules: whole blocks or single modules."""

    granularity: str = "block"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {self.granularity!r}")


def allocate_by_group(
    profile: Profile,
    granularity: str,
    score: Callable[[list[str]], float],
    to_sparsity: Callable[[np.ndarray], np.ndarray],
) -> dict[str, float]:
    """Score each group (a block's modules, or one module), map the scores to sparsities,
    and give every module its group's value."""
    groups = profile.blocks() if granularity == "block" else [[n] for n in profile.identity.shapes]
    values = to_sparsity(np.array([score(g) for g in groups], dtype=np.float64))
    return {n: float(v) for g, v in zip(groups, values, strict=True) for n in g}


def spread_blocks(profile: Profile, per_block: np.ndarray | list[float]) -> dict[str, float]:
    """Give every module its block's value."""
    out: dict[str, float] = {}
    for b, names in enumerate(profile.blocks()):
        for n in names:
            out[n] = float(per_block[b])
    return out


def min_max(values: np.ndarray) -> np.ndarray:
    """Scale into [0, 1]; a constant vector maps to zeros."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-12:
        return np.zeros_like(values, dtype=np.float64)
    return (values - lo) / (hi - lo)


