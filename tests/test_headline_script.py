"""benchmarks/headline.py end to end on a tiny model: per seed, the study report's paired
verdict and both plans on another domain; per config, the medians the README headline shows."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import save_tiny_model

ROOT = Path(__file__).resolve().parents[1]


def test_the_headline_script_runs_a_config_over_seeds(tmp_path: Path) -> None:
    from pydoc_data import topics

    model = save_tiny_model(tmp_path / "tiny")
    other = tmp_path / "other.txt"
    other.write_text("\n\n".join(topics.topics[k] for k in sorted(topics.topics)[:40]))
    config = {"name": "tiny-headline", "model": str(model), "device": "cpu", "target": 0.6,
              "data": {"nsamples": 2, "seqlen": 32}, "space": "blocks", "sampler": "random",
              "evaluator": {"seqlen": 32, "fidelities": [64]}, "n_trials": 4,
              "warm_start": [{"method": "uniform"}, {"method": "ramp", "params": {"slope": 0.3}}],
              "verify": {"top": 1, "nsamples": 2, "seqlen": 32, "eval_windows": 2,
                         "calibration_seeds": [0, 1], "threads": 1}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    env = {"ALLOCSEARCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "benchmarks/headline.py", "--configs", str(tmp_path / "tiny.yaml"),
         "--seeds", "0", "1", "--other", str(other), "--results", str(tmp_path / "results")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env | _base_env())
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    data = json.loads((tmp_path / "results" / "headline_cpu.json").read_text())
    runs = list(data["runs"].values())
    assert [r["seed"] for r in runs] == [0, 1]
    for r in runs:
        assert r["draws"] == 2 and 0 <= r["lower_on"] <= 2 and r["prior"] in ("uniform", "ramp slope=0.3")
        expected = {2: "better", 0: "worse on every draw"}.get(r["lower_on"], "within noise")
        assert r["verdict"] == expected and 0 <= r["lower_on_other"] <= 2
        assert math.isclose(r["ratio"], r["ppl"] / r["prior_ppl"])
        assert math.isfinite(r["ratio_other"]) and r["ppl_other"] > 1.0
    (row,) = data["rows"]
    assert row["seeds"] == 2 and row["ratio_min"] <= row["ratio_median"] <= row["ratio_max"]
    assert data["manifest"]["command"].startswith("python benchmarks/headline.py")


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("ALLOCSEARCH_CACHE", "OMP_NUM_THREADS")}
