"""The one place that knows Hugging Face module paths.

An adapter exposes a causal LM as a list of decoder blocks, each with named prunable
linear layers, and reads/writes their weights as (out_features, in_features) matrices
whatever the storage (GPT-2's Conv1D stores (in, out)).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from allocsearch.models.heads import Structure
from allocsearch.models.offload import BlockOffload


@dataclass(frozen=True)
class ArchSpec:
    """Where an architecture keeps its decoder blocks and what its prunable layers are."""

    blocks_path: str  # attribute path from the *ForCausalLM model to the block list
    transposed: bool = False  # weights stored (in, out): GPT-2's Conv1D
    attention: str = "self_attn"  # name part of a block's attention submodule (the rest is MLP)
    #: LLaMA-like blocks (q/k/v/o attention, gate/up/down MLP, pre-norms): the ones that take
    #: structured actions (drop or narrow sub-blocks)
    structured: bool = False

    @property
    def layer_type(self) -> type[nn.Module]:
        return Conv1D if self.transposed else nn.Linear


_LLAMA_LIKE = ArchSpec("model.layers", structured=True)

#: Sub-block -> (its module in a block, the projections reading the block's input (their
#: rows are heads/channels), the projection writing the residual (its columns are)).
#: LLaMA-like blocks only; ``post_attention_layernorm`` sees the residual between the two.
LLAMA_SUBBLOCKS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "attention": ("self_attn", ("q_proj", "k_proj", "v_proj"), "o_proj"),
    "mlp": ("mlp", ("gate_proj", "up_proj"), "down_proj"),
}
LLAMA_MID_NORM = "post_attention_layernorm"

#: model_type (from the HF config) -> layout. Add an architecture by adding a line.
ARCHITECTURES: dict[str, ArchSpec] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "opt": ArchSpec("model.decoder.layers"),
    "gpt2": ArchSpec("transformer.h", transposed=True, attention="attn"),
}


def layer_kind(architecture: str, name: str) -> str:
    """``"attention"`` or ``"mlp"`` for a full prunable-layer name of an architecture."""
    spec = ARCHITECTURES.get(architecture)
    if spec is None:
        raise UnsupportedArchitectureError(f"unsupported architecture {architecture!r}")
    return "attention" if spec.attention in name.split(".") else "mlp"


def projection_kind(architecture: str, name: str) -> str:
    """A prunable layer's role inside its block, the same in every block: ``self_attn.q_proj``
    for ``model.layers.3.self_attn.q_proj`` (LLaMA), ``attn.c_attn`` for GPT-2's."""
    spec = ARCHITECTURES.get(architecture)
    if spec is None:
        raise UnsupportedArchitectureError(f"unsupported architecture {architecture!r}")
    prefix = spec.blocks_path + "."
    if not name.startswith(prefix):
        raise KeyError(f"{name!r} is not inside {spec.blocks_path}")
    return name[len(prefix):].split(".", 1)[1]


class UnsupportedArchitectureError(ValueError):
    pass


def out_proj_name(architecture: str, block: int, kind: str) -> str:
    """Full name of a LLaMA-like block's o_proj (``kind="attention"``) or down_proj ("mlp")."""
    spec = ARCHITECTURES.get(architecture)
    if spec is None or not spec.structured:
        raise UnsupportedArchitectureError(f"{architecture!r} has no structured layout")
    sub, _, out = LLAMA_SUBBLOCKS[kind]
    return f"{spec.blocks_path}.{block}.{sub}.{out}"


def _resolve(root: nn.Module, path: str) -> nn.Module:
    obj: nn.Module = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


