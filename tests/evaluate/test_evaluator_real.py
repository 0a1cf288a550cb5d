"""The Evaluator on SmolLM2-135M: exact against fresh Wanda, bit-identical restore, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from allocsearch.cli import main
from allocsearch.data import DataConfig, calibration_windows
from allocsearch.evaluate import Evaluator, EvaluatorConfig
from allocsearch.pipeline import allocate_plan
from allocsearch.pruners import StatsAccumulator, WandaPruner

pytestmark = pytest.mark.real_model

PROFILE = DataConfig("embedded", 4, 64, 0)


def test_cached_masks_equal_fresh_wanda_and_restore_is_bit_identical(fresh_smollm2: Any,
                                                                      tmp_path: Path) -> None:
    lm = fresh_smollm2
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    config = EvaluatorConfig(fitness="kl", seqlen=128, fidelities=(256, 512), profile=PROFILE)
    # A profile of its own: one cached by a process with another thread count holds the same
    # statistics summed in another order, and "bit for bit" compares with this process's sums.
    ev = Evaluator.build(lm, config, progress=False, cache_dir=tmp_path)
    mem = ev.memory()
    # Ranks take 2 bytes per prunable weight (every row of SmolLM2 has < 32k inputs).
    assert mem["ranks"] * 2 == mem["dense_copy"]
    assert ev.fitness(None) == pytest.approx(0.0, abs=1e-5)
    plan = allocate_plan(lm, "ramp", 0.7, PROFILE, params={"slope": 0.3}, progress=False)
    steps = list(ev.iter_fitness(plan))
    assert [s.tokens for s in steps] == [256, 512]
    assert all(0.05 < s.value < 5.0 for s in steps)

    # Fresh statistics from one dense forward over the profile's windows, then Wanda.
    ev.restore()
    adapter = lm.adapter
    layers = adapter.prunable_layers()
    accs = {n: StatsAccumulator(adapter.get_weight(m).shape[1], norms=True, hessian=False,
                                device=torch.device("cpu")) for n, m in layers.items()}
    handles = [m.register_forward_hook(lambda _m, i, _o, a=accs[n]: a.add(i[0]))
               for n, m in layers.items()]
    windows = calibration_windows(lm.tokenizer, "embedded", 4, 64, 0)
    with torch.no_grad():
        for w in windows:
            lm.model(input_ids=w[None])
    for h in handles:
        h.remove()
    ev.apply(plan)
    mismatched = []
    for n, m in layers.items():
        fresh = WandaPruner().prune(ev.backend.dense[n], accs[n].result(), plan.modules[n].sparsity)
        if not torch.equal(adapter.get_weight(m), fresh.weight):
            mismatched.append(n)
    assert not mismatched
    ev.close()
    changed = [k for k, v in lm.model.state_dict().items() if not torch.equal(v, before[k])]
    assert not changed


def test_cli_evaluate_with_verification(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = ["--nsamples", "4", "--seqlen", "64", "--quiet"]
    plan = tmp_path / "uniform.json"
    assert main(["allocate", "--method", "uniform", "--sparsity", "0.5", "--out", str(plan),
                 *small]) == 0
    out = tmp_path / "ev.json"
    assert main(["evaluate", str(plan), "--fidelity", "128,256", "--verify", "wanda",
                 "--verify-nsamples", "8", "--json", str(out), *small]) == 0
    text = capsys.readouterr().out
    assert "verified with wanda" in text
    payload = json.loads(out.read_text())
    row = payload["results"][0]
    assert [s["tokens"] for s in row["steps"]] == [128, 256]
    assert 15.0 < row["steps"][-1]["value"] < 200.0
    v = row["verification"]
    assert abs(v["achieved_sparsity"] - 0.5) < 1e-6 and 15.0 < v["ppl"] < 200.0
