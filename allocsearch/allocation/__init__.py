"""Allocators: published rules that turn a profile and a target into a Plan.

``ALLOCATORS`` is the registry: a plain dict from name to class.
"""

from __future__ import annotations

from typing import Any

from allocsearch._registry import lookup
from allocsearch.allocation.alpha import AlphaAllocator
from allocsearch.allocation.base import Allocator, AllocatorParams
from allocsearch.allocation.besa import BesaAllocator
from allocsearch.allocation.block_influence import BlockInfluenceAllocator
from allocsearch.allocation.flap import FlapAllocator
from allocsearch.allocation.owl import OwlAllocator
from allocsearch.allocation.ramp import RampAllocator
from allocsearch.allocation.uniform import UniformAllocator

ALLOCATORS: dict[str, type[Allocator]] = {
    UniformAllocator.name: UniformAllocator,
    OwlAllocator.name: OwlAllocator,
    AlphaAllocator.name: AlphaAllocator,
    RampAllocator.name: RampAllocator,
    BesaAllocator.name: BesaAllocator,
    BlockInfluenceAllocator.name: BlockInfluenceAllocator,
    FlapAllocator.name: FlapAllocator,
}


def get_allocator(name: str, **params: Any) -> Allocator:
    return lookup(ALLOCATORS, name, "allocator")(**params)


__all__ = ["ALLOCATORS", "Allocator", "AllocatorParams", "get_allocator"]
