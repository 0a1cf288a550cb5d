"""A model with a plan's physical shape and placeholder weights, for timing it.

Speed depends on shapes only, so the search times a candidate on a model built from the
config (no copy of the real weights): dropped blocks removed, kept heads and channels the
first ones, biases where compensation would add them. ``shape_key`` names the shape; MLP
widths are rounded to ``bucket`` channels so that near-identical widths share a timing.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from allocsearch.actions import BlockAction
from allocsearch.models.adapters import ModelAdapter
from allocsearch.models.heads import Structure
from allocsearch.models.surgery import BlockShape, apply_shapes, remove_blocks

ShapeKey = tuple[tuple[int, int], ...]


def shape_key(
    s: Structure, num_blocks: int, actions: Mapping[int, BlockAction], bucket: int = 32
) -> ShapeKey:
    """Per block (kept KV groups, kept channels rounded to ``bucket``); (0, 0) = dropped."""
    out = []
    for b in range(num_blocks):
        a = actions.get(b, BlockAction())
        channels = a.kept_channels(s)
        if 0 < channels < s.intermediate:
            channels = min(s.intermediate, max(bucket, bucket * round(channels / bucket)))
        out.append((a.kept_heads(s) // s.group, channels))
    return tuple(out)


@torch.no_grad()
def shape_model(config: Any, key: ShapeKey, *, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A causal LM of ``config`` cut to the shape ``key`` (weights are placeholders)."""
    from transformers import AutoModelForCausalLM

    cfg = copy.deepcopy(config)
    cfg.use_cache = True
    model: nn.Module = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    model.to(device).eval()
    adapter = ModelAdapter(model)
    s = adapter.require_structured()
    drop = {b for b, (g, c) in enumerate(key) if g == 0 and c == 0}
    if drop:
        remove_blocks(adapter, drop)
    # Compensation puts a bias on every narrowed or dropped sub-block's output.
    apply_shapes(adapter, [BlockShape(g, c, g < s.kv_heads, c < s.intermediate)
                           for b, (g, c) in enumerate(key) if b not in drop])
    return model
