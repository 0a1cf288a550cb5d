"""The masked equivalent of a structured plan: forward hooks on the live model, no copy.

- a dropped block returns its input (the residual passes through);
- a dropped sub-block returns its compensation bias (zeros without one) instead of its output;
- a narrowed sub-block multiplies its output projection's input by a 0/1 column mask and
  adds the compensation bias: exactly what removing those columns (and the rows feeding
  them, whose outputs are then unused) computes.

So the fitness of a structured candidate costs one forward, like an unstructured one, and
agrees with the physically smaller model up to float rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from allocsearch.models.adapters import ModelAdapter
from allocsearch.structure.selection import BlockSelection, SubSelection


def _passthrough(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> Any:
    hidden = args[0] if args else kwargs["hidden_states"]
    return (hidden, *out[1:]) if isinstance(out, tuple) else hidden


class _Constant:
    """Hook of a dropped sub-block: its output becomes the compensation bias (or zeros)."""

    def __init__(self, bias: torch.Tensor | None) -> None:
        self.bias = bias  # (hidden,)

    def __call__(self, _m: nn.Module, _args: tuple[Any, ...], out: Any) -> Any:
        first = out[0] if isinstance(out, tuple) else out
        value = torch.zeros_like(first)
        if self.bias is not None:
            value = value + self.bias.to(first.device, first.dtype)
        return (value, *out[1:]) if isinstance(out, tuple) else value


class _ColumnMask:
    """Pre-hook and hook of one output projection: mask its input columns, add a bias."""

    def __init__(self, sub: SubSelection, in_features: int, like: torch.Tensor) -> None:
        mask = torch.zeros(in_features, dtype=like.dtype, device=like.device)
        mask[sub.columns().to(like.device)] = 1
        self.mask = mask  # (in,)
        self.bias = None if sub.bias is None else sub.bias.to(like.device, like.dtype)  # (out,)

    def pre(self, _m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (args[0] * self.mask, *args[1:])

    def post(self, _m: nn.Module, _args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        return out if self.bias is None else out + self.bias


class StructureMasks:
    """Install the hooks of a selection; ``remove()`` (or leaving the ``with``) undoes them."""

    def __init__(self, adapter: ModelAdapter, selection: Mapping[int, BlockSelection]) -> None:
        self.handles: list[RemovableHandle] = []
        for b, sel in selection.items():
            if sel.drop_block:
                self.handles.append(adapter.block(b).register_forward_hook(_passthrough, with_kwargs=True))
                continue
            for kind, sub in sel.subs.items():
                if sub.dropped:
                    self.handles.append(adapter.sub_block(b, kind).register_forward_hook(_Constant(sub.bias)))
                    continue
                proj = adapter.out_proj(b, kind)
                cm = _ColumnMask(sub, proj.in_features, proj.weight)
                self.handles.append(proj.register_forward_pre_hook(cm.pre))
                self.handles.append(proj.register_forward_hook(cm.post))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def __enter__(self) -> StructureMasks:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()
