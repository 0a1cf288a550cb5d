"""Physical structure changes of a LLaMA-like model, and their record for reloading.

The adapter layer owns every HF module path, so the module surgery lives here: narrowing a
sub-block's projections, replacing a dropped sub-block by a zero module, removing blocks
(renumbering the attention cache slots) and editing the config to match. A
:class:`BlockShape` list describes the result; :func:`apply_shapes` rebuilds those shapes on
a freshly configured model so saved heterogeneous models load again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from allocsearch.models.adapters import LLAMA_SUBBLOCKS, ModelAdapter
from allocsearch.pruners.structured_sparsify import expand_groups


class _Dropped(nn.Module):
    """A dropped sub-block: adds its compensation ``bias`` (hidden,) to the residual stream,
    or nothing."""

    def __init__(self, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.bias = nn.Parameter(bias.clone()) if bias is not None else None

    def constant(self, hidden_states: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(hidden_states)
        return out + self.bias.to(out.dtype) if self.bias is not None else out


class ZeroAttention(_Dropped):
    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
        return self.constant(hidden_states), None


class ZeroMLP(_Dropped):
    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.constant(hidden_states)


_ZERO: dict[str, type[_Dropped]] = {"attention": ZeroAttention, "mlp": ZeroMLP}


@dataclass(frozen=True)
class BlockShape:
    """One kept block: kept KV groups / MLP channels (0: sub-block dropped) and whether its
    output projections carry a compensation bias."""

    kv_heads: int
    channels: int
    attention_bias: bool = False
    mlp_bias: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sliced(layer: nn.Linear, rows: torch.Tensor | None, cols: torch.Tensor | None) -> nn.Linear:
    """A new Linear holding ``layer``'s kept rows (outputs) and columns (inputs)."""
    w = layer.weight.data
    b = layer.bias.data if layer.bias is not None else None
    if rows is not None:
        w = w[rows.to(w.device)]
        b = b[rows.to(w.device)] if b is not None else None
    if cols is not None:
        w = w[:, cols.to(w.device)]
    new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, device=w.device, dtype=w.dtype)
    new.weight.data.copy_(w)
    if b is not None and new.bias is not None:
        new.bias.data.copy_(b)
    return new


def narrow_subblock(adapter: ModelAdapter, index: int, kind: str, kept: torch.Tensor,
                    bias: torch.Tensor | None) -> None:
    """Keep only groups ``kept`` of a sub-block (KV groups of attention: their query heads
    and k/v heads; MLP channels), adding ``bias`` (hidden,) to its output projection."""
    s = adapter.require_structured()
    mod = adapter.sub_block(index, kind)
    _, ins, out = LLAMA_SUBBLOCKS[kind]
    if kind == "attention":
        q_rows = expand_groups(kept, s.group * s.head_dim)  # a KV group's query heads
        kv_rows = expand_groups(kept, s.head_dim)  # its key/value head
        rows = {"q_proj": q_rows, "k_proj": kv_rows, "v_proj": kv_rows}
        cols = q_rows
    else:
        rows = {n: kept for n in ins}
        cols = kept
    for name in ins:
        setattr(mod, name, _sliced(getattr(mod, name), rows[name], None))
    proj = _sliced(getattr(mod, out), None, cols)
    if bias is not None:
        extra = bias.to(proj.weight.device, proj.weight.dtype)
        if proj.bias is None:
            new = nn.Linear(proj.in_features, proj.out_features, bias=True,
                            device=proj.weight.device, dtype=proj.weight.dtype)
            new.weight.data.copy_(proj.weight.data)
            new.bias.data.copy_(extra)  # type: ignore[union-attr]
            proj = new
        else:
            proj.bias.data.add_(extra)
    setattr(mod, out, proj)


def drop_subblock(adapter: ModelAdapter, index: int, kind: str, bias: torch.Tensor | None = None) -> None:
    """Replace a sub-block by a constant module: ``bias`` (hidden,) or zeros (its pre-norm
    stays: a few hundred parameters)."""
    ref = adapter.out_proj(index, kind).weight
    b = bias.to(ref.device, ref.dtype) if bias is not None else None
    setattr(adapter.block(index), LLAMA_SUBBLOCKS[kind][0], _ZERO[kind](b))


def remove_blocks(adapter: ModelAdapter, drop: set[int]) -> None:
    """Delete blocks from the stack; renumber the KV-cache slots of the attentions left and
    set ``num_hidden_layers``. The adapter is refreshed to the new stack."""
    from allocsearch.models.adapters import _resolve

    blocks = _resolve(adapter.model, adapter.spec.blocks_path)
    assert isinstance(blocks, nn.ModuleList)
    kept = [blk for i, blk in enumerate(blocks) if i not in drop]
    parent_path, _, attr = adapter.spec.blocks_path.rpartition(".")
    setattr(_resolve(adapter.model, parent_path), attr, nn.ModuleList(kept))
    config: Any = adapter.model.config
    config.num_hidden_layers = len(kept)
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = [t for i, t in enumerate(config.layer_types) if i not in drop]
    adapter.refresh()
    renumber_cache_slots(adapter)


def renumber_cache_slots(adapter: ModelAdapter) -> None:
    """Number the real attentions 0, 1, ...: the KV cache is indexed by these, and the
    sequence length is read from slot 0, which must belong to a real attention."""
    slot = 0
    for i in range(adapter.num_blocks):
        attn = adapter.sub_block(i, "attention")
        if hasattr(attn, "layer_idx"):
            setattr(attn, "layer_idx", slot)  # noqa: B010 - a plain int attribute of HF attention
            slot += 1


def block_shapes(adapter: ModelAdapter) -> list[BlockShape]:
    """The shape of every block of a (possibly narrowed) LLaMA-like model."""
    s = adapter.require_structured()
    out: list[BlockShape] = []
    for i in range(adapter.num_blocks):
        counts: dict[str, int] = {}
        biases: dict[str, bool] = {}
        for kind in ("attention", "mlp"):
            mod = adapter.sub_block(i, kind)
            if isinstance(mod, _Dropped):
                counts[kind], biases[kind] = 0, mod.bias is not None
                continue
            proj = adapter.out_proj(i, kind)
            units = s.group * s.head_dim if kind == "attention" else 1
            counts[kind] = proj.in_features // units
            biases[kind] = proj.bias is not None
        out.append(BlockShape(counts["attention"], counts["mlp"], biases["attention"], biases["mlp"]))
    return out


def apply_shapes(adapter: ModelAdapter, shapes: list[BlockShape]) -> None:
    """Give a freshly configured model (one block per shape) the shapes of a saved one; the
    weights are placeholders until the saved state is loaded."""
    s = adapter.require_structured()
    if len(shapes) != adapter.num_blocks:
        raise ValueError(f"structure lists {len(shapes)} blocks, the config {adapter.num_blocks}")
    for i, shape in enumerate(shapes):
        for kind, keep, bias in (("attention", shape.kv_heads, shape.attention_bias),
                                 ("mlp", shape.channels, shape.mlp_bias)):
            full = s.kv_heads if kind == "attention" else s.intermediate
            hidden = adapter.out_proj(i, kind).out_features
            if keep == 0:
                drop_subblock(adapter, i, kind, torch.zeros(hidden) if bias else None)
            elif keep != full or bias:
                narrow_subblock(adapter, i, kind, torch.arange(keep),
                                torch.zeros(hidden) if bias else None)
    renumber_cache_slots(adapter)
