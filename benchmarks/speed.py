"""Speed and memory of the cached-mask Evaluator on one model.

    python benchmarks/speed.py                       # SmolLM2-135M, CPU, float32
    python benchmarks/speed.py --device cuda --dtype bfloat16 --tokens 20480

Measures, in one process:
- overhead ratio = time(apply a new plan + fitness) / time(bare forward over the same tokens),
  medians over --repeats runs, each run with a different random plan at 60-70% (every layer
  rewritten), for each fitness (ppl, kl);
- the one-time cost: profile (uncached) and building the evaluator's caches, each as a
  multiple of one sequential Wanda prune with the same calibration data;
- memory: what the evaluator holds (dense copy, ranks, dense reference) and its peak
  (resident set on CPU, allocated on CUDA) above the loaded model, relative to the model's size.
Writes benchmarks/results/speed_<device>_<dtype>.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_model_args, environment, print_table, write_json
from _timing import MiB, forward_only, now_mib, peak_mib, reset_peak, sync, timed

from allocsearch.budget import identity_from_adapter, random_plan
from allocsearch.data import DataConfig, calibration_windows
from allocsearch.evaluate import Evaluator, EvaluatorConfig
from allocsearch.models import load_model
from allocsearch.pipeline import PruneConfig, prune_uniform
from allocsearch.profile import build_profile, compute_profile


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_model_args(p)
    p.add_argument("--tokens", type=int, default=4096, help="fitness tokens per candidate")
    p.add_argument("--seqlen", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--fitness", nargs="+", default=["ppl", "kl"])
    p.add_argument("--profile-nsamples", type=int, default=64)
    p.add_argument("--profile-seqlen", type=int, default=512)
    p.add_argument("--skip-one-time", action="store_true", help="skip the profile/prune timings")
    args = p.parse_args()

    lm = load_model(args.model, device=args.device, dtype=args.dtype)
    device = lm.device
    model_mib = sum(t.numel() * t.element_size() for t in lm.model.parameters()) / MiB
    data = DataConfig("embedded", args.profile_nsamples, args.profile_seqlen, 0)
    build_profile(lm, data)  # cached before measuring, so the evaluator's peak is its own
    ident = identity_from_adapter(lm.adapter, lm.name)
    n_windows = -(-args.tokens // args.seqlen)
    rows: list[dict[str, Any]] = []
    memory: dict[str, Any] = {}
    base = now_mib(device)  # the loaded model and the process, before any evaluator
    for fitness in args.fitness:
        config = EvaluatorConfig(fitness=fitness, seqlen=args.seqlen, fidelities=(args.tokens,),
                                 batch_size=args.batch_size, profile=data)
        reset_peak(device)
        t = time.perf_counter()
        ev = Evaluator.build(lm, config, progress=False)
        build_s = time.perf_counter() - t
        ev.fitness(random_plan(ident, 0.65, seed=999))  # warm-up (allocator, kernels)
        fwd: list[float] = []
        full: list[float] = []
        apply_s: list[float] = []
        for r in range(args.repeats):
            fwd.append(forward_only(ev, n_windows))
            plan = random_plan(ident, 0.6 + 0.1 * r / max(args.repeats - 1, 1), seed=r)
            full.append(timed(device, partial(ev.fitness, plan)))
            ev.restore()
            apply_s.append(timed(device, partial(ev.apply, plan)))
            ev.restore()
        peak = peak_mib(device) - base
        held = ev.memory()
        memory[fitness] = {k: v / MiB for k, v in held.items()} | {"peak_above_model_MiB": peak}
        ev.close()
        del ev
        rows.append({
            "fitness": fitness, "tokens": n_windows * args.seqlen,
            "forward_s": statistics.median(fwd), "apply_s": statistics.median(apply_s),
            "apply+fitness_s": statistics.median(full),
            "overhead": statistics.median(full) / statistics.median(fwd),
            "build_s": build_s, "held_MiB": sum(v for k, v in held.items() if k != "model") / MiB,
            "peak_over_model": peak / model_mib,
        })
    print(f"\n{lm.name} on {device} ({args.dtype}); model {model_mib:.0f} MiB; "
          f"{args.repeats} repeats, medians")
    print_table(rows, list(rows[0]))

    one_time: dict[str, float] = {}
    if not args.skip_one_time:
        windows = calibration_windows(lm.tokenizer, "embedded", data.nsamples, data.seqlen, data.seed)
        sync(device)
        t = time.perf_counter()
        compute_profile(lm, windows, data, progress=False)
        sync(device)
        one_time["profile_s"] = time.perf_counter() - t
        t = time.perf_counter()
        prune_uniform(lm, PruneConfig("wanda", 0.5, calibration=data), progress=False)
        sync(device)
        one_time["wanda_prune_s"] = time.perf_counter() - t
        one_time["profile_over_prune"] = one_time["profile_s"] / one_time["wanda_prune_s"]
        for row in rows:
            one_time[f"evaluator_build_{row['fitness']}_over_prune"] = (
                row["build_s"] / one_time["wanda_prune_s"])
        print(f"\none-time cost ({data.nsamples} x {data.seqlen} calibration tokens):")
        print_table([one_time], list(one_time))
    path = write_json(f"speed_{device.type}_{args.dtype}.json", {
        "environment": environment(), "model": args.model, "args": vars(args),
        "model_MiB": model_mib, "rows": rows, "memory_MiB": memory, "one_time": one_time,
    }, protocol={"device": str(device), "dtype": args.dtype, "model": args.model, "data": "embedded",
                 "calibration": f"{args.profile_nsamples} x {args.profile_seqlen} (profile)",
                 "evaluation": f"{args.tokens} search tokens per fitness", "seeds": [0]})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
