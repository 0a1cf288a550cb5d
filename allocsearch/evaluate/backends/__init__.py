"""Evaluator backends, by name: how a plan's targets are written into the live model.

- ``ranks``: cached score ranks of a ranking pruner (Wanda, magnitude); any plan, any
  pattern; masks equal a one-shot prune on the dense profile's statistics.
- ``database``: a level database (any registered pruner, SparseGPT by default); plans on its
  level grid; weights equal that pruner's one-shot prune of each module at its level.
"""

from __future__ import annotations

from allocsearch._registry import lookup
from allocsearch.evaluate.backends.base import Backend, BackendSettings
from allocsearch.evaluate.backends.database import LevelBackend
from allocsearch.evaluate.backends.ranks import RankBackend, index_dtype, rank_keep, rank_mask, score_ranks
from allocsearch.models.loading import LoadedModel
from allocsearch.profile import Profile

BACKENDS: dict[str, type[Backend]] = {
    RankBackend.name: RankBackend,
    LevelBackend.name: LevelBackend,
}


def backend_class(name: str) -> type[Backend]:
    return lookup(BACKENDS, name, "evaluator backend (masks)")


def make_backend(name: str, loaded: LoadedModel, profile: Profile, settings: BackendSettings) -> Backend:
    """Build the backend ``name`` on a dense model."""
    return backend_class(name)(loaded, profile, settings)


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendSettings",
    "LevelBackend",
    "RankBackend",
    "backend_class",
    "index_dtype",
    "make_backend",
    "rank_keep",
    "rank_mask",
    "score_ranks",
]
