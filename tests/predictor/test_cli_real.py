"""The predictor on SmolLM2-135M end to end through the CLI (small settings): a screened
search, its records, a predictor trained on them, ranking, and refusal of another model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from allocsearch.cli import main
from allocsearch.predictor import Predictor, read_records

pytestmark = pytest.mark.real_model

STUDY = """
schema_version: 1
name: pred-70
model: smollm2-135m
target: 0.7
data: {nsamples: 4, seqlen: 64}
space: blocks
evaluator: {seqlen: 128, fidelities: [256]}
sampler: random
n_trials: 8
warm_start: [{method: uniform}, {method: ramp, params: {slope: 0.3}}]
predictor: {model: hist, pool: 40, k: 2, warmup: 4, members: 2, share: 1.0}
"""


def test_screened_search_records_train_and_rank(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "pred-70.yaml"
    config.write_text(STUDY)
    # No verification: test_search_then_report covers it on the real model, and here it would
    # be a third of the test's time.
    assert main(["search", str(config), "--quiet", "--no-verify", "--predictor", "xgboost"]) == 0
    folder = tmp_path / "pred-70"
    log = [json.loads(line) for line in (folder / "screening.jsonl").read_text().splitlines()]
    assert len([r for r in log if "kind" not in r]) == 2 * 40  # rounds after trials 4 and 6, pools of 40
    assert [r["trial"] for r in log if r.get("kind") == "proposed"] == [4, 5, 6, 7]
    records_path = tmp_path / "records.jsonl"
    assert main(["study", "records", str(folder), "--out", str(records_path), "--quiet"]) == 0
    records = read_records(records_path)
    assert len(records) == 8 and all(abs(r.plan.budget() - 0.7) < 1e-6 for r in records)
    assert records[0].extra["profile"] == {"source": "embedded", "nsamples": 4, "seqlen": 64, "seed": 0}
    assert sum("screened" in r.extra for r in records) == 4
    out = tmp_path / "pred.json"
    assert main(["predictor", "train", "--study", str(folder), "--out", str(out), "--kind", "hist",
                 "--members", "2", "--quiet"]) == 0
    pred = Predictor.load(out)
    assert pred.meta.n_train == 8 and pred.meta.studies == ("pred-70",) and pred.meta.tokens == 256
    assert len(pred.table.names) == 2 * 30 + 3 * 210 + 2 * 30 + 7 * 3 + 13
    # The trained predictor starts a new study's screening at its first searched trial.
    assert main(["search", str(config), "--quiet", "--no-verify", "--predictor-file", str(out),
                 "--output", str(tmp_path / "again"), "--n-trials", "4"]) == 0
    again = [json.loads(line) for line in (tmp_path / "again" / "screening.jsonl").read_text().splitlines()]
    assert [r["trial"] for r in again if r.get("kind") == "proposed"] == [2, 3]
    capsys.readouterr()
    assert main(["predictor", "rank", str(out), str(folder / "best_plan.json")]) == 0
    assert "best_plan.json" in capsys.readouterr().out
    # A plan of another model is refused with the reason, and nothing is ranked.
    other = json.loads((folder / "best_plan.json").read_text())
    other["model"]["name"] = "other"
    other["model"]["shapes"] = {k: v for k, v in other["model"]["shapes"].items() if ".29." not in k}
    other["model"]["num_blocks"] = 29
    other["modules"] = {k: v for k, v in other["modules"].items() if ".29." not in k}
    from allocsearch.plan import fingerprint

    other["model"]["fingerprint"] = fingerprint({k: tuple(v) for k, v in other["model"]["shapes"].items()})
    other["target"] = sum(m["sparsity"] * other["model"]["shapes"][k][0] * other["model"]["shapes"][k][1]
                          for k, m in other["modules"].items()) / sum(
        a * b for a, b in other["model"]["shapes"].values())
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert main(["predictor", "rank", str(out), str(tmp_path / "other.json")]) == 2
    err = capsys.readouterr().err
    assert "plan is for model other" in err and "trained on smollm2-135m" in err
