"""``module_offset``: one parameter per prunable linear module, added to its value (210 for
SmolLM2). With a ``step`` it is a level per module on a grid, as EvoPress searches; the
EvoPress-style sampler and the short-lister switch levels between any two modules."""

from __future__ import annotations

from typing import Any, ClassVar

from allocsearch.plan import Plan
from allocsearch.search.layout import SpaceLayout
from allocsearch.search.steps.base import AddedOffset


class ModuleOffsetStep(AddedOffset):
    key = "module_offset"
    per = "module"
    roles: ClassVar[dict[str, tuple[str, str, bool]]] = {"value": ("float", "module", True)}

    def prior_values(self, prior: Plan, layout: SpaceLayout,
                     before: dict[str, float] | None) -> dict[str, Any] | None:
        """Each module's gap between the prior and the draft the earlier steps made from the
        prior's values (the uniform target, plus block offsets when the space has them):
        the prior exactly, wherever the parameter's range and grid hold the gap."""
        spec = self.params["value"]
        base = before or {}
        return {spec.key(layout.part(n, "module")):
                spec.clip(prior.modules[n].sparsity - base.get(n, prior.target)) for n in layout.modules}
