"""Quality benchmark: evaluation-split perplexity of pruned SmolLM2-135M.

Suite ``uniform`` (the foundation): dense, and one uniform ratio for every layer with
magnitude, Wanda and SparseGPT, unstructured and N:M.

    python benchmarks/quality.py --suite uniform            # ~20 min on 2 CPU cores

Prints a table and writes benchmarks/results/quality_uniform.json.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import environment, print_table, write_json

from allocsearch.data import DataConfig
from allocsearch.models import load_model
from allocsearch.pipeline import PruneConfig, evaluate_perplexity, overall_sparsity, prune_uniform
from allocsearch.pruners import Pattern

UNIFORM_RUNS: list[tuple[str, float | None, str]] = [
    ("magnitude", 0.5, "unstructured"),
    ("wanda", 0.5, "unstructured"),
    ("sparsegpt", 0.5, "unstructured"),
    ("wanda", None, "2:4"),
    ("sparsegpt", None, "2:4"),
]


def suite_uniform(args: argparse.Namespace) -> dict[str, Any]:
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    dense = copy.deepcopy(loaded.model.state_dict())
    cal = DataConfig(args.data, args.nsamples, args.seqlen, args.seed)
    rows: list[dict[str, Any]] = []

    def evaluate(label: str, method: str, pattern: str, prune_s: float) -> None:
        t = time.perf_counter()
        res = evaluate_perplexity(loaded, args.data, seqlen=args.seqlen, progress=False)
        row = {
            "run": label, "method": method, "pattern": pattern,
            "sparsity": overall_sparsity(loaded), "ppl": res.ppl, "eval_tokens": res.tokens,
            "prune_s": prune_s, "eval_s": time.perf_counter() - t,
        }
        rows.append(row)
        print(f"  {label:28s} ppl {res.ppl:9.3f}  sparsity {row['sparsity']:.4f}", flush=True)

    evaluate("dense", "-", "-", 0.0)
    for method, sparsity, pattern in UNIFORM_RUNS:
        loaded.model.load_state_dict(dense)
        config = PruneConfig(method, sparsity, Pattern.parse(pattern), cal)
        report = prune_uniform(loaded, config, progress=False)
        label = f"{method} {pattern if pattern != 'unstructured' else f'{config.sparsity:.0%}'}"
        evaluate(label, method, pattern, report.seconds)
    return {
        "suite": "uniform",
        "model": args.model,
        "data": args.data,
        "calibration": {"nsamples": args.nsamples, "seqlen": args.seqlen, "seed": args.seed},
        "evaluation": {"part": "evaluation", "seqlen": args.seqlen, "windows": "all"},
        "environment": environment(),
        "rows": rows,
    }


SUITES = {"uniform": suite_uniform}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--suite", choices=sorted(SUITES), default="uniform")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--data", default="embedded")
    p.add_argument("--nsamples", type=int, default=64)
    p.add_argument("--seqlen", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32")
    args = p.parse_args()
    payload = SUITES[args.suite](args)
    print()
    print_table(payload["rows"], ["run", "sparsity", "ppl", "eval_tokens", "prune_s", "eval_s"])
    path = write_json(f"quality_{args.suite}.json", payload)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
