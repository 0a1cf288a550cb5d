"""The continuation task on SmolLM2-135M: the dense model well above chance, 70% uniform
Wanda well below the dense model (24 examples: a standard error of about 0.1;
dense 0.88 and pruned 0.46 when written)."""

from __future__ import annotations

from typing import Any

import pytest

from allocsearch.data import calibration_windows
from allocsearch.engine import prune_sequential, uniform_targets
from allocsearch.evaluate.tasks import TaskConfig, task_accuracy
from allocsearch.pruners import get_pruner

pytestmark = pytest.mark.real_model


def test_accuracy_falls_from_dense_to_70_percent_uniform(fresh_smollm2: Any) -> None:
    lm = fresh_smollm2
    config = TaskConfig(limit=24, batch_size=8)
    (dense,) = task_accuracy(lm, config, progress=False).values()
    assert dense.examples == 24 and dense.chance == 0.25
    assert dense.acc >= 0.55  # the full task's dense accuracy: tasks_sparsegpt_cpu.json
    windows = calibration_windows(lm.tokenizer, "embedded", 8, 128, seed=0)
    prune_sequential(lm.model, lm.adapter, get_pruner("wanda"), uniform_targets(lm.adapter, 0.7),
                     windows, progress=False)
    (pruned,) = task_accuracy(lm, config, progress=False).values()
    assert pruned.acc <= dense.acc - 0.15
