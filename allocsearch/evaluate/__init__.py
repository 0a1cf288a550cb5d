"""Evaluation: perplexity, and the cached-mask Evaluator (fitness, fidelities, verification)."""

from __future__ import annotations

from allocsearch.evaluate.backends import BACKENDS, Backend, BackendSettings
from allocsearch.evaluate.evaluator import (
    Evaluator,
    EvaluatorConfig,
    FitnessStep,
    Verification,
    VerifyConfig,
)
from allocsearch.evaluate.fitness import FITNESSES, DenseReference, Fitness
from allocsearch.evaluate.latency import Latency, LatencyCache, LatencyConfig, measure_latency
from allocsearch.evaluate.perplexity import PerplexityResult, perplexity

__all__ = [
    "BACKENDS",
    "FITNESSES",
    "Backend",
    "BackendSettings",
    "DenseReference",
    "Evaluator",
    "EvaluatorConfig",
    "Fitness",
    "FitnessStep",
    "Latency",
    "LatencyCache",
    "LatencyConfig",
    "PerplexityResult",
    "Verification",
    "VerifyConfig",
    "measure_latency",
    "perplexity",
]
