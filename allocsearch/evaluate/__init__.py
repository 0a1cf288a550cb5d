"""Evaluation: perplexity, and the cached-mask Evaluator (fitness, fidelities, verification)."""

from __future__ import annotations

from allocsearch.evaluate.evaluator import (
    Evaluator,
    EvaluatorConfig,
    FitnessStep,
    Verification,
    VerifyConfig,
)
from allocsearch.evaluate.fitness import FITNESSES, DenseReference, Fitness
from allocsearch.evaluate.mask_cache import SCORE_RULES, MaskCache
from allocsearch.evaluate.perplexity import PerplexityResult, perplexity

__all__ = [
    "FITNESSES",
    "SCORE_RULES",
    "DenseReference",
    "Evaluator",
    "EvaluatorConfig",
    "Fitness",
    "FitnessStep",
    "MaskCache",
    "PerplexityResult",
    "Verification",
    "VerifyConfig",
    "perplexity",
]
