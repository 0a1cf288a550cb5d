"""benchmarks/gpu.py's CPU path, on the tiny shape, so the GPU script never rots; its FLOP
count checked against the model's own linear layers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu import forward_flops  # noqa: E402

from allocsearch.models.random import SHAPES, random_llama  # noqa: E402


def test_forward_flops_count_every_linear_weight_twice_plus_attention() -> None:
    shape = SHAPES["tiny"]
    lm = random_llama(shape)
    linear = sum(m.weight.numel() for m in lm.model.modules() if isinstance(m, torch.nn.Linear))
    tokens, seqlen = 10, 5
    attention = shape.blocks * 4 * seqlen * shape.hidden  # Q.K and A.V per token
    assert forward_flops(shape, tokens, seqlen) == tokens * (2 * linear + attention)


def test_the_cpu_path_writes_one_row_with_every_stage(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu.py", "--shape", "tiny", "--device", "cpu", "--dtype", "float32",
         "--tokens", "512", "--seqlen", "64", "--calibration", "4x64", "--repeats", "2",
         "--verify-windows", "2", "--study-trials", "12",
         "--results", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "gpu_cpu_tiny.json").read_text())
    (row,) = data["rows"]
    for key in ("build_s", "profile_s", "evaluator_build_s", "forward_s", "fitness_s",
                "wanda_s_per_block", "sparsegpt_s_per_block", "peak_GiB", "tokens_per_s",
                "offload_profile_s", "offload_wanda_s_per_block", "offload_peak_GiB",
                "verify_s", "verify_ppl", "study_s_per_trial"):
        assert row[key] > 0, key
    assert row["study_trials"] == 12 and row["study_screened"] >= 1  # the predictor short-listed
    assert row["overhead"] == row["fitness_s"] / row["forward_s"]
    assert row["peak_fraction"] is None and row["semi_2of4_speedup"] is None  # no CUDA here
    assert data["manifest"]["device"] == "cpu" and data["manifest"]["calibration"] == "4 x 64"
    assert "overhead" in done.stdout  # the table was printed