class ModelAdapter:
    """Blocks and prunable layers of one loaded model; names are full module names
    relative to the causal LM (``model.layers.3.mlp.down_proj``)."""

    def __init__(self, model: nn.Module) -> None:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        spec = ARCHITECTURES.get(str(model_type))
        if spec is None:
            raise UnsupportedArchitectureError(
                f"unsupported architecture {model_type!r}; supported: "
                f"{', '.join(sorted(ARCHITECTURES))}"
            )
        self.model = model
        self.model_type = str(model_type)
        self.spec = spec
        self._blocks: list[nn.Module] = []
        self.offload: BlockOffload | None = None
        self.refresh()

    def refresh(self) -> None:
        """Re-read the block list (after blocks were removed)."""
        if self.offload is not None:
            raise ValueError("blocks cannot be removed from an offloaded model; load it "
                             "without offloading for structured actions")
        blocks = _resolve(self.model, self.spec.blocks_path)
        if not isinstance(blocks, nn.ModuleList):
            raise UnsupportedArchitectureError(
                f"{self.model_type}: expected a ModuleList at {self.spec.blocks_path}"
            )
        self._blocks = list(blocks)

    @property
    def num_blocks(self) -> int:
        return len(self._blocks)

    def block(self, index: int) -> nn.Module:
        return self._blocks[index]

    def enable_offload(self, compute: torch.device) -> None:
        """Keep the blocks in CPU memory and run each on ``compute`` in its turn
        (see :mod:`allocsearch.models.offload`)."""
        if self.offload is None:
            self.offload = BlockOffload(self.model, self._blocks, compute)

    def resident(self, index: int) -> contextlib.AbstractContextManager[None]:
        """Hold block ``index`` on the compute device while it is worked on (a no-op
        unless the model is offloaded)."""
        return contextlib.nullcontext() if self.offload is None else self.offload.resident(index)

    def input_device(self) -> torch.device:
        """Where token ids go: the embeddings' device (the compute device when offloaded)."""
        if self.offload is not None:
            return self.offload.compute
        return next(self.model.parameters()).device

    def block_prefix(self, index: int) -> str:
        return f"{self.spec.blocks_path}.{index}"

    def block_layers(self, index: int) -> dict[str, nn.Module]:
        """Prunable layers of one block, in module order, keyed by full name."""
        prefix = self.block_prefix(index)
        kind = self.spec.layer_type
        return {
            f"{prefix}.{name}": mod
            for name, mod in self._blocks[index].named_modules()
            if name and isinstance(mod, kind)
        }

    def prunable_layers(self) -> dict[str, nn.Module]:
        """Every prunable layer of every block (the embeddings and lm_head are never pruned)."""
        out: dict[str, nn.Module] = {}
        for i in range(self.num_blocks):
            out.update(self.block_layers(i))
        return out

    def get_weight(self, layer: nn.Module) -> torch.Tensor:
        """The weight as (out_features, in_features); a view, not a copy."""
        w = layer.weight
        assert isinstance(w, torch.Tensor)
        return w.data.T if self.spec.transposed else w.data

    def set_weight(self, layer: nn.Module, weight: torch.Tensor) -> None:
        """Write an (out, in) matrix back in place, in the layer's storage layout and dtype."""
        self.get_weight(layer).copy_(weight)

    def to_storage(self, weight: torch.Tensor) -> torch.Tensor:
        """An (out, in) matrix in the layer's storage layout (for functional calls)."""
        return weight.T if self.spec.transposed else weight

    def block_index(self, name: str) -> int:
        """Block index of a full layer name (``model.layers.3.mlp.up_proj`` -> 3)."""
        prefix = self.spec.blocks_path + "."
        if not name.startswith(prefix):
            raise KeyError(f"{name!r} is not inside {self.spec.blocks_path}")
        return int(name[len(prefix) :].split(".", 1)[0])

    # ------------------------------------------------------ structured actions
    def structure(self) -> Structure | None:
        """Heads, KV groups and MLP width of a LLaMA-like model (None for the others)."""
        if not self.spec.structured:
            return None
        c: Any = self.model.config
        heads = int(c.num_attention_heads)
        kv = int(getattr(c, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(c, "head_dim", None) or c.hidden_size // heads)
        return Structure(heads, kv, head_dim, int(c.intermediate_size))

    def require_structured(self) -> Structure:
        s = self.structure()
        if s is None:
            supported = ", ".join(sorted(k for k, v in ARCHITECTURES.items() if v.structured))
            raise UnsupportedArchitectureError(
                f"structured actions need a LLaMA-like model; {self.model_type!r} blocks are not "
                f"supported (supported: {supported})")
        return s

    def sub_block(self, index: int, kind: str) -> nn.Module:
        """The attention or MLP module of block ``index`` (LLaMA-like)."""
        return getattr(self._blocks[index], LLAMA_SUBBLOCKS[kind][0])  # type: ignore[no-any-return]

    def in_projs(self, index: int, kind: str) -> list[nn.Linear]:
        """q/k/v or gate/up of block ``index``: their output rows are heads or channels."""
        mod = self.sub_block(index, kind)
        return [getattr(mod, n) for n in LLAMA_SUBBLOCKS[kind][1]]

    def out_proj(self, index: int, kind: str) -> nn.Linear:
        """o_proj or down_proj of block ``index``: its input columns are heads or channels."""
        out: nn.Linear = getattr(self.sub_block(index, kind), LLAMA_SUBBLOCKS[kind][2])
        return out

    def out_proj_name(self, index: int, kind: str) -> str:
        return out_proj_name(self.model_type, index, kind)

    def mid_norm(self, index: int) -> nn.Module:
        """The module whose input is the residual between attention and MLP."""
        return getattr(self._blocks[index], LLAMA_MID_NORM)  # type: ignore[no-any-return]
