"""Noise floor of verification: how far the verified perplexity of one plan moves with the
calibration draw and with the CPU thread count. A claimed gain must exceed it.

For the uniform and a ramp plan at each target, with Wanda and SparseGPT: the plan is verified
(sequential prune on ``--nsamples`` x ``--seqlen`` calibration windows, then ``--eval-windows``
evaluation windows) once per calibration seed, with each thread count. Same library call as a
study's verification (:func:`allocsearch.evaluate.verify_plan`).

    OMP_NUM_THREADS=2 python benchmarks/noise.py --targets 0.7            # resumable
    OMP_NUM_THREADS=2 python benchmarks/noise.py --targets 0.6 --tag 60   # another process

Prints a table and writes benchmarks/results/noise_<device>.json: per plan, pruner and target,
each draw's perplexity per thread count, the spread across draws (max - min, and relative to
the mean), the largest change a thread count makes to one draw, and the paired verdict of
ramp against uniform on the draws.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RUNS, add_model_args, print_table, write_json

from allocsearch.allocation import get_allocator
from allocsearch.data import DataConfig
from allocsearch.evaluate import VerifyConfig, verify_plan
from allocsearch.io import atomic_write_text
from allocsearch.models import load_model
from allocsearch.profile import build_profile


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--targets", type=float, nargs="+", default=[0.7, 0.6])
    p.add_argument("--pruners", nargs="+", default=["wanda", "sparsegpt"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="calibration draws")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--ramp-slope", type=float, default=0.2)
    p.add_argument("--nsamples", type=int, default=16)
    p.add_argument("--seqlen", type=int, default=256)
    p.add_argument("--eval-windows", type=int, default=40)
    p.add_argument("--fresh", action="store_true", help="ignore a partial run")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="start no new plan after this many minutes: the JSON then lists what is "
                        "missing, and the same command without it resumes and completes the run")
    p.add_argument("--tag", default="", help="suffix of the result file (noise_<device>_<tag>.json), "
                   "so targets can run in parallel processes")
    args = p.parse_args()

    seeds = "-".join(map(str, args.seeds))
    tag = f"_{args.tag}" if args.tag else ""
    partial = RUNS / (f"noise_{Path(args.model).name}_{args.nsamples}x{args.seqlen}_"
                      f"{args.eval_windows}_s{seeds}{tag}.partial.json")
    partial.parent.mkdir(parents=True, exist_ok=True)
    done: dict[str, Any] = {} if args.fresh or not partial.exists() else json.loads(partial.read_text())
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    profile = build_profile(loaded, DataConfig("embedded", args.nsamples, args.seqlen, 0), progress=False)
    plans = {"uniform": {}, f"ramp slope={args.ramp_slope}": {"slope": args.ramp_slope}}
    start = time.perf_counter()
    missing: list[str] = []
    for target in args.targets:
        for label, params in plans.items():
            plan = get_allocator(label.split()[0], **params).allocate(profile, target)
            for pruner in args.pruners:
                for threads in args.threads:
                    key = f"{target}|{label}|{pruner}|{threads}"
                    if key in done:
                        continue
                    if args.max_minutes is not None and time.perf_counter() - start > 60 * args.max_minutes:
                        missing.append(key)
                        continue
                    config = VerifyConfig(pruner, DataConfig("embedded", args.nsamples, args.seqlen, 0),
                                          nsamples=args.eval_windows, calibration_seeds=tuple(args.seeds),
                                          threads=threads, source="embedded")
                    t = time.perf_counter()
                    v = verify_plan(loaded, plan, config, progress=False)
                    done[key] = {"target": target, "plan": label, "pruner": pruner, "threads": v.threads,
                                 "draws": {str(s): ppl for s, ppl in v.by_seed.items()},
                                 "seconds": time.perf_counter() - t}
                    atomic_write_text(partial, json.dumps(done, indent=1))
                    print(f"{target:.0%} {label:16s} {pruner:9s} {threads} threads: "
                          + "  ".join(f"{x:.3f}" for x in v.by_seed.values()), flush=True)
    rows = summarise(done, args)
    print_table(rows, ["target", "plan", "pruner", "mean", "spread", "rel_spread", "thread_effect",
                       "rel_thread_effect"])
    verdicts = paired(done, args)
    print_table(verdicts, ["target", "pruner", "threads", "ratio", "lower_on", "draws", "verdict"])
    floor = {f"{r['target']}|{r['pruner']}": max(x["rel_spread"] for x in rows
                                                 if (x["target"], x["pruner"]) == (r["target"], r["pruner"]))
             for r in rows}
    out = write_json(f"noise_{loaded.device.type}{tag}.json",
                     {"rows": rows, "paired": verdicts, "relative_floor": floor, "runs": done,
                      "complete": not missing, "missing": missing},
                     {"device": loaded.device.type, "dtype": args.dtype, "model": args.model,
                      "data": "embedded",
                      "calibration": {"nsamples": args.nsamples, "seqlen": args.seqlen, "seeds": args.seeds},
                      "evaluation": {"part": "evaluation", "seqlen": 512, "windows": args.eval_windows},
                      "seeds": args.seeds})
    print(f"wrote {out}")


def summarise(done: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per target, plan and pruner: the spread across draws (largest over thread counts) and
    the largest change one draw sees between thread counts."""
    rows = []
    groups: dict[tuple[float, str, str], dict[int, dict[str, float]]] = {}
    for r in done.values():
        groups.setdefault((r["target"], r["plan"], r["pruner"]), {})[r["threads"]] = r["draws"]
    for (target, plan, pruner), by_threads in sorted(groups.items()):
        values = [x for draws in by_threads.values() for x in draws.values()]
        mean = statistics.fmean(values)
        spread = max(max(d.values()) - min(d.values()) for d in by_threads.values())
        seeds = set.intersection(*(set(d) for d in by_threads.values()))
        # The largest change a thread count makes to one draw (None: one thread count measured).
        effect = max((max(d[s] for d in by_threads.values()) - min(d[s] for d in by_threads.values())
                      for s in seeds), default=0.0) if len(by_threads) > 1 else None
        rows.append({"target": target, "plan": plan, "pruner": pruner, "mean": mean, "spread": spread,
                     "rel_spread": spread / mean, "thread_effect": effect,
                     "rel_thread_effect": None if effect is None else effect / mean,
                     "threads": sorted(by_threads)})
    return rows


def paired(done: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Ramp against uniform, draw by draw, as ``study report`` decides a claim."""
    out = []
    ramp = f"ramp slope={args.ramp_slope}"
    for target in args.targets:
        for pruner in args.pruners:
            for threads in args.threads:
                a = done.get(f"{target}|{ramp}|{pruner}|{threads}")
                b = done.get(f"{target}|uniform|{pruner}|{threads}")
                if a is None or b is None:
                    continue
                seeds = sorted(set(a["draws"]) & set(b["draws"]))
                lower = sum(a["draws"][s] < b["draws"][s] for s in seeds)
                ratio = statistics.fmean(a["draws"].values()) / statistics.fmean(b["draws"].values())
                out.append({"target": target, "pruner": pruner, "threads": threads, "ratio": ratio,
                            "lower_on": lower, "draws": len(seeds),
                            "verdict": "better" if lower == len(seeds) else "within noise"})
    return out


if __name__ == "__main__":
    main()
