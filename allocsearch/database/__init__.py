"""The level database (EvoPress-style): every prunable module pruned at every level of a grid,
built once per (model, data, pruner, grid, inputs) and read back per plan."""

from __future__ import annotations

from allocsearch.database.build import BuildReport, build_database, estimate_bytes, open_database
from allocsearch.database.grid import DEFAULT_LEVELS, LevelGrid
from allocsearch.database.store import (
    DATABASE_INPUTS,
    DatabaseError,
    DatabaseSpec,
    LevelDatabase,
    anchor_digest,
    clear_databases,
    levels_root,
    list_databases,
)

__all__ = [
    "DATABASE_INPUTS",
    "DEFAULT_LEVELS",
    "BuildReport",
    "DatabaseError",
    "DatabaseSpec",
    "LevelDatabase",
    "LevelGrid",
    "anchor_digest",
    "build_database",
    "clear_databases",
    "estimate_bytes",
    "levels_root",
    "list_databases",
    "open_database",
]
