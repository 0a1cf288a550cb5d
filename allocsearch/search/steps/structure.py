"""``structure``: structured actions alone (NAS): how many blocks to drop and which, and how
much of each block's attention and MLP to keep.

Roles (all optional, at least one): ``depth`` (int: how many blocks to drop) with
``importance`` (per block: the ``depth`` least important blocks go), ``attention`` (per block:
the share of KV groups kept, rounded; 0 drops the attention) and ``mlp`` (per block: the share
of MLP channels kept). The MLP shares are the free variables of the budget projection, then
rounded to whole channels (largest remainders), so a plan meets its target to within one
channel; drops and attention choices are pins, undone (most important block first) when they
alone overshoot the target. Attention that is not narrowed stays dense: no module of this
step's plans is pruned unstructured.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from allocsearch.actions import BlockAction
from allocsearch.plan import Plan, block_of
from allocsearch.search.layout import SpaceLayout
from allocsearch.search.steps.base import Draft, Pin, Step, StepError


class StructureStep(Step):
    key = "structure"
    structured = True
    roles: ClassVar[dict[str, tuple[str, str, bool]]] = {
        "depth": ("int", "none", False),
        "importance": ("float", "block", False),
        "attention": ("float", "block", False),
        "mlp": ("float", "block", False),
    }

    def check(self, where: str) -> None:
        if not self.refs:
            raise StepError(f"{where}.structure: name at least one of {sorted(self.roles)}")
        if ("depth" in self.refs) != ("importance" in self.refs):
            raise StepError(f"{where}.structure: depth and importance go together")

    def apply(self, draft: Draft, values: dict[str, Any]) -> None:
        ident = draft.identity
        s = ident.structure
        if s is None:
            raise StepError("the structure step needs a LLaMA-like model (heads, MLP width)")
        names: dict[int, list[str]] = {}
        for n in ident.shapes:
            names.setdefault(block_of(n), []).append(n)
        dropped: set[int] = set()
        if "depth" in self.refs:
            imp = [float(self.value(values, "importance", b)) for b in range(ident.num_blocks)]
            count = int(self.value(values, "depth"))
            dropped = {int(b) for b in np.argsort(np.asarray(imp), kind="stable")[:count]}
            for b in dropped:
                draft.pins[b] = Pin({n: 1.0 for n in names[b]}, action=BlockAction(drop="block"))
                draft.offsets[b] = -imp[b]  # repair undoes the most important drop first
        for b, mods in names.items():
            if "mlp" in self.refs:
                # Dropped blocks too: if the repair undoes a drop, the block's MLP share applies.
                keep = float(self.value(values, "mlp", b))
                for n in mods:
                    if ident.kind(n) == "mlp":
                        draft.values[n] = 1.0 - keep
                draft.mlp_channels.add(b)
            # Structure alone: an attention not narrowed stays dense (not unstructured).
            draft.fixed |= {n: 0.0 for n in mods if ident.kind(n) == "attention"}
            if b in dropped:
                continue
            if "attention" in self.refs:
                groups = round(float(self.value(values, "attention", b)) * s.kv_heads)
                if groups < s.kv_heads:
                    share = 1.0 - groups / s.kv_heads
                    action = BlockAction(drop="attention") if groups == 0 else \
                        BlockAction(heads=groups * s.group)
                    draft.pins[b] = Pin({n: share for n in mods if ident.kind(n) == "attention"},
                                        action=action)

    def prior_values(self, prior: Plan, layout: SpaceLayout,
                     before: dict[str, float] | None) -> dict[str, Any] | None:
        s = prior.model.structure
        if s is None:
            return None
        actions = prior.structured()
        if not actions and prior.budget() > 0:
            return None  # an unstructured prior: not expressible with structure alone
        out: dict[str, Any] = {}
        drops = sorted(b for b, a in actions.items() if a.drop == "block")
        if "depth" in self.refs:
            out[self.refs["depth"]] = self.params["depth"].clip(len(drops))
            spec = self.params["importance"]
            for b, name in enumerate(spec.names(layout)):
                out[name] = spec.clip(spec.low if b in drops else spec.high)  # type: ignore[arg-type]
        elif drops:
            return None
        for role, kept in (("attention", lambda a: a.kept_heads(s) / s.heads),
                           ("mlp", lambda a: a.kept_channels(s) / s.intermediate)):
            if role not in self.refs:
                if any(a.removed(s, role) is not None for b, a in actions.items() if b not in drops):
                    return None
                continue
            spec = self.params[role]
            for b, name in enumerate(spec.names(layout)):
                out[name] = spec.clip(kept(actions.get(b, BlockAction())) if b not in drops else 1.0)
        return out
