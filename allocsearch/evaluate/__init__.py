"""Evaluation: perplexity now; the cached-mask evaluator and fidelities come later."""

from __future__ import annotations

from allocsearch.evaluate.perplexity import PerplexityResult, perplexity

__all__ = ["PerplexityResult", "perplexity"]
