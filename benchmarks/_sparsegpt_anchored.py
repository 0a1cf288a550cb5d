"""The ``sparsegpt_anchored`` suite of benchmarks/quality.py (exploratory): one anchored
round on the level database from each seed's best plan of the ``sparsegpt`` suite."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

from _common import RUNS, command_line, environment, other_domain_file
from _sparsegpt import _config, measure

from allocsearch.evaluate import Evaluator
from allocsearch.models import load_model
from allocsearch.plan import Plan
from allocsearch.search.anchored import run_anchored
from allocsearch.search.settings import AnchorSettings, WarmStart


def suite_sparsegpt_anchored(args: argparse.Namespace) -> dict[str, Any]:
    """One anchored round on the level database (exploratory): the database re-built on the
    activations of a sequential SparseGPT prune at the sparsegpt suite's best plan of each seed
    in --seeds (so the anchor's fitness is its exact sequential one), --offspring EvoPress
    trials from it, the best of {anchor, the round's best trial} (each measured exactly, which
    re-builds the database at it) pruned and measured as in the sparsegpt suite."""
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    other = other_domain_file(RUNS)
    ev: Evaluator | None = None
    rows: list[dict[str, Any]] = []
    for target in args.targets:
        pct = str(round(target * 100))
        state = json.loads((RUNS / f"quality_sparsegpt_{pct}.partial.json").read_text())[pct]
        for seed in args.seeds:
            start = RUNS / f"anchor_start_{pct}_s{seed}.json"
            Plan.from_dict(state[f"searched:s{seed}"]["plan"]).save(start)
            base = _config(target, seed, args, winners=[])
            cfg = dataclasses.replace(base, output=RUNS / f"{base.name}_anchored_s{seed}", warm_start=(),
                                      n_trials=args.offspring,
                                      anchor=AnchorSettings(1, WarmStart("plan", {}, str(start)), 1))
            if ev is None:
                ev = Evaluator.build(loaded, cfg.evaluator, progress=False)
            t = time.perf_counter()
            run = run_anchored(cfg, evaluator=ev, progress=args.progress, verify=False)
            assert run.best is not None
            row = {"target": float(target), "seed": seed, "start_ppl": state[f"searched:s{seed}"]["ppl"],
                   "start_ppl_other": state[f"searched:s{seed}"]["ppl_other"],
                   "measured": run.measured, "best_from": run.best.provenance["anchored"],
                   "search_s": time.perf_counter() - t,
                   **measure(ev, cfg, run.best, other, args.eval_windows or 40)}
            rows.append(row)
            print(f"  {pct}% seed {seed}: start {row['start_ppl']:.3f} -> anchored best "
                  f"({row['best_from']}) {row['ppl']:.3f}, other {row['ppl_other']:.3f}", flush=True)
    assert ev is not None
    ev.close()
    return {"suite": "sparsegpt_anchored", "command": command_line(),
            "model": args.model, "device": loaded.device.type, "dtype": args.dtype,
            "offspring": args.offspring, "environment": environment(), "rows": rows}
