"""Peak memory of a sequential prune: model + one set of block inputs + one block's work.

    python benchmarks/memory.py --nsamples 128 --seqlen 2048 --method wanda

Prints the peak resident memory (CPU) or peak allocated memory (CUDA) next to the model's
size and the analytic size of the block-input buffer, and writes
benchmarks/results/memory_<method>_<nsamples>x<seqlen>.json.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_model_args, environment, print_table, write_json

from allocsearch.data import calibration_windows
from allocsearch.engine import prune_sequential, uniform_targets
from allocsearch.models import load_model, model_nbytes
from allocsearch.pruners import get_pruner

MiB = 1 << 20


def rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_model_args(p)
    p.add_argument("--method", default="wanda")
    p.add_argument("--nsamples", type=int, default=128)
    p.add_argument("--seqlen", type=int, default=2048)
    p.add_argument("--blocks", type=int, default=None,
                   help="prune only the first N blocks (every block is the same size, so the "
                        "peak is the same; the walk stops after the last pruned block)")
    args = p.parse_args()

    lm = load_model(args.model, device=args.device, dtype=args.dtype)
    cuda = lm.device.type == "cuda"
    model_mib = model_nbytes(lm.model) / MiB  # a tied embedding and lm_head counted once
    hidden = lm.adapter.get_weight(next(iter(lm.adapter.prunable_layers().values()))).shape[1]
    buffer_mib = args.nsamples * args.seqlen * hidden * torch.finfo(lm.dtype).bits / 8 / MiB
    windows = calibration_windows(lm.tokenizer, "embedded", args.nsamples, args.seqlen, seed=0)
    base = torch.cuda.memory_allocated() / MiB if cuda else rss_peak_mib()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    targets = uniform_targets(lm.adapter, 0.5)
    if args.blocks is not None:
        targets = {n: t for n, t in targets.items() if lm.adapter.block_index(n) < args.blocks}
    prune_sequential(lm.model, lm.adapter, get_pruner(args.method), targets, windows, progress=True)
    seconds = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() / MiB if cuda else rss_peak_mib()
    row = {
        "method": args.method, "tokens": f"{args.nsamples} x {args.seqlen}",
        "blocks": args.blocks or lm.adapter.num_blocks,
        "device": str(lm.device), "dtype": args.dtype, "model_MiB": model_mib,
        "block_inputs_MiB": buffer_mib, "before_MiB": base, "peak_MiB": peak,
        "prune_s": seconds,
    }
    print_table([row], list(row))
    path = write_json(f"memory_{args.method}_{args.nsamples}x{args.seqlen}.json",
                      {"environment": environment(), "model": args.model, "rows": [row]},
                      protocol={"device": str(lm.device), "dtype": args.dtype, "model": args.model,
                                "data": "embedded, calibration part",
                                "calibration": f"{args.nsamples} x {args.seqlen}", "seeds": [0]})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
