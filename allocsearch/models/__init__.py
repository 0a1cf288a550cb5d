"""Model loading and the architecture adapters (the only code that knows HF module paths)."""

from __future__ import annotations

from allocsearch.models.adapters import (
    ARCHITECTURES,
    ArchSpec,
    ModelAdapter,
    UnsupportedArchitectureError,
)
from allocsearch.models.loading import (
    DTYPES,
    SMOLLM2_ALIAS,
    LoadedModel,
    default_cache_dir,
    load_model,
    model_nbytes,
    resolve_device,
    resolve_dtype,
    save_model,
    smollm2_gguf_path,
)

__all__ = [
    "ARCHITECTURES",
    "DTYPES",
    "SMOLLM2_ALIAS",
    "ArchSpec",
    "LoadedModel",
    "ModelAdapter",
    "UnsupportedArchitectureError",
    "default_cache_dir",
    "load_model",
    "model_nbytes",
    "resolve_device",
    "resolve_dtype",
    "save_model",
    "smollm2_gguf_path",
]
