"""Evaluation: perplexity, the cached-mask Evaluator (fitness, fidelities) and, each taking an
Evaluator, exact verification, task accuracy and latency."""

from __future__ import annotations

from allocsearch.evaluate.backends import BACKENDS, Backend, BackendSettings
from allocsearch.evaluate.config import EvaluatorConfig, FitnessStep
from allocsearch.evaluate.evaluator import Evaluator
from allocsearch.evaluate.fitness import FITNESSES, DenseReference, Fitness
from allocsearch.evaluate.latency import Latency, LatencyCache, LatencyConfig, PlanLatency, measure_latency
from allocsearch.evaluate.perplexity import PerplexityResult, perplexity
from allocsearch.evaluate.scoring import plan_accuracy
from allocsearch.evaluate.verification import Draw, Verification, VerifyConfig, verify, verify_plan

__all__ = [
    "BACKENDS",
    "FITNESSES",
    "Backend",
    "BackendSettings",
    "DenseReference",
    "Draw",
    "Evaluator",
    "EvaluatorConfig",
    "Fitness",
    "FitnessStep",
    "Latency",
    "LatencyCache",
    "LatencyConfig",
    "PerplexityResult",
    "PlanLatency",
    "Verification",
    "VerifyConfig",
    "measure_latency",
    "perplexity",
    "plan_accuracy",
    "verify",
    "verify_plan",
]
