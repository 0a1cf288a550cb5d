"""Randomly initialised LLaMA models with a byte-level tokenizer: for smoke tests, many-worker
trials and speed measurements at real shapes (LLaMA-7B on a GPU), where the weights do not
matter and nothing may be downloaded.

The tokenizer maps each of the 256 bytes to one token (byte-level BPE without merges), so any
text source gives valid ids for a vocabulary of 256 or more.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from allocsearch.models.adapters import ModelAdapter
from allocsearch.models.loading import LoadedModel, resolve_device, resolve_dtype


@dataclass(frozen=True)
class LlamaShape:
    hidden: int = 64
    intermediate: int = 128
    blocks: int = 2
    heads: int = 4
    kv_heads: int = 2
    vocab: int = 256

    def __post_init__(self) -> None:
        if self.vocab < 256 or self.hidden % self.heads or self.heads % self.kv_heads:
            raise ValueError(f"a LLaMA shape needs vocab >= 256 (the byte tokens) and heads that "
                             f"divide hidden and are a multiple of kv_heads, got {self}")


#: Named shapes: LLaMA-7B's (as published) and a tiny one for CPU tests.
SHAPES = {
    "llama-7b": LlamaShape(hidden=4096, intermediate=11008, blocks=32, heads=32, kv_heads=32, vocab=32000),
    "tiny": LlamaShape(),
}


def byte_tokenizer() -> Any:
    """A transformers fast tokenizer with one token per byte (ids 0..255)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    chars = sorted(alphabet)
    tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(chars)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # Token 0 doubles as end of text: lm-eval prefixes every request with the EOS (or BOS) id.
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=chars[0])


def random_llama(shape: LlamaShape, *, device: str = "cpu", dtype: str = "float32", seed: int = 0,
                 name: str = "random-llama") -> LoadedModel:
    """A random LLaMA of ``shape``, initialised directly on ``device`` (a 7B model is built on
    the GPU in seconds, never in host memory) in ``dtype``."""
    from transformers import AutoConfig, AutoModelForCausalLM

    dev = resolve_device(device)
    cfg = AutoConfig.for_model("llama", hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                               num_hidden_layers=shape.blocks, num_attention_heads=shape.heads,
                               num_key_value_heads=shape.kv_heads, vocab_size=shape.vocab,
                               max_position_embeddings=4096, use_cache=False)
    torch.manual_seed(seed)
    with dev:
        model = AutoModelForCausalLM.from_config(cfg, dtype=resolve_dtype(dtype))
    model.eval()
    return LoadedModel(model=model, tokenizer=byte_tokenizer(), adapter=ModelAdapter(model),
                       name=name, device=dev)


def save_random_llama(
    path: Path, *, hidden: int = 64, blocks: int = 2, intermediate: int | None = None,
    heads: int = 4, kv_heads: int = 2, seed: int = 0,
) -> Path:
    """Save a random LLaMA (``intermediate`` defaults to 2 x ``hidden``) and its byte
    tokenizer to ``path``, which :func:`allocsearch.models.load_model` and every command read
    like any model folder."""
    shape = LlamaShape(hidden, intermediate or 2 * hidden, blocks, heads, kv_heads)
    lm = random_llama(shape, seed=seed)
    lm.model.save_pretrained(path)  # type: ignore[operator]
    lm.tokenizer.save_pretrained(path)
    return Path(path)
