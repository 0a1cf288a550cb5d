"""Text sources and token windows."""

from __future__ import annotations

from allocsearch.data.sources import (
    PARTS,
    SOURCES,
    EmbeddedSource,
    FileSource,
    TextSource,
    get_source,
)
from allocsearch.data.windows import (
    DataConfig,
    calibration_windows,
    evaluation_windows,
    tokenize,
)

__all__ = [
    "PARTS",
    "SOURCES",
    "DataConfig",
    "EmbeddedSource",
    "FileSource",
    "TextSource",
    "calibration_windows",
    "evaluation_windows",
    "get_source",
    "tokenize",
]
