"""One seed's search in the seeded suites of benchmarks/quality.py, run as ``allocsearch
search`` runs its config (one study, or anchored rounds when the config has ``anchor.rounds``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from _common import restart_unfinished

from allocsearch.evaluate import Evaluator
from allocsearch.plan import Plan
from allocsearch.search import StudyConfig, run_study, store
from allocsearch.search.anchored import run_anchored
from allocsearch.search.report import best_plan


@dataclass
class Searched:
    """One seed's search as ``allocsearch search`` runs its config: one study, or a study per
    anchored round (the first holds the priors); the best plan and its search fitness (in
    rounds: its exact sequential fitness on the search windows), and the plans measured exactly
    between rounds."""

    studies: list[Any]
    plan: Plan
    fitness: float
    exact: int
    #: The study's finalists (search/finalists.py) where its config has them.
    finalists: dict[str, Any] | None = None


def search(cfg: StudyConfig, ev: Evaluator, progress: bool) -> Searched:
    if cfg.anchor.rounds:
        run = run_anchored(cfg, evaluator=ev, progress=progress, verify=False)
        assert run.best is not None
        return Searched([r.study for r in run.rounds], run.best,
                        float(run.best.provenance["exact_search_fitness"]), len(run.measured))
    restart_unfinished(cfg)
    study = run_study(cfg, evaluator=ev, progress=progress, verify=False).study
    plan = best_plan(study)  # the finalists' choice where they ran
    return Searched([study], plan, float(plan.provenance["fitness"]), 0, store.finalists(study))
