"""allocsearch: search per-layer sparsity allocations for pruning large language models.

Importing the package is cheap and has no side effects; the heavy modules (torch,
transformers, optuna) are imported by the subpackages that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
