"""Measured speed of a model: prefill and decode tokens per second, batch 1.

Prefill times one forward over a ``prefill`` token window (no cache). Decode times greedy
generation with the KV cache: generating ``decode`` tokens minus generating one, so the
prompt's prefill cancels out. Each figure is the median of ``repeats`` timed runs after one
warm-up. Speed depends on shapes, not values, so :class:`LatencyCache` measures each
distinct shape once (on a copy with placeholder weights when asked for a shape only), and
:class:`PlanLatency` measures plans on an Evaluator's model that way.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from allocsearch.structure.shape import shape_key, shape_model

if TYPE_CHECKING:
    from allocsearch.evaluate.evaluator import Evaluator
    from allocsearch.plan import Plan


@dataclass(frozen=True)
class LatencyConfig:
    prefill: int = 512  # tokens in the prefill window
    prompt: int = 32  # prompt tokens before decoding
    decode: int = 64  # generated tokens timed
    repeats: int = 5
    threads: int | None = None  # CPU threads while timing (None: torch's setting)

    def __post_init__(self) -> None:
        if min(self.prefill, self.prompt, self.decode, self.repeats) < 1 or self.decode < 2:
            raise ValueError("latency needs prefill, prompt, repeats >= 1 and decode >= 2")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Latency:
    prefill_tok_s: float
    decode_tok_s: float
    prefill_ms: float  # one prefill window
    decode_ms_per_token: float
    device: str
    params: int  # parameters of the model measured

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    fn()  # warm-up: allocator, kernels, caches
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def measure_latency(model: nn.Module, config: LatencyConfig | None = None) -> Latency:
    """Prefill and decode speed of ``model`` (any causal LM with ``generate``)."""
    c = config or LatencyConfig()
    first = next(model.parameters())
    device = first.device
    vocab = int(getattr(model.config, "vocab_size", 1000))
    g = torch.Generator().manual_seed(0)
    window = torch.randint(0, vocab, (1, c.prefill), generator=g).to(device)
    prompt = torch.randint(0, vocab, (1, c.prompt), generator=g).to(device)
    old_threads = torch.get_num_threads()
    if c.threads is not None:
        torch.set_num_threads(c.threads)
    gen: Any = model

    def generate(n: int) -> object:
        return gen.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n,
                            min_new_tokens=n, do_sample=False, use_cache=True, pad_token_id=0)

    try:
        prefill = _median_seconds(lambda: model(input_ids=window, use_cache=False), c.repeats, device)
        one = _median_seconds(lambda: generate(1), c.repeats, device)
        many = _median_seconds(lambda: generate(c.decode), c.repeats, device)
    finally:
        torch.set_num_threads(old_threads)
    per_token = max(many - one, 1e-9) / (c.decode - 1)
    return Latency(c.prefill / prefill, 1.0 / per_token, prefill * 1e3, per_token * 1e3,
                   str(device), sum(p.numel() for p in model.parameters()))


class LatencyCache:
    """Latency per shape key, measured once: ``get(key, build)`` calls ``build()`` for a model
    of that shape only the first time a key is seen."""

    def __init__(self, config: LatencyConfig | None = None) -> None:
        self.config = config or LatencyConfig()
        self.measured: dict[Hashable, Latency] = {}

    def get(self, key: Hashable, build: Callable[[], nn.Module]) -> Latency:
        if key not in self.measured:
            self.measured[key] = measure_latency(build(), self.config)
        return self.measured[key]


class PlanLatency:
    """Measured prefill/decode speed of plans' physical shapes on an Evaluator's model, cached
    per shape. Unstructured sparsity does not change the shape, so it does not change the
    speed measured here; a plan without structured actions (or None) has the dense shape."""

    def __init__(self, ev: Evaluator, config: LatencyConfig | None = None) -> None:
        self.ev = ev
        self.cache = LatencyCache(config)

    def measure(self, plan: Plan | None) -> Latency:
        lm = self.ev.loaded
        s = lm.adapter.structure()
        actions = plan.structured() if plan is not None else {}
        if s is None:  # no structured actions possible: every plan has the dense shape
            if actions:
                raise ValueError("structured actions need a LLaMA-like model")
            return self.cache.get((), lambda: copy.deepcopy(lm.model))
        key = shape_key(s, self.ev.identity.num_blocks, actions)
        return self.cache.get(key, lambda: shape_model(lm.model.config, key, device=lm.device,
                                                       dtype=lm.dtype))
