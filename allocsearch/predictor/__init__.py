"""The accuracy predictor: features of a plan (no forward pass), GBDT ensembles trained on
(plan -> measured fitness) records, held-out evaluation. Imports no Optuna: studies become
records in :mod:`allocsearch.search.records`."""

from __future__ import annotations

from allocsearch.predictor.evaluation import (
    HeldOut,
    Scores,
    hold_out,
    importances,
    leave_one_study_out,
    parity_plot,
    score,
)
from allocsearch.predictor.feature_cache import build_feature_table, cached_feature_table
from allocsearch.predictor.features import FEATURE_VERSION, FeatureError, FeatureTable
from allocsearch.predictor.model import Predictor, PredictorError, PredictorMeta, train_predictor
from allocsearch.predictor.records import PlanRecord, RecordsError, read_records, write_records

__all__ = [
    "FEATURE_VERSION",
    "FeatureError",
    "FeatureTable",
    "HeldOut",
    "PlanRecord",
    "Predictor",
    "PredictorError",
    "PredictorMeta",
    "RecordsError",
    "Scores",
    "build_feature_table",
    "cached_feature_table",
    "hold_out",
    "importances",
    "leave_one_study_out",
    "parity_plot",
    "read_records",
    "score",
    "train_predictor",
    "write_records",
]
