"""``layer_type``: a per-block categorical among ``unstructured``, N:M patterns such as ``2:4``,
``dense``, and the structured ``drop`` (the whole block), ``drop_attention`` and
``drop_mlp``. Each choice but unstructured pins its block; pins the budget cannot absorb are
undone (:mod:`allocsearch.search.layer_types`)."""

from __future__ import annotations

from typing import Any, ClassVar

from allocsearch.actions import BlockAction
from allocsearch.plan import Plan, block_of
from allocsearch.pruners.pattern import Pattern
from allocsearch.search.layout import SpaceLayout
from allocsearch.search.steps.base import Draft, Pin, Step, StepError

#: structured choice -> (the sub-blocks it removes, its action)
DROPS: dict[str, tuple[tuple[str, ...], BlockAction]] = {
    "drop": (("attention", "mlp"), BlockAction(drop="block")),
    "drop_attention": (("attention",), BlockAction(drop="attention")),
    "drop_mlp": (("mlp",), BlockAction(drop="mlp")),
}
FIXED_CHOICES = ("unstructured", "dense", *DROPS)


class LayerTypeStep(Step):
    key = "layer_type"
    roles: ClassVar[dict[str, tuple[str, str, bool]]] = {"value": ("categorical", "block", True)}

    def check(self, where: str) -> None:
        for c in self.params["value"].choices:
            if c not in FIXED_CHOICES:
                try:
                    Pattern.parse(str(c))
                except ValueError as exc:
                    raise StepError(f"{where}.layer_type: bad choice {c!r} (known: "
                                    f"{', '.join(FIXED_CHOICES)} or N:M): {exc}") from exc

    def apply(self, draft: Draft, values: dict[str, Any]) -> None:
        ident = draft.identity
        names: dict[int, list[str]] = {}
        for n in ident.shapes:
            names.setdefault(block_of(n), []).append(n)
        for b, mods in names.items():
            choice = str(self.value(values, "value", b))
            if choice == "unstructured":
                continue
            if choice == "dense":
                draft.pins[b] = Pin({n: 0.0 for n in mods})
            elif choice in DROPS:
                if ident.structure is None:
                    raise StepError(f"layer type {choice!r} needs a LLaMA-like model")
                kinds, action = DROPS[choice]
                draft.pins[b] = Pin({n: 1.0 for n in mods if ident.kind(n) in kinds}, action=action)
            else:
                p = Pattern.parse(choice)
                draft.pins[b] = Pin({n: p.resolve_sparsity(None) for n in mods}, pattern=p)

    def prior_values(self, prior: Plan, layout: SpaceLayout,
                     before: dict[str, float] | None) -> dict[str, Any] | None:
        return {name: "unstructured" for name in self.params["value"].names(layout)}
