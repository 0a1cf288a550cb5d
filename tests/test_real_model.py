"""SmolLM2-135M (the embedded default model) on the embedded corpus, on CPU.

Bands come from measured values (see BENCHMARKS.md, "Uniform pruning") with generous margins:
they catch a broken pruner or a broken data path, not run-to-run noise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from allocsearch.cli import main
from allocsearch.data import calibration_windows, evaluation_windows
from allocsearch.engine import measure_sparsity, prune_sequential, uniform_targets
from allocsearch.evaluate import perplexity
from allocsearch.models import load_model, save_model, smollm2_gguf_path
from allocsearch.models.loading import resolve_source
from allocsearch.pruners import StatsAccumulator, get_pruner

pytestmark = pytest.mark.real_model


def _eval(loaded: Any, n: int = 6) -> float:
    windows = evaluation_windows(loaded.tokenizer, "embedded", "evaluation", 256, n)
    return perplexity(loaded.model, windows, progress=False).ppl


def test_smollm2_loads_as_llama_with_30_blocks(smollm2: Any) -> None:
    assert smollm2.adapter.model_type == "llama"
    assert smollm2.adapter.num_blocks == 30
    assert len(smollm2.adapter.prunable_layers()) == 30 * 7
    # A .gguf path and the alias share one converted copy: no second dequantisation.
    assert resolve_source(str(smollm2_gguf_path())) == resolve_source("smollm2-135m")


def test_dense_perplexity_band(smollm2: Any) -> None:
    assert 8.0 < _eval(smollm2) < 25.0


def test_wanda_50_holds_every_ratio_and_perplexity_band(fresh_smollm2: Any) -> None:
    lm = fresh_smollm2
    dense = _eval(lm)
    windows = calibration_windows(lm.tokenizer, "embedded", 8, 128, seed=0)
    report = prune_sequential(
        lm.model, lm.adapter, get_pruner("wanda"), uniform_targets(lm.adapter, 0.5),
        windows, progress=False,
    )
    measured = measure_sparsity(lm.adapter)
    assert len(measured) == 210
    for name, value in measured.items():
        assert abs(value - 0.5) <= 1e-6, name
        assert report.sparsity[name] == value
    pruned = _eval(lm)
    assert 1.3 * dense < pruned < 4.0 * dense


def _layer_inputs(lm: Any, name: str, windows: torch.Tensor) -> torch.Tensor:
    layer = lm.adapter.prunable_layers()[name]
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0].detach()))
    with torch.no_grad():
        lm.model(windows)
    handle.remove()
    return torch.cat([x.reshape(-1, x.shape[-1]) for x in seen])


@pytest.mark.parametrize("name", ["model.layers.3.self_attn.q_proj", "model.layers.12.mlp.down_proj"])
def test_reconstruction_error_order_on_real_layers(smollm2: Any, name: str) -> None:
    windows = calibration_windows(smollm2.tokenizer, "embedded", 8, 128, seed=1)
    x = _layer_inputs(smollm2, name, windows)  # (tokens, in)
    acc = StatsAccumulator(x.shape[1], norms=True, hessian=True, device=x.device)
    acc.add(x)
    stats = acc.result()
    w = smollm2.adapter.get_weight(smollm2.adapter.prunable_layers()[name]).clone()
    errors = {}
    for method in ("magnitude", "wanda", "sparsegpt"):
        new = get_pruner(method).prune(w, stats, 0.5).weight
        errors[method] = float(((w - new) @ x.T).square().sum())
    assert errors["sparsegpt"] < errors["wanda"] < errors["magnitude"], errors


def test_save_and_reload_keeps_sparsity_and_perplexity(fresh_smollm2: Any, tmp_path: Path) -> None:
    lm = fresh_smollm2
    prune_sequential(lm.model, lm.adapter, get_pruner("magnitude"),
                     uniform_targets(lm.adapter, 0.3), None, progress=False)
    before = _eval(lm, 2)
    save_model(lm, tmp_path / "pruned")
    again = load_model(str(tmp_path / "pruned"), device="cpu")
    assert measure_sparsity(again.adapter) == measure_sparsity(lm.adapter)
    assert _eval(again, 2) == pytest.approx(before, rel=1e-5)


def test_cli_prune_then_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pruned"
    assert main(["prune", "--model", "smollm2-135m", "--method", "wanda", "--sparsity", "0.5",
                 "--nsamples", "4", "--seqlen", "64", "--out", str(out), "--quiet"]) == 0
    record = json.loads((out / "allocsearch_prune.json").read_text())
    assert record["achieved_sparsity"] == pytest.approx(0.5, abs=1e-6)
    assert record["config"]["method"] == "wanda" and record["calibration_tokens"] == 256
    result = tmp_path / "eval.json"
    assert main(["eval", "--model", str(out), "--nsamples", "3", "--seqlen", "128",
                 "--json", str(result), "--quiet"]) == 0
    payload = json.loads(result.read_text())
    assert payload["tokens"] == 3 * 127
    assert payload["sparsity"] == pytest.approx(0.5, abs=1e-6)
    assert 10.0 < payload["ppl"] < 200.0
    assert "perplexity" in capsys.readouterr().out


def test_cli_allocate_show_prune_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = ["--nsamples", "4", "--seqlen", "64", "--quiet"]
    plan_path = tmp_path / "owl.json"
    assert main(["allocate", "--method", "owl", "--sparsity", "0.7", "--param", "M=5",
                 "--param", "lam=0.08", "--out", str(plan_path), *cache]) == 0
    first = capsys.readouterr().out
    plan = json.loads(plan_path.read_text())
    assert plan["model"]["num_blocks"] == 30 and len(plan["modules"]) == 210
    assert abs(plan["budget"] - 0.7) < 1e-6
    assert plan["provenance"]["params"]["M"] == 5
    # The profile is cached: a second allocation reuses it.
    ramp = tmp_path / "ramp.json"
    assert main(["allocate", "--method", "ramp", "--sparsity", "0.7", "--param", "slope=0.3",
                 "--out", str(ramp), *cache[:-1]]) == 0
    if "reused from cache" not in first:  # unless an earlier run cached the same profile
        assert "computed and cached" in first
    assert "reused from cache" in capsys.readouterr().out
    assert main(["plan", "show", str(plan_path), "--compare", str(ramp)]) == 0
    assert (tmp_path / "owl.png").stat().st_size > 10_000
    out = tmp_path / "pruned"
    assert main(["prune", "--plan", str(plan_path), "--method", "wanda", "--out", str(out),
                 *cache]) == 0
    pruned = load_model(str(out), device="cpu")
    measured = measure_sparsity(pruned.adapter)
    for name, entry in plan["modules"].items():
        assert abs(measured[name] - entry["sparsity"]) < 1e-5, name
    recipe = tmp_path / "recipe.yaml"
    assert main(["export", str(plan_path), "--format", "llmcompressor", "--out", str(recipe)]) == 0
    assert "SparseGPTModifier" in recipe.read_text()


def test_database_cli_builds_lists_verifies_and_clears(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The magnitude pruner (no calibration) keeps this quick; SparseGPT entries are checked
    against direct prunes on the tiny model (tests/database)."""
    from allocsearch.database import levels_root, list_databases

    cache = str(tmp_path)
    assert main(["database", "build", "--pruner", "magnitude", "--levels", "0.5", "--cache-dir", cache,
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "210 entries built, 0 reused" in out
    (db,) = list_databases(levels_root(tmp_path))
    assert db.grid.levels == (0.0, 0.5)
    w = db.load("model.layers.3.mlp.up_proj", 0.5)
    assert w.shape == (1536, 576) and float((w == 0).float().mean()) == 0.5
    assert main(["database", "build", "--pruner", "magnitude", "--levels", "0.5", "--cache-dir", cache,
                 "--quiet"]) == 0
    assert "0 entries built, 210 reused" in capsys.readouterr().out
    assert main(["database", "info", db.key[:8], "--verify", "--cache-dir", cache, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "magnitude on dense inputs" in out and "210/210 entries complete" in out
    db.entry_path("model.layers.0.self_attn.q_proj").write_bytes(b"torn")
    assert main(["database", "info", "--cache-dir", cache, "--quiet"]) == 0
    assert "209/210 entries complete; to rebuild: model.layers.0.self_attn.q_proj (unreadable" \
        in capsys.readouterr().out
    assert main(["database", "clear", "--cache-dir", cache, "--quiet"]) == 0
    assert "removed 1 level database(s)" in capsys.readouterr().out
    assert list_databases(levels_root(tmp_path)) == []
