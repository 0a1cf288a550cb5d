"""``type_offset``: a per-projection-kind parameter added to every module of that kind (q, k,
v, o, gate, up, down in every block). With the per-block ``offset``, a space of 30 + 7 values
for SmolLM2 that can keep q/k sparser than v/o in every block (EvoPress's 70% profiles)."""

from __future__ import annotations

from typing import Any, ClassVar

from allocsearch.plan import Plan
from allocsearch.search.layout import SpaceLayout
from allocsearch.search.steps.base import AddedOffset


class TypeOffsetStep(AddedOffset):
    key = "type_offset"
    per = "type"
    roles: ClassVar[dict[str, tuple[str, str, bool]]] = {"value": ("float", "type", True)}

    def prior_values(self, prior: Plan, layout: SpaceLayout,
                     before: dict[str, float] | None) -> dict[str, Any] | None:
        # Neutral: a prior's differences between kinds go to a later per-module step, if any.
        return self.neutral(layout)
