"""A randomly initialised LLaMA with a byte-level tokenizer, saved as a model folder: for smoke
tests, many-worker trials and speed measurements where the weights do not matter, offline."""

from __future__ import annotations

from pathlib import Path

import torch


def save_random_llama(
    path: Path, *, hidden: int = 64, blocks: int = 2, intermediate: int | None = None,
    heads: int = 4, kv_heads: int = 2, seed: int = 0,
) -> Path:
    """Save a random LLaMA (``intermediate`` defaults to 2 x ``hidden``) and a tokenizer of
    the 256 bytes (byte-level BPE without merges: one token per byte) to ``path``, which
    :func:`allocsearch.models.load_model` and every command read like any model folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    cfg = AutoConfig.for_model("llama", hidden_size=hidden, intermediate_size=intermediate or 2 * hidden,
                               num_hidden_layers=blocks, num_attention_heads=heads,
                               num_key_value_heads=kv_heads, vocab_size=len(vocab),
                               max_position_embeddings=4096)
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(path)
    return Path(path)
