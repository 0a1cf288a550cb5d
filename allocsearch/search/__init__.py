"""The search: the only package that imports Optuna. Spaces (YAML) -> trials -> plans,
study configs, samplers (including an EvoPress-style one), the ask/tell runner with predictor
short-listing, records for the predictor, and reports."""

from __future__ import annotations

from allocsearch.search.config import StudyConfig
from allocsearch.search.runner import (
    StudyRun,
    open_study,
    run_study,
    study_evaluator,
    tokens_read,
    verify_best,
)
from allocsearch.search.settings import StudyConfigError, WarmStart
from allocsearch.search.space import SearchSpace, SpaceError, find_space
from allocsearch.search.storage import load_study
from allocsearch.search.store import ProtocolError, StoredTrial, StudyProtocol, trial_plan
from allocsearch.search.trials import TrialRecord

__all__ = [
    "ProtocolError",
    "SearchSpace",
    "SpaceError",
    "StoredTrial",
    "StudyConfig",
    "StudyConfigError",
    "StudyProtocol",
    "StudyRun",
    "TrialRecord",
    "WarmStart",
    "find_space",
    "load_study",
    "open_study",
    "run_study",
    "study_evaluator",
    "tokens_read",
    "trial_plan",
    "verify_best",
]
