"""Structured pruning of SmolLM2-135M end to end: allocate -> prune -> save -> reload -> generate,
and the cheap masked fitness against the physically smaller model."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from allocsearch.allocation import get_allocator
from allocsearch.cli import main
from allocsearch.data import DataConfig
from allocsearch.evaluate import Evaluator, EvaluatorConfig, perplexity
from allocsearch.models import ModelAdapter, load_model
from allocsearch.models.loading import STRUCTURE_FILE
from allocsearch.pipeline import prune_with_plan

pytestmark = pytest.mark.real_model
CACHE = ["--nsamples", "4", "--seqlen", "64", "--quiet"]


def _generate(model: Any, tokenizer: Any) -> str:
    ids = tokenizer("The list type in Python", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=8, do_sample=False)
    return str(tokenizer.decode(out[0, ids.shape[1]:]))


def test_depth_pruned_smollm2_is_a_plain_checkpoint(tmp_path: Path) -> None:
    plan = tmp_path / "depth.json"
    assert main(["allocate", "--method", "block_influence", "--sparsity", "0.2", "--out", str(plan),
                 *CACHE]) == 0
    data = json.loads(plan.read_text())
    assert abs(data["budget"] - 0.2) < 1e-6 and len(data["blocks"]) == 6  # 6 of 30 blocks
    out = tmp_path / "depth"
    assert main(["prune", "--plan", str(plan), "--out", str(out), *CACHE]) == 0
    assert not (out / STRUCTURE_FILE).exists()
    model = AutoModelForCausalLM.from_pretrained(out)  # transformers alone
    assert model.config.num_hidden_layers == 24
    assert len(_generate(model, AutoTokenizer.from_pretrained(out)).strip()) > 0
    result = tmp_path / "eval.json"
    assert main(["eval", "--model", str(out), "--nsamples", "3", "--seqlen", "128", "--latency",
                 "--decode-tokens", "8", "--repeats", "1", "--json", str(result), "--quiet"]) == 0
    payload = json.loads(result.read_text())
    assert 10.0 < payload["ppl"] < 300.0
    assert payload["parameters"] < 0.9 * 134_515_008
    lat = payload["latency"]
    assert lat["prefill_tok_s"] > 0 and lat["decode_tok_s"] > 0


def test_width_pruned_smollm2_rebuilds_from_its_structure_file(tmp_path: Path) -> None:
    plan = tmp_path / "flap.json"
    assert main(["allocate", "--method", "flap", "--sparsity", "0.2", "--out", str(plan), *CACHE]) == 0
    out = tmp_path / "flap"
    assert main(["prune", "--plan", str(plan), "--out", str(out), *CACHE]) == 0
    shapes = json.loads((out / STRUCTURE_FILE).read_text())["blocks"]
    assert len({(s["kv_heads"], s["channels"]) for s in shapes}) > 1  # heterogeneous widths
    loaded = load_model(str(out), device="cpu")
    assert len(_generate(loaded.model, loaded.tokenizer).strip()) > 0
    result = tmp_path / "eval.json"
    assert main(["eval", "--model", str(out), "--nsamples", "3", "--seqlen", "128",
                 "--json", str(result), "--quiet"]) == 0
    assert 10.0 < json.loads(result.read_text())["ppl"] < 300.0


def test_masked_fitness_equals_the_physically_smaller_smollm2(smollm2: Any) -> None:
    ev = Evaluator.build(smollm2, EvaluatorConfig(seqlen=128, fidelities=(512,), batch_size=2,
                                                  profile=DataConfig("embedded", 4, 64, 0)),
                         progress=False)
    try:
        plan = get_allocator("flap").allocate(ev.profile, 0.2)
        masked = ev.fitness(plan)
        ev.restore()
        model = copy.deepcopy(smollm2.model)
        small = dataclasses.replace(smollm2, model=model, adapter=ModelAdapter(model))
        prune_with_plan(small, plan, progress=False, profile=ev.profile)
        physical = perplexity(model, ev.windows[:4], batch_size=2, progress=False).ppl
        assert sum(p.numel() for p in model.parameters()) < 0.9 * 134_515_008
        assert math.isclose(masked, physical, rel_tol=1e-4)
        assert ev.fitness(None) < masked
    finally:
        ev.close()


def test_the_documented_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "plans.md").read_text()
    section = page.split("## Structured pruning", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/plans.md", "exec"), {})  # our own documentation, run as written
    first = capsys.readouterr().out.splitlines()[0].split()
    assert first[0] == "False" and 10.0 < float(first[1]) < 300.0
    assert (tmp_path / "smollm2-flap20" / STRUCTURE_FILE).is_file()
