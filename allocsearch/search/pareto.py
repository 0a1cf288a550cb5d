"""The Pareto front of a two-objective study."""

from __future__ import annotations

import optuna

from allocsearch.search import store
from allocsearch.search.store import StoredTrial


def second_objective(study: optuna.Study) -> str:
    """The name of a two-objective study's second objective (sparsity, latency or accuracy)."""
    names = store.facts(study)["objectives"]
    return str(names[1]) if len(names) > 1 else "sparsity"


def pareto_front(study: optuna.Study) -> list[StoredTrial]:
    """The complete trials no other trial beats on (fitness down; sparsity up or latency
    down), in ascending order of the second objective.

    The second value is compared at 1e-6 (the budget's tolerance), so of two plans projected
    to the same target the one with the lower fitness is the front's, whatever their last
    float bits.
    """
    done = store.ranked(study)
    sign = -1.0 if study.directions[1] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    # Best second value first, then lower fitness: a trial is on the front when its fitness
    # beats that of every trial at least as good on the second objective.
    done.sort(key=lambda t: (sign * round(t.values[1], 6), t.values[0]))
    front: list[StoredTrial] = []
    for t in done:
        if not front or t.values[0] < front[-1].values[0]:
            front.append(t)
    return sorted(front, key=lambda t: t.values[1])
