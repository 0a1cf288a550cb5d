"""The compact plan encoding shared by study trial attributes and predictor records lines.

A plan JSON (:meth:`allocsearch.plan.Plan.to_dict`) names every module; a study stores
thousands of plans of one model, so trials and records keep the model identity once (on the
study, in the records header) and each plan as::

    {"target": 0.7,
     "sparsities": [0.71, 0.69, ...],      # one per module, in the identity's module order
     "patterns": {"model.layers.0.mlp.up_proj": "2:4"},        # N:M modules only
     "blocks": {"3": {"drop": "block"}, "5": {"heads": 6}}}    # structured actions, as in plan JSON

Both encodings write structured actions with :meth:`BlockAction.to_dict`, so a plan read back
from either is the plan written: the modules of a structured sub-block take the exact share
its action removes, whatever the stored float.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from allocsearch.actions import ActionError, BlockAction
from allocsearch.plan import ModelIdentity, ModuleChoice, Plan, PlanError
from allocsearch.pruners.pattern import Pattern

#: The keys of a compact plan (what a trial's user attributes hold of its plan).
COMPACT_KEYS = ("target", "sparsities", "patterns", "blocks")


def encode_plan(plan: Plan) -> dict[str, Any]:
    """The compact form of ``plan`` (empty ``patterns``/``blocks`` are left out)."""
    out: dict[str, Any] = {"target": plan.target,
                           "sparsities": [plan.modules[n].sparsity for n in plan.model.shapes]}
    nm = {n: str(c.pattern) for n, c in plan.modules.items() if c.pattern.is_nm}
    blocks = {str(b): a.to_dict() for b, a in sorted(plan.structured().items())}
    return out | ({"patterns": nm} if nm else {}) | ({"blocks": blocks} if blocks else {})


def decode_plan(identity: ModelIdentity, data: Mapping[str, Any],
                provenance: Mapping[str, Any] | None = None) -> Plan:
    """The validated plan of a compact encoding (see :func:`encode_plan`)."""
    if "sparsities" not in data or "target" not in data:
        raise PlanError("a compact plan needs target and sparsities")
    return plan_from_sparsities(identity, float(data["target"]), data["sparsities"],
                                data.get("patterns"), provenance, data.get("blocks"))


def plan_from_sparsities(identity: ModelIdentity, target: float, sparsities: Sequence[float],
                         patterns: Mapping[str, str] | None = None,
                         provenance: Mapping[str, Any] | None = None,
                         blocks: Mapping[str, Any] | None = None) -> Plan:
    """A validated plan from per-module sparsities in the identity's module order, and the
    structured actions (``{"3": {"drop": "block"}}``, as in plan JSON) when there are any;
    their modules take the exact share the actions remove."""
    names = list(identity.shapes)
    if len(sparsities) != len(names):
        raise PlanError(f"{len(sparsities)} sparsities for a model with {len(names)} modules")
    pats = patterns or {}
    try:
        actions = {int(b): BlockAction.from_dict(a, int(b)) for b, a in (blocks or {}).items()}
    except (ActionError, ValueError) as exc:
        raise PlanError(f"blocks: {exc}") from None
    implied = identity.implied(actions)
    modules = {n: ModuleChoice(implied.get(n, float(s)), Pattern.parse(pats.get(n, "unstructured")))
               for n, s in zip(names, sparsities, strict=True)}
    plan = Plan(identity, float(target), modules, dict(provenance or {}), actions)
    plan.validate()
    return plan
