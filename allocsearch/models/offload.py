"""Block-wise offloading: a model larger than the accelerator's memory, one block at a time.

The decoder blocks live in CPU memory; everything else (embeddings, rotary tables, the final
norm, ``lm_head``) lives on the compute device. A block is moved to the compute device for
its turn and back afterwards, so the accelerator holds at most one block, the non-block
modules and the activations: about 0.4 GiB per block plus 0.5 GiB for a LLaMA-7B in
bfloat16, against 12.6 GiB resident.

Two ways a block gets its turn:

- the engine and the profile work block by block and hold a block resident for all of its
  calibration batches (``BlockOffload.resident``): one transfer each way per block;
- any other forward pass (perplexity, task accuracy) goes through hooks that move each
  block in before it runs and out after: correct but it streams every block per batch, so
  large batches pay off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

CPU = torch.device("cpu")


def _move_direct(module: nn.Module, device: torch.device) -> None:
    """Move a module's own parameters and buffers (not its children's) to ``device``.

    Assigning ``.data`` keeps each Parameter object, so a weight tied to another module
    (``lm_head`` to the embeddings) moves once for both.
    """
    for param in module.parameters(recurse=False):
        if param.device != device:
            param.data = param.data.to(device)
    for name, buf in list(module.named_buffers(recurse=False)):
        if buf.device != device:
            setattr(module, name, buf.to(device))


class BlockOffload:
    """Keeps ``blocks`` on ``home`` and runs each on ``compute``; see the module docstring."""

    def __init__(self, model: nn.Module, blocks: Sequence[nn.Module], compute: torch.device,
                 home: torch.device = CPU) -> None:
        self.compute = compute
        self.home = home
        self.blocks = list(blocks)
        inside = {id(m) for b in self.blocks for m in b.modules()}
        for module in model.modules():
            if id(module) not in inside:
                _move_direct(module, compute)
        for block in self.blocks:
            block.to(home)
        self._pinned: set[int] = set()
        for i, block in enumerate(self.blocks):
            self._hook(i, block)

    def _hook(self, index: int, block: nn.Module) -> None:
        def before(_mod: nn.Module, _args: Any) -> None:
            if index not in self._pinned:
                block.to(self.compute)

        def after(_mod: nn.Module, _args: Any, _out: Any) -> None:
            if index not in self._pinned:
                block.to(self.home)

        block.register_forward_pre_hook(before)
        block.register_forward_hook(after)

    @contextlib.contextmanager
    def resident(self, index: int) -> Iterator[None]:
        """Hold block ``index`` on the compute device for the duration (pruned weights and
        all go home with it at the end)."""
        if index in self._pinned:  # nested: the outer holder moves it back
            yield
            return
        block = self.blocks[index]
        block.to(self.compute)
        self._pinned.add(index)
        try:
            yield
        finally:
            self._pinned.discard(index)
            block.to(self.home)

    def blocks_home(self) -> bool:
        """True when every block outside its turn is back on ``home``."""
        return all(
            p.device == self.home for i, b in enumerate(self.blocks) if i not in self._pinned
            for p in b.parameters()
        )
