"""Model size counts each storage once: a tied embedding and lm_head are one tensor."""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, AutoModelForCausalLM

from allocsearch.models import model_nbytes


def _llama(tied: bool) -> Any:
    cfg = AutoConfig.for_model("llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                               tie_word_embeddings=tied)
    return AutoModelForCausalLM.from_config(cfg)


def test_tied_embedding_is_counted_once() -> None:
    tied, untied = _llama(True), _llama(False)
    embed = 128 * 32 * 4  # (vocab, hidden) float32
    assert tied.lm_head.weight is tied.model.embed_tokens.weight
    assert model_nbytes(untied) - model_nbytes(tied) == embed
    params = sum(p.numel() * 4 for p in untied.parameters())  # every parameter its own storage
    assert model_nbytes(untied) - params == model_nbytes(tied) - (params - embed)  # the buffers
