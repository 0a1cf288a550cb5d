"""Task accuracy of plans written with an Evaluator's cached masks (no prune, no copy): what a
study's accuracy objective and constraint read. Exact verification measures tasks on the
sequentially pruned model instead (:mod:`allocsearch.evaluate.verification`)."""

from __future__ import annotations

from allocsearch.evaluate.evaluator import Evaluator
from allocsearch.evaluate.tasks import TaskConfig, TaskScore, task_accuracy
from allocsearch.plan import Plan


def plan_accuracy(ev: Evaluator, plan: Plan | None, config: TaskConfig) -> dict[str, TaskScore]:
    """Task accuracy of ``plan`` on the Evaluator's model (None: the dense model)."""
    if plan is None:
        ev.restore()
    else:
        ev.apply(plan)
    return task_accuracy(ev.loaded, config, progress=ev.progress)
