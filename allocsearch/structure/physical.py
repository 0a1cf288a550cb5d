"""Physical removal: a plan's structured actions make the model genuinely smaller.

    selection = select_structure(plan.structured(), profile, loaded.adapter)
    remove_structure(loaded, selection)     # in place: fewer blocks, narrower projections
    save_structured(loaded, out_dir)        # transformers checkpoint, or + structure file

A model whose blocks all keep one shape (depth pruning only, or the same width everywhere)
saves as an ordinary transformers checkpoint with an edited config; any other shape saves the
same safetensors plus ``allocsearch_structure.json``, which
:func:`allocsearch.models.load_model` reads to rebuild the shapes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from allocsearch.io import atomic_write_text
from allocsearch.models.loading import STRUCTURE_FILE, LoadedModel, save_model
from allocsearch.models.surgery import (
    BlockShape,
    block_shapes,
    drop_subblock,
    narrow_subblock,
    remove_blocks,
)
from allocsearch.structure.selection import BlockSelection

STRUCTURE_SCHEMA_VERSION = 1


def remove_structure(loaded: LoadedModel, selection: Mapping[int, BlockSelection]) -> list[BlockShape]:
    """Apply a selection physically, in place; returns the blocks' new shapes."""
    adapter = loaded.adapter
    for b, sel in selection.items():
        for kind, sub in sel.subs.items():
            if sub.dropped:
                drop_subblock(adapter, b, kind, sub.bias)
            else:
                narrow_subblock(adapter, b, kind, sub.kept, sub.bias)
    drop = {b for b, sel in selection.items() if sel.drop_block}
    if drop:
        remove_blocks(adapter, drop)
    return block_shapes(adapter)


def _plain_config(loaded: LoadedModel, shapes: list[BlockShape]) -> dict[str, Any] | None:
    """Config edits that let transformers alone build these shapes, or None when it cannot."""
    first = shapes[0]
    if any(sh != first for sh in shapes) or first.kv_heads == 0 or first.channels == 0:
        return None
    s = loaded.adapter.require_structured()
    edits: dict[str, Any] = {"num_key_value_heads": first.kv_heads,
                             "num_attention_heads": first.kv_heads * s.group,
                             "head_dim": s.head_dim, "intermediate_size": first.channels}
    if first.attention_bias or first.mlp_bias:
        if loaded.adapter.model_type != "llama":  # only LLaMA's config switches biases on
            return None
        edits |= {"attention_bias": first.attention_bias, "mlp_bias": first.mlp_bias}
    return edits


def save_structured(loaded: LoadedModel, out_dir: Path) -> bool:
    """Save a structurally pruned model; True when it is a plain transformers checkpoint."""
    shapes = block_shapes(loaded.adapter)
    edits = _plain_config(loaded, shapes)
    config: Any = loaded.model.config
    if edits is not None:
        for key, value in edits.items():
            setattr(config, key, value)
        # A config bias switch gives every projection of the sub-block a bias: fill zeros.
        for i in range(loaded.adapter.num_blocks):
            for kind, on in (("attention", edits.get("attention_bias")), ("mlp", edits.get("mlp_bias"))):
                if not on:
                    continue
                for lin in [*loaded.adapter.in_projs(i, kind), loaded.adapter.out_proj(i, kind)]:
                    if lin.bias is None:
                        lin.bias = nn.Parameter(lin.weight.new_zeros(lin.out_features))
    save_model(loaded, out_dir)
    path = out_dir / STRUCTURE_FILE
    if edits is None:
        payload = {"schema_version": STRUCTURE_SCHEMA_VERSION,
                   "blocks": [sh.to_dict() for sh in shapes]}
        atomic_write_text(path, json.dumps(payload, indent=1) + "\n")
    elif path.exists():
        path.unlink()
    return edits is not None
