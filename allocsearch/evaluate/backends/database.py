"""The level-database backend: a plan is written by copying each changed module's stored
level into the model (EvoPress-style), so candidates are scored on the very weights the
user's pruner (SparseGPT by default) gives each module at that level.

Plans must sit on the level grid: :meth:`LevelBackend.snap` moves a plan there (same
target), and the search spaces and the EvoPress sampler move in whole levels. Entries are
read through the memory map on demand; the dense weights are kept in memory for an exact
restore. ``anchor(plan)`` switches to a database built on the activations of a sequential
prune at ``plan`` (built once per anchor, then cached like any other).
"""

from __future__ import annotations

import torch

from allocsearch.apply import plan_targets
from allocsearch.budget import snap_to_levels
from allocsearch.data.windows import DataConfig
from allocsearch.database import (
    DatabaseSpec,
    LevelDatabase,
    LevelGrid,
    anchor_digest,
    build_database,
)
from allocsearch.engine import LayerTarget
from allocsearch.evaluate.backends.base import Backend, BackendSettings, StateKey
from allocsearch.models.loading import LoadedModel
from allocsearch.plan import Plan, PlanError
from allocsearch.profile import Profile
from allocsearch.pruners import PRUNERS


class LevelBackend(Backend):
    """Writes plans from a level database (see the module docstring)."""

    name = "database"

    def __init__(self, loaded: LoadedModel, profile: Profile, settings: BackendSettings) -> None:
        self.check_pruner(settings.pruner)
        super().__init__(loaded, profile, settings)
        self.spec = DatabaseSpec(settings.pruner, settings.grid, profile.data)
        self.db: LevelDatabase = self._build(self.spec, None)
        self._dense_db = self.db

    @staticmethod
    def check_pruner(pruner: str) -> None:
        if pruner not in PRUNERS:
            raise ValueError(f"unknown pruner {pruner!r} for the level database; known: "
                             f"{', '.join(PRUNERS)}")

    @property
    def grid(self) -> LevelGrid:
        return self.db.grid

    def _build(self, spec: DatabaseSpec, anchor: dict[str, LayerTarget] | None) -> LevelDatabase:
        s = self.settings
        return build_database(self.loaded, spec, anchor=anchor, cache_dir=s.cache_dir,
                              batch_size=s.batch_size, progress=s.progress).database

    @staticmethod
    def _unstructured_only(plan: Plan) -> None:
        if plan.structured() or any(c.pattern.is_nm for c in plan.modules.values()):
            raise PlanError("the level database holds unstructured levels: score plans with "
                            "N:M patterns or structured actions with masks: ranks")

    def check(self, plan: Plan) -> None:
        self._unstructured_only(plan)
        off = [n for n, c in plan.modules.items() if not self._on_grid(c.sparsity)]
        if off:
            raise PlanError(f"{len(off)} modules are off the level grid ({self.grid.describe()}), "
                            f"e.g. {off[0]} at {plan.modules[off[0]].sparsity:.6g}; snap the "
                            f"plan first (Evaluator.prepare)")

    def _on_grid(self, s: float) -> bool:
        return any(abs(s - v) <= 1e-6 for v in self.grid.levels)

    def snap(self, plan: Plan) -> Plan:
        self._unstructured_only(plan)
        if all(self._on_grid(c.sparsity) for c in plan.modules.values()):
            return plan
        return snap_to_levels(plan, self.grid.levels)

    def _key(self, name: str, target: LayerTarget) -> StateKey:
        return (self.db.key, self.grid.index(target.sparsity))

    def _write(self, name: str, weight: torch.Tensor, target: LayerTarget) -> None:
        weight.copy_(self.db.load(name, target.sparsity))

    def anchor(self, plan: Plan | None, calibration: DataConfig) -> None:
        if plan is None:
            self.db = self._dense_db
        else:
            targets = plan_targets(plan)
            digest = anchor_digest({n: t.sparsity for n, t in targets.items()})
            spec = DatabaseSpec(self.spec.pruner, self.spec.grid, calibration, digest)
            try:
                self.db = self._build(spec, targets)
            finally:
                self.restore()
        self.forget()

    def recon_errors(self) -> tuple[tuple[float, ...], dict[str, list[float]]]:
        return self.grid.levels, self.db.error_table()

    def nbytes(self) -> dict[str, int]:
        return super().nbytes() | {"database_on_disk": self.db.nbytes()}
