"""``offset``: a per-block parameter added to every module of its block."""

from __future__ import annotations

from typing import Any, ClassVar

from allocsearch.plan import Plan, block_of
from allocsearch.search.layout import SpaceLayout
from allocsearch.search.steps.base import Draft, Step


class OffsetStep(Step):
    key = "offset"
    additive = True
    roles: ClassVar[dict[str, tuple[str, str, bool]]] = {"value": ("float", "block", True)}

    def apply(self, draft: Draft, values: dict[str, Any]) -> None:
        for n in draft.values:
            b = block_of(n)
            off = float(self.value(values, "value", b))
            draft.offsets[b] = off
            draft.values[n] += off

    def prior_values(self, prior: Plan, layout: SpaceLayout,
                     before: dict[str, float] | None) -> dict[str, Any] | None:
        spec = self.params["value"]
        return {name: spec.clip(s - prior.target)
                for name, s in zip(spec.names(layout), prior.block_sparsity(), strict=True)}
