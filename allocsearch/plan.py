"""Plans: which sparsity and pattern each prunable layer of one model gets, and which blocks
take a structured (NAS) action.

A plan is versioned JSON (``schema_version``), keyed by full module names, and carries the
model's identity (name, architecture, block count, a fingerprint of module names and
shapes, the shapes themselves, and for LLaMA-like models the head/channel structure, so its
parameter-weighted budget is computable without the model). Loading validates everything and
raises :class:`PlanError` naming the fault.

Structured actions (:mod:`allocsearch.actions`) live in ``blocks``; every module of a
structured sub-block carries the share its action removes as its sparsity (1.0 for a dropped
one), so the budget counts removed parameters whatever removed them. Schema 1 plans (no
``blocks``) still load.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from allocsearch.actions import ActionError, BlockAction
from allocsearch.io import atomic_write_text
from allocsearch.models.adapters import layer_kind
from allocsearch.models.heads import Structure
from allocsearch.pruners.pattern import UNSTRUCTURED, Pattern

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: How far a plan's parameter-weighted sparsity may miss its target.
BUDGET_TOLERANCE = 1e-4


class PlanError(ValueError):
    """A plan that cannot be used, with a message naming the fault."""


def fingerprint(shapes: Mapping[str, tuple[int, int]]) -> str:
    """Hash of the prunable layers' names and (out, in) shapes, in name order."""
    h = hashlib.sha256()
    for name in sorted(shapes):
        out_f, in_f = shapes[name]
        h.update(f"{name}:{out_f}x{in_f};".encode())
    return h.hexdigest()[:16]


def block_of(name: str) -> int:
    """Block index of a full module name: its first all-digit part
    (``model.layers.3.mlp.up_proj`` -> 3, ``transformer.h.0.attn.c_attn`` -> 0)."""
    for part in name.split("."):
        if part.isdigit():
            return int(part)
    raise PlanError(f"module name {name!r} has no block index")


@dataclass(frozen=True)
class ModelIdentity:
    """Which model a plan is for."""

    name: str
    architecture: str
    num_blocks: int
    shapes: dict[str, tuple[int, int]]  # full module name -> (out_features, in_features)
    fingerprint: str = ""
    structure: Structure | None = None  # heads and MLP width (LLaMA-like models only)

    def __post_init__(self) -> None:
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", fingerprint(self.shapes))

    def numel(self, name: str) -> int:
        out_f, in_f = self.shapes[name]
        return out_f * in_f

    @classmethod
    def from_dict(cls, m: Mapping[str, Any]) -> ModelIdentity:
        """The inverse of :meth:`to_dict`, validated (PlanError names the faulty key)."""
        shapes: dict[str, tuple[int, int]] = {}
        for name, shape in _require(m, "shapes", dict, "model.").items():
            if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) for v in shape)):
                raise PlanError(f"model.shapes[{name!r}] must be [out_features, in_features]")
            shapes[name] = (shape[0], shape[1])
        structure = None
        if m.get("structure") is not None:
            try:
                structure = Structure.from_dict(_require(m, "structure", dict, "model."))
            except ValueError as exc:
                raise PlanError(str(exc)) from None
        return cls(
            name=_require(m, "name", str, "model."),
            architecture=_require(m, "architecture", str, "model."),
            num_blocks=_require(m, "num_blocks", int, "model."),
            shapes=shapes,
            fingerprint=_require(m, "fingerprint", str, "model."),
            structure=structure,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "architecture": self.architecture,
            "num_blocks": self.num_blocks,
            "fingerprint": self.fingerprint,
            "shapes": {n: list(s) for n, s in self.shapes.items()},
        }
        if self.structure is not None:
            out["structure"] = self.structure.to_dict()
        return out

    def kind(self, name: str) -> str:
        """``"attention"`` or ``"mlp"``: the sub-block a prunable module belongs to."""
        return layer_kind(self.architecture, name)

    def implied(self, blocks: Mapping[int, BlockAction]) -> dict[str, float]:
        """Module -> the share of it that ``blocks``' structured actions remove (only the
        modules of structured sub-blocks)."""
        out: dict[str, float] = {}
        if not blocks:
            return out
        for name in self.shapes:
            action = blocks.get(block_of(name))
            if action is None or self.structure is None:
                continue
            share = action.removed(self.structure, self.kind(name))
            if share is not None:
                out[name] = share
        return out


