"""Task accuracy in a study: verified beside perplexity, a second objective, or a constraint.

A study config's ``tasks:`` section names lm-evaluation-harness tasks
(:mod:`allocsearch.evaluate.tasks`). With it:

- the exact verification of the best plans and priors also measures their task accuracy
  (``study report`` shows it beside the verified perplexity);
- ``objectives: [fitness, accuracy]`` makes the mean ``metric`` over the tasks, measured on
  the cached-mask model, the second objective (maximised; NSGA-II is the natural sampler);
  the search reads our continuation task built from the *search* part of the study's text,
  never the evaluation part that verification scores;
- ``max_drop: X`` makes it a constraint: dense accuracy - plan accuracy <= X. Optuna's
  constrained samplers (TPE, NSGA-II, GP) then prefer feasible trials.

The dense model's accuracy is measured once per study and task settings (stored under their
digest: tasks that change are measured again); each scored trial stores ``accuracy`` (and
``constraint``, <= 0 when met).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import optuna

from allocsearch.data.continuation import CONTINUATION_TASK, ContinuationConfig
from allocsearch.evaluate import Evaluator, plan_accuracy
from allocsearch.evaluate.tasks import TaskConfig, TaskScore
from allocsearch.io import json_digest
from allocsearch.plan import Plan
from allocsearch.search import store

METRICS = ("acc", "acc_norm")
#: Samplers that read trial constraints (``Trial.set_constraint``); the others ignore them.
CONSTRAINED_SAMPLERS = ("tpe", "nsga2", "gp")
#: The constraint's name in the trial's system attributes (``constraints:accuracy_drop``).
CONSTRAINT = "accuracy_drop"


@dataclass(frozen=True)
class TaskSettings:
    names: tuple[str, ...] = ()
    limit: int | None = None
    batch_size: int = 8
    metric: str = "acc"
    max_drop: float | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"tasks.metric must be one of {METRICS}, got {self.metric!r}")
        if self.max_drop is not None and not 0.0 <= self.max_drop < 1.0:
            raise ValueError(f"tasks.max_drop must lie in [0, 1), got {self.max_drop}")
        if self.names:
            self.config()  # limit and batch size checked where they are used

    @staticmethod
    def parse(raw: Any) -> TaskSettings:
        """``tasks: [a, b]`` or ``tasks: {names: [a, b], limit: 200, metric: acc, max_drop: 0.05}``;
        ``tasks: true`` is our own task (allocsearch_continuation)."""
        if raw is None or raw is False:
            return TaskSettings()
        if raw is True:
            raw = [CONTINUATION_TASK]
        if isinstance(raw, (list, str)):
            raw = {"names": raw}
        if not isinstance(raw, dict):
            raise ValueError("tasks must be a list of task names or a mapping with names")
        names = raw.get("names") or []
        names = TaskConfig.parse_names(names) if isinstance(names, str) else tuple(map(str, names))
        if not names:
            raise ValueError("tasks: name at least one task")
        return TaskSettings(**(raw | {"names": names}))

    @property
    def enabled(self) -> bool:
        return bool(self.names)

    def config(self, part: str = "search", source: str = "embedded") -> TaskConfig:
        """The tasks as measured on ``part`` of ``source``: our continuation task is built
        from that part (``search`` while searching, ``evaluation`` when verifying); hub and
        YAML tasks bring their own data."""
        return TaskConfig(self.names, limit=self.limit, batch_size=self.batch_size,
                          continuation=ContinuationConfig(source=source, part=part))

    def mean(self, scores: dict[str, TaskScore]) -> float:
        """The mean ``metric`` over the tasks (``acc`` where a task has no ``acc_norm``)."""
        values = [s.acc_norm if self.metric == "acc_norm" and s.acc_norm is not None else s.acc
                  for s in scores.values()]
        return sum(values) / len(values)


class AccuracyScorer:
    """Scores trials' plans on the tasks with the Evaluator's cached masks."""

    def __init__(self, study: optuna.Study, ev: Evaluator, settings: TaskSettings) -> None:
        self.ev = ev
        self.settings = settings
        self.task_config = settings.config("search", ev.config.source)
        key = json_digest([settings.metric, asdict(self.task_config)])
        dense = store.dense_accuracy(study, key)
        if dense is None:
            dense = settings.mean(plan_accuracy(ev, None, self.task_config))
            store.save_dense_accuracy(study, key, dense)
        self.dense = dense
        self._last: tuple[Plan, float] | None = None

    def score(self, plan: Plan) -> float:
        """The plan's mean accuracy (the last plan's is remembered: objective and constraint
        read it once)."""
        if self._last is None or self._last[0] is not plan:
            self._last = (plan, self.settings.mean(plan_accuracy(self.ev, plan, self.task_config)))
        return self._last[1]

    def record(self, trial: optuna.Trial, plan: Plan) -> None:
        """Before the trial is told: its accuracy and, with ``max_drop``, its constraint."""
        acc = self.score(plan)
        store.write_trial(trial, accuracy=round(acc, 6))
        if self.settings.max_drop is not None:
            value = round(self.dense - acc - self.settings.max_drop, 6)
            store.write_trial(trial, constraint=value)
            trial.set_constraint(CONSTRAINT, value)  # what constrained samplers read
