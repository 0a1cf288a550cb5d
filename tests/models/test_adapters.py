"""Adapters on tiny randomly initialised models of every supported architecture."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from allocsearch.engine import (
    LayerTarget,
    measure_sparsity,
    prune_sequential,
    uniform_targets,
)
from allocsearch.models import ARCHITECTURES, ModelAdapter, UnsupportedArchitectureError
from allocsearch.pruners import Pattern, get_pruner
from tests.conftest import TINY_CONFIGS, make_tiny

EXPECTED_LAYERS = {
    "llama": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
    "opt": ["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj", "self_attn.out_proj",
            "fc1", "fc2"],
    "gpt2": ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
}
EXPECTED_LAYERS.update({k: EXPECTED_LAYERS["llama"] for k in ("mistral", "qwen2", "qwen3")})
PREFIX = {"opt": "model.decoder.layers", "gpt2": "transformer.h"}


def test_every_registered_architecture_has_a_tiny_test() -> None:
    assert set(ARCHITECTURES) == set(TINY_CONFIGS)


@pytest.mark.parametrize("arch", sorted(TINY_CONFIGS))
def test_blocks_and_layer_names(arch: str) -> None:
    adapter = ModelAdapter(make_tiny(arch))
    assert adapter.num_blocks == 2
    prefix = PREFIX.get(arch, "model.layers")
    expected = [f"{prefix}.1.{n}" for n in EXPECTED_LAYERS[arch]]
    assert list(adapter.block_layers(1)) == expected
    assert len(adapter.prunable_layers()) == 2 * len(expected)
    assert adapter.block_index(expected[0]) == 1


@pytest.mark.parametrize("arch", sorted(TINY_CONFIGS))
def test_weight_is_out_by_in(arch: str) -> None:
    # y = x W^T (+ b) must hold for the adapter's view, Conv1D included.
    adapter = ModelAdapter(make_tiny(arch))
    for layer in adapter.prunable_layers().values():
        w = adapter.get_weight(layer)
        x = torch.randn(3, w.shape[1])
        bias = getattr(layer, "bias", None)
        expected = x @ w.T + (bias if bias is not None else 0)
        torch.testing.assert_close(layer(x), expected)


def test_unsupported_architecture_names_the_supported_ones() -> None:
    cfg = AutoConfig.for_model("bloom", hidden_size=32, n_layer=1, n_head=4, vocab_size=64)
    with pytest.raises(UnsupportedArchitectureError, match="gpt2, llama, mistral, opt"):
        ModelAdapter(AutoModelForCausalLM.from_config(cfg))


@pytest.mark.parametrize("arch", sorted(TINY_CONFIGS))
@pytest.mark.parametrize(("method", "pattern"), [
    ("wanda", "unstructured"), ("sparsegpt", "unstructured"), ("wanda", "2:4"),
    ("magnitude", "4:8"),
])
def test_engine_prunes_each_layer_exactly(arch: str, method: str, pattern: str) -> None:
    model = make_tiny(arch)
    adapter = ModelAdapter(model)
    windows = torch.randint(0, 128, (6, 16), generator=torch.Generator().manual_seed(0))
    pat = Pattern.parse(pattern)
    sparsity = 0.5 if not pat.is_nm else None
    report = prune_sequential(
        model, adapter, get_pruner(method), uniform_targets(adapter, sparsity, pat), windows,
        batch_size=4, progress=False,
    )
    measured = measure_sparsity(adapter)
    assert set(measured) == set(report.sparsity)
    for name, layer in adapter.prunable_layers().items():
        assert measured[name] == pytest.approx(0.5, abs=1e-6)
        if method == "wanda" and not pat.is_nm:
            # Wanda compares within output rows: every (out, in) row holds half zeros,
            # which fails if Conv1D were not transposed (its rows would be inputs).
            w = adapter.get_weight(layer)
            assert torch.all((w == 0).sum(1) == w.shape[1] // 2)
    assert report.calibration_tokens == (0 if method == "magnitude" else 96)
    assert torch.isfinite(model(windows).logits).all()


def test_per_layer_targets_and_untouched_layers() -> None:
    model = make_tiny("llama")
    adapter = ModelAdapter(model)
    names = list(adapter.prunable_layers())
    targets = {names[0]: LayerTarget(0.25), names[3]: LayerTarget(0.75),
               names[8]: LayerTarget(None, Pattern(2, 4))}  # type: ignore[arg-type]
    windows = torch.randint(0, 128, (2, 16))
    prune_sequential(model, adapter, get_pruner("wanda"), targets, windows, progress=False)
    measured = measure_sparsity(adapter)
    assert measured[names[0]] == 0.25 and measured[names[3]] == 0.75
    assert measured[names[8]] == 0.5
    assert measured[names[1]] == 0.0


def test_unknown_target_names_fail() -> None:
    model = make_tiny("llama")
    adapter = ModelAdapter(model)
    with pytest.raises(ValueError, match="does not have"):
        prune_sequential(model, adapter, get_pruner("magnitude"),
                         {"model.layers.9.mlp.up_proj": LayerTarget(0.5)}, None, progress=False)


@pytest.mark.parametrize("arch", ["llama", "opt", "gpt2"])
def test_block_walk_matches_full_forward_when_nothing_is_pruned(arch: str) -> None:
    # The captured inputs and kwargs (masks, rotary embeddings) must reproduce the model's
    # own hidden state after block 0.
    from allocsearch.engine import _run_block, capture_block_inputs

    model = make_tiny(arch)
    adapter = ModelAdapter(model)
    windows = torch.randint(0, 128, (3, 12))
    batches = capture_block_inputs(model, adapter, windows, batch_size=2)
    assert [b.hidden.shape[0] for b in batches] == [2, 1]
    _run_block(adapter.block(0), batches, keep_outputs=True)
    with torch.no_grad():
        ref = model(windows, output_hidden_states=True).hidden_states[1]
    torch.testing.assert_close(torch.cat([b.hidden for b in batches]), ref)


def test_walk_stops_after_the_last_targeted_block() -> None:
    model = make_tiny("llama")
    adapter = ModelAdapter(model)
    calls: list[int] = []
    adapter.block(1).register_forward_pre_hook(lambda _m, _a: calls.append(1))
    names = [n for n in adapter.prunable_layers() if adapter.block_index(n) == 0]
    prune_sequential(model, adapter, get_pruner("wanda"), {n: LayerTarget(0.5) for n in names},
                     torch.randint(0, 128, (2, 8)), progress=False)
    assert calls == []  # block 1 was never run
    assert measure_sparsity(adapter)[names[0]] == 0.5


def test_projection_kind_is_the_name_inside_the_block() -> None:
    from allocsearch.models.adapters import projection_kind

    assert projection_kind("llama", "model.layers.12.self_attn.q_proj") == "self_attn.q_proj"
    assert projection_kind("qwen2", "model.layers.0.mlp.down_proj") == "mlp.down_proj"
    assert projection_kind("gpt2", "transformer.h.3.attn.c_attn") == "attn.c_attn"
    assert projection_kind("opt", "model.decoder.layers.1.fc1") == "fc1"
    with pytest.raises(KeyError, match=r"not inside model\.layers"):
        projection_kind("llama", "lm_head")
