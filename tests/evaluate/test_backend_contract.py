"""Contract every registered evaluator backend honours (parametrised over the registry): a
prepared plan is accepted, written only where it changed, read back as the pruner's own
weights, and restored bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from allocsearch.apply import plan_targets
from allocsearch.budget import random_plan
from allocsearch.database import LevelGrid
from allocsearch.evaluate import BACKENDS, Backend, BackendSettings
from allocsearch.evaluate.backends import make_backend
from allocsearch.plan import PlanError
from allocsearch.profile import Profile
from tests.helpers import tiny_profile

#: The pruner each backend is exercised with.
PRUNER = {"ranks": "wanda", "database": "sparsegpt"}
GRID = LevelGrid((0.0, 0.3, 0.5, 0.7))


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Backend, Profile]:
    prof = tiny_profile()
    assert prof.loaded is not None
    name = str(request.param)
    settings = BackendSettings(PRUNER[name], GRID, 1, tmp_path, progress=False)
    return make_backend(name, prof.loaded, prof, settings), prof


def test_every_backend_has_a_contract_pruner() -> None:
    assert set(PRUNER) == set(BACKENDS)


def test_prepared_plans_write_restore_and_skip_unchanged(backend: tuple[Backend, Profile]) -> None:
    be, prof = backend
    assert prof.loaded is not None
    model = prof.loaded.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = be.snap(random_plan(prof.identity, 0.5, seed=4))
    be.check(plan)
    assert abs(plan.budget() - 0.5) <= 1e-6
    targets = plan_targets(plan)
    assert be.apply(targets) == sum(1 for t in targets.values() if t.sparsity > 0)
    assert be.apply(targets) == 0  # nothing changed, nothing written
    layers = prof.loaded.adapter.prunable_layers()
    for n, t in targets.items():
        zeros = float((prof.loaded.adapter.get_weight(layers[n]) == 0).float().mean())
        assert zeros == pytest.approx(t.sparsity, abs=1.0 / be.dense[n].numel()), n
    be.forget()
    assert be.apply(targets) == len(targets)  # unknown weights: everything rewritten
    be.restore()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_unknown_layers_are_refused(backend: tuple[Backend, Profile]) -> None:
    be, _ = backend
    from allocsearch.engine import LayerTarget

    with pytest.raises(ValueError, match="does not have"):
        be.apply({"model.layers.9.mlp.up_proj": LayerTarget(0.5)})


def test_a_backend_refuses_what_it_cannot_write(backend: tuple[Backend, Profile]) -> None:
    be, prof = backend
    plan = random_plan(prof.identity, 0.5, seed=1)
    if be.name == "database":
        with pytest.raises(PlanError, match="off the level grid"):
            be.check(plan)
    else:
        be.check(plan)  # ranks: any sparsity
        assert be.snap(plan) is plan