@dataclass(frozen=True)
class ModuleChoice:
    """One layer's choice: unstructured or N:M sparsity, or (for a module of a structured
    sub-block) the share its block's action removes."""

    sparsity: float
    pattern: Pattern = UNSTRUCTURED


@dataclass
class Plan:
    """A per-module sparsity plan for one model, meeting a parameter-weighted target."""

    model: ModelIdentity
    target: float
    modules: dict[str, ModuleChoice]
    provenance: dict[str, Any] = field(default_factory=dict)
    #: block index -> structured action (blocks absent here take none)
    blocks: dict[int, BlockAction] = field(default_factory=dict)

    # ----------------------------------------------------------------- budget
    def budget(self) -> float:
        """Parameter-weighted sparsity over the prunable layers."""
        total = sum(self.model.numel(n) for n in self.modules)
        kept = sum(c.sparsity * self.model.numel(n) for n, c in self.modules.items())
        return kept / total

    def sparsities(self) -> dict[str, float]:
        return {n: c.sparsity for n, c in self.modules.items()}

    def block_sparsity(self) -> list[float]:
        """Parameter-weighted sparsity of each block (blocks in order)."""
        num = [0.0] * self.model.num_blocks
        den = [0] * self.model.num_blocks
        for name, choice in self.modules.items():
            b = block_of(name)
            num[b] += choice.sparsity * self.model.numel(name)
            den[b] += self.model.numel(name)
        return [n / d if d else 0.0 for n, d in zip(num, den, strict=True)]

    # ------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise PlanError on any inconsistency (names, bounds, patterns, budget)."""
        known = set(self.model.shapes)
        names = set(self.modules)
        unknown = sorted(names - known)
        if unknown:
            raise PlanError(f"unknown module names (not in the model): {unknown[:5]}")
        missing = sorted(known - names)
        if missing:
            raise PlanError(f"missing module names ({len(missing)}): {missing[:5]}")
        if fingerprint(self.model.shapes) != self.model.fingerprint:
            raise PlanError("model fingerprint does not match the module shapes it lists")
        if not (0.0 <= self.target < 1.0):
            raise PlanError(f"target sparsity {self.target} is outside [0, 1)")
        structured = self._check_blocks()
        for name, choice in self.modules.items():
            s = choice.sparsity
            if name in structured:
                if choice.pattern != UNSTRUCTURED or not math.isclose(s, structured[name], abs_tol=1e-9):
                    raise PlanError(
                        f"{name}: its block's structured action removes {structured[name]:.6f} "
                        f"of it, so its choice must be that sparsity, unstructured; the plan says "
                        f"{s!r} {choice.pattern}")
                continue
            if not (isinstance(s, float | int) and math.isfinite(s) and 0.0 <= s < 1.0):
                raise PlanError(f"{name}: sparsity {s!r} is outside [0, 1)")
            p = choice.pattern
            if p.is_nm:
                if not math.isclose(s, p.sparsity or 0.0, abs_tol=1e-9):
                    raise PlanError(f"{name}: pattern {p} implies sparsity {p.sparsity}, plan says {s}")
                if self.model.shapes[name][1] % p.m:
                    raise PlanError(f"{name}: in_features not divisible by M of pattern {p}")
        got = self.budget()
        if abs(got - self.target) > BUDGET_TOLERANCE:
            raise PlanError(
                f"budget {got:.6f} misses its target {self.target:.6f} by more than {BUDGET_TOLERANCE}"
            )

    def _check_blocks(self) -> dict[str, float]:
        """Validate the structured actions; returns what they imply per module."""
        for b, action in self.blocks.items():
            if not (isinstance(b, int) and 0 <= b < self.model.num_blocks):
                raise PlanError(f"blocks: {b!r} is not a block index (0..{self.model.num_blocks - 1})")
            try:
                action.check(self.model.structure, b)
            except ActionError as exc:
                raise PlanError(str(exc)) from None
        return self.model.implied(self.blocks)

    def structured(self) -> dict[int, BlockAction]:
        """The blocks whose actions change something, in block order."""
        return {b: a for b, a in sorted(self.blocks.items()) if not a.is_noop}

    def unstructured_modules(self) -> dict[str, ModuleChoice]:
        """The modules left to an unstructured or N:M pruner (not in a structured sub-block)."""
        implied = self.model.implied(self.blocks)
        return {n: c for n, c in self.modules.items() if n not in implied}

    def check_model(self, identity: ModelIdentity) -> None:
        """Raise PlanError unless this plan was made for a model with these layers."""
        if identity.fingerprint != self.model.fingerprint:
            mine, theirs = set(self.model.shapes), set(identity.shapes)
            detail = (
                f"{len(mine - theirs)} of its modules are not in the model"
                if mine != theirs
                else "the module shapes differ"
            )
            raise PlanError(
                f"plan is for another model ({self.model.name}, {self.model.architecture}, "
                f"fingerprint {self.model.fingerprint}; this model is {identity.name}, "
                f"{identity.architecture}, fingerprint {identity.fingerprint}): {detail}"
            )

    # ----------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.model.to_dict(),
            "target": self.target,
            "budget": self.budget(),
            "modules": {
                n: {"sparsity": c.sparsity, "pattern": str(c.pattern)}
                for n, c in self.modules.items()
            },
            "blocks": {str(b): a.to_dict() for b, a in sorted(self.blocks.items())},
            "provenance": self.provenance,
        }

    def save(self, path: str | Path) -> Path:
        """Validate, then write JSON (atomically: a bad plan writes nothing)."""
        self.validate()
        return atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: Any, where: str = "plan") -> Plan:
        try:
            return _from_dict(data)
        except PlanError as exc:
            raise PlanError(f"{where}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise PlanError(f"{path}: cannot read plan ({exc.strerror})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlanError(
                f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None
        return cls.from_dict(data, where=str(path))


def _require(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise PlanError(f"missing key {where}{key!r}")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise PlanError(f"{where}{key!r} has the wrong type ({type(value).__name__})")
    return value


def _from_dict(data: Any) -> Plan:
    if not isinstance(data, dict):
        raise PlanError("a plan must be a JSON object")
    version = data.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise PlanError(f"unsupported schema_version {version!r} (this allocsearch reads "
                        f"{', '.join(map(str, READABLE_VERSIONS))})")
    identity = ModelIdentity.from_dict(_require(data, "model", dict, ""))
    modules: dict[str, ModuleChoice] = {}
    for name, entry in _require(data, "modules", dict, "").items():
        if not isinstance(entry, dict):
            raise PlanError(f"modules[{name!r}] must be an object")
        if "action" in entry:
            raise PlanError(f"modules[{name!r}]: per-module 'action' is gone; structured actions "
                            "are per block, under 'blocks' (schema_version 2)")
        sparsity = _require(entry, "sparsity", (int, float), f"modules[{name!r}].")
        try:
            pattern = Pattern.parse(entry.get("pattern", "unstructured"))
        except ValueError as exc:
            raise PlanError(f"modules[{name!r}]: {exc}") from None
        modules[name] = ModuleChoice(float(sparsity), pattern)
    blocks: dict[int, BlockAction] = {}
    raw_blocks = data.get("blocks") or {}
    if not isinstance(raw_blocks, dict):
        raise PlanError("blocks must be an object: block index -> action")
    for key, entry in raw_blocks.items():
        if not (isinstance(key, str) and key.isdigit()):
            raise PlanError(f"blocks: key {key!r} is not a block index")
        try:
            blocks[int(key)] = BlockAction.from_dict(entry, int(key))
        except ActionError as exc:
            raise PlanError(str(exc)) from None
    plan = Plan(
        model=identity,
        target=float(_require(data, "target", (int, float), "")),
        modules=modules,
        provenance=dict(data.get("provenance") or {}),
        blocks=blocks,
    )
    plan.validate()
    return plan
