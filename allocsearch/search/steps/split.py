"""``split``: a per-block parameter moving sparsity from the MLP to attention (+) or back (-)
at an unchanged block budget."""

from __future__ import annotations

from typing import Any, ClassVar

from allocsearch.plan import Plan, block_of
from allocsearch.search.layout import SpaceLayout
from allocsearch.search.steps.base import Draft, Step


class SplitStep(Step):
    key = "split"
    additive = True
    roles: ClassVar[dict[str, tuple[str, str, bool]]] = {"value": ("float", "block", True)}

    def apply(self, draft: Draft, values: dict[str, Any]) -> None:
        ident = draft.identity
        attn = [0] * ident.num_blocks
        mlp = [0] * ident.num_blocks
        for n in ident.shapes:
            (attn if ident.kind(n) == "attention" else mlp)[block_of(n)] += ident.numel(n)
        for n in draft.values:
            b = block_of(n)
            s = float(self.value(values, "value", b))
            # +s on attention, -s * A/M on the MLP: the block's parameter mass is unchanged.
            draft.values[n] += s if ident.kind(n) == "attention" else -s * attn[b] / max(mlp[b], 1)

    def prior_values(self, prior: Plan, layout: SpaceLayout,
                     before: dict[str, float] | None) -> dict[str, Any] | None:
        return self.neutral(layout)
