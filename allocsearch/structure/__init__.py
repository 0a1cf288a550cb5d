"""Structured (NAS) actions applied to models: which heads/channels go (selection), the masked
equivalent for cheap fitness (hooks), and physical removal with saving and reloading."""

from __future__ import annotations

from allocsearch.structure.masked import StructureMasks
from allocsearch.structure.physical import remove_structure, save_structured
from allocsearch.structure.selection import BlockSelection, SubSelection, select_structure

__all__ = [
    "BlockSelection",
    "StructureMasks",
    "SubSelection",
    "remove_structure",
    "save_structured",
    "select_structure",
]
