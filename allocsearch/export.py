"""Export plans for other tools: llm-compressor recipes and EvoPress-style text."""

from __future__ import annotations

from collections import defaultdict

import yaml

from allocsearch.plan import Plan
from allocsearch.pruners.pattern import Pattern

FORMATS = ("llmcompressor", "evopress")
_MODIFIERS = {"wanda": "WandaPruningModifier", "sparsegpt": "SparseGPTModifier"}


def _mask_structure(pattern: Pattern) -> str:
    # llm-compressor's "N:M" prunes N of every M (see its Wanda/SparseGPT sparsify code);
    # ours keeps N. 2:4 and 4:8 read the same either way; others are translated.
    return f"{pattern.m - pattern.n}:{pattern.m}" if pattern.is_nm else "0:0"


def to_llmcompressor(plan: Plan, method: str = "sparsegpt") -> str:
    """A recipe with one modifier per mask structure, listing every module explicitly with
    its own sparsity (in model order) and ignoring lm_head."""
    if method not in _MODIFIERS:
        raise ValueError(f"llm-compressor export supports {sorted(_MODIFIERS)}, got {method!r}")
    groups: dict[str, list[str]] = defaultdict(list)
    for name, choice in plan.modules.items():
        if choice.sparsity > 0 or choice.pattern.is_nm:
            groups[_mask_structure(choice.pattern)].append(name)
    modifiers = {}
    for i, (structure, names) in enumerate(sorted(groups.items())):
        key = _MODIFIERS[method] if i == 0 else f"{_MODIFIERS[method]}_{i}"
        modifiers[key] = {
            "targets": names,
            "sparsity": [round(plan.modules[n].sparsity, 6) for n in names],
            "mask_structure": structure,
            "ignore": ["re:.*lm_head"],
        }
    recipe = {"sparsity_stage": {"sparsity_modifiers": modifiers}}
    header = (
        f"# allocsearch plan for {plan.model.name} ({plan.model.architecture}), target "
        f"{plan.target:.4f}, method {plan.provenance.get('method', '?')}\n"
    )
    return header + yaml.safe_dump(recipe, sort_keys=False, width=120)


def to_evopress(plan: Plan) -> str:
    """``module.name: sparsity`` lines, one per module, in model order."""
    return "".join(f"{name}: {choice.sparsity:.6f}\n" for name, choice in plan.modules.items())


def export_plan(plan: Plan, fmt: str, method: str = "sparsegpt") -> str:
    if plan.structured():
        # Both formats hold per-module sparsities: a dropped block would read as 100% masks.
        raise ValueError(
            f"the plan has structured actions in {len(plan.structured())} block(s), which "
            f"{fmt} files cannot express; apply it with `allocsearch prune --plan` (a smaller "
            "model) instead")
    if fmt == "llmcompressor":
        return to_llmcompressor(plan, method)
    if fmt == "evopress":
        return to_evopress(plan)
    raise ValueError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
