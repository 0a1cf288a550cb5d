"""Evaluator backends: how a plan's per-layer targets become weights in the live model.

A backend owns the model's prunable weights while it is open. It keeps the dense weights
once (restore is a copy back, bit for bit) and rewrites only the layers whose target changed
since the last plan. Subclasses say how a layer at a target is written (:meth:`_write`) and
which plans they can write at all (:meth:`check`, :meth:`snap`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch

from allocsearch.data.windows import DataConfig
from allocsearch.database.grid import LevelGrid
from allocsearch.engine import LayerTarget
from allocsearch.models.loading import LoadedModel
from allocsearch.plan import Plan
from allocsearch.profile import Profile

#: A layer's written state: None is dense; anything else compares equal when the weights are.
StateKey = Hashable | None


@dataclass(frozen=True)
class BackendSettings:
    """What every backend may need besides the model and its dense profile."""

    pruner: str = "wanda"
    grid: LevelGrid = field(default_factory=LevelGrid)
    batch_size: int = 1
    cache_dir: Path | None = None
    progress: bool = True


class Backend(ABC):
    """Writes plans into a model in place and restores it (see the module docstring)."""

    name: ClassVar[str]

    def __init__(self, loaded: LoadedModel, profile: Profile, settings: BackendSettings) -> None:
        self.loaded = loaded
        self.adapter = loaded.adapter
        self.profile = profile
        self.settings = settings
        self._layers = self.adapter.prunable_layers()
        #: name -> (out, in) dense weight, in the model's dtype and device
        self.dense: dict[str, torch.Tensor] = {
            n: self.adapter.get_weight(m).detach().clone() for n, m in self._layers.items()}
        self._current: dict[str, StateKey] = dict.fromkeys(self._layers)

    @staticmethod
    @abstractmethod
    def check_pruner(pruner: str) -> None:
        """Raise ValueError unless this backend can reproduce ``pruner``'s weights."""

    @property
    def names(self) -> list[str]:
        return list(self._layers)

    # ------------------------------------------------------------------ plans
    @abstractmethod
    def check(self, plan: Plan) -> None:
        """Raise PlanError when this backend cannot write ``plan`` (validated already)."""

    def snap(self, plan: Plan) -> Plan:
        """The nearest plan this backend can write exactly (the plan itself by default)."""
        return plan

    def apply(self, targets: Mapping[str, LayerTarget]) -> int:
        """Write every layer at its target (layers not named go dense); returns how many
        layers were rewritten."""
        unknown = set(targets) - set(self._layers)
        if unknown:
            raise ValueError(f"targets name layers the model does not have: {sorted(unknown)[:5]}")
        changed = 0
        for name, layer in self._layers.items():
            t = targets.get(name)
            key = self._key(name, t) if t is not None and (t.pattern.is_nm or t.sparsity > 0) else None
            if key == self._current[name]:
                continue
            w = self.adapter.get_weight(layer)  # (out, in) view of the parameter
            if t is not None and key is not None:
                self._write(name, w, t)
            else:
                w.copy_(self.dense[name])
            self._current[name] = key
            changed += 1
        return changed

    @abstractmethod
    def _key(self, name: str, target: LayerTarget) -> StateKey:
        """What identifies the weights of ``name`` at ``target`` (not dense)."""

    @abstractmethod
    def _write(self, name: str, weight: torch.Tensor, target: LayerTarget) -> None:
        """Write ``name`` at ``target`` into ``weight``, its (out, in) parameter view."""

    def restore(self) -> None:
        """Put every dense weight back (bit-identical to when the backend was built)."""
        for name, layer in self._layers.items():
            self.adapter.get_weight(layer).copy_(self.dense[name])
            self._current[name] = None

    def forget(self) -> None:
        """Mark the model's weights as unknown (someone else wrote them): the next
        :meth:`apply` rewrites every layer."""
        for name in self._current:
            self._current[name] = ("unknown",)

    # ------------------------------------------------------------- anchoring
    def anchor(self, plan: Plan | None, calibration: DataConfig) -> None:
        """Model a sequential prune near ``plan`` (None: back to the dense inputs). The model
        is dense on entry; it must be dense again (or forgotten) on return."""
        raise ValueError(f"the {self.name} backend has no anchored mode")

    # --------------------------------------------------------------- plumbing
    def nbytes(self) -> dict[str, int]:
        """Bytes held in memory beyond the model."""
        return {"dense_copy": sum(t.numel() * t.element_size() for t in self.dense.values())}

    def recon_errors(self) -> tuple[tuple[float, ...], dict[str, list[float]]] | None:
        """Per module, the relative reconstruction error at every level of a grid, when the
        backend measured it (the level database); None otherwise."""
        return None

    def close(self) -> None:
        self.restore()
