"""Costs of the SparseGPT level database on SmolLM2-135M: build time as a multiple of one
SparseGPT prune, disk (measured, and projected for a LLaMA-7B shape), and the apply overhead
of database fitness against the bare forward pass.

    python benchmarks/database.py --threads 1        # ~10 min on one CPU core

- One sequential SparseGPT prune at 70% uniform (calibration --nsamples x --seqlen), timed.
- The database (dense + 0.30..0.95 step 0.05, SparseGPT, one-shot inputs, same calibration)
  built into a fresh cache folder, timed; its size on disk. Deleted afterwards unless --keep.
- The sequential-aware database (``evaluator.reference: uniform``): the same grid calibrated on
  the activations of a sequential SparseGPT prune at the uniform --target plan, timed.
- Apply overhead: a chain of --plans EvoPress offspring (each its parent with 1-3 level switches
  between blocks, as the sampler makes them) and --plans independent random plans (every module
  changes: the worst case). For each plan, the full-fidelity fitness right after the switch,
  divided by the same plan's fitness again (nothing to write: the bare forward pass and
  perplexity on the same tokens). Median and max of that ratio.

Writes results/database_costs_<device>.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from _common import add_model_args, command_line, environment, print_table, write_json

from allocsearch.apply import prune_to_targets
from allocsearch.budget import identity_from_adapter, random_plan
from allocsearch.data import DataConfig
from allocsearch.database import DEFAULT_LEVELS, DatabaseSpec, LevelGrid, anchor_digest, build_database
from allocsearch.engine import uniform_targets
from allocsearch.evaluate import Evaluator, EvaluatorConfig
from allocsearch.models import load_model
from allocsearch.plan import ModuleChoice, Plan, block_of
from allocsearch.pruners import get_pruner

#: LLaMA-7B's prunable shapes: 32 blocks of q, k, v, o (4096 x 4096) and gate, up, down
#: (4096 <-> 11008).
LLAMA7B_PRUNABLE = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)


def offspring(parent: Plan, grid: LevelGrid, rng: np.random.Generator) -> Plan:
    """The parent with 1-3 level switches: one block up a level, another down one (blocks are
    equal in size here, so the budget holds)."""
    levels = list(grid.levels)
    blocks = {b: [n for n in parent.modules if block_of(n) == b] for b in range(parent.model.num_blocks)}
    mods = dict(parent.modules)
    for _ in range(int(rng.integers(1, 4))):
        for _try in range(20):
            up, down = (int(b) for b in rng.choice(len(blocks), size=2, replace=False))
            iu = grid.index(mods[blocks[up][0]].sparsity)
            idn = grid.index(mods[blocks[down][0]].sparsity)
            if iu + 1 < len(levels) and idn - 1 >= 1:
                for n in blocks[up]:
                    mods[n] = ModuleChoice(levels[iu + 1])
                for n in blocks[down]:
                    mods[n] = ModuleChoice(levels[idn - 1])
                break
    return Plan(parent.model, parent.target, mods, {"method": "offspring"})


def overhead(ev: Evaluator, plans: list[Plan]) -> list[dict[str, float]]:
    out = []
    for plan in plans:
        t = time.perf_counter()
        first = ev.fitness(plan)
        t_switch = time.perf_counter() - t
        t = time.perf_counter()
        again = ev.fitness(plan)
        t_bare = time.perf_counter() - t
        assert first == again
        out.append({"switch_s": t_switch, "bare_s": t_bare, "ratio": t_switch / t_bare})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_model_args(p)
    p.add_argument("--nsamples", type=int, default=16)
    p.add_argument("--seqlen", type=int, default=256)
    p.add_argument("--target", type=float, default=0.7)
    p.add_argument("--plans", type=int, default=12, help="plans per overhead chain")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--keep", action="store_true", help="keep the database built here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_model(args.model, device=args.device, dtype=args.dtype)
    cal = DataConfig("embedded", args.nsamples, args.seqlen, 0)

    copy = lm.clone()
    t = time.perf_counter()
    prune_to_targets(copy, get_pruner("sparsegpt"), uniform_targets(copy.adapter, args.target), cal, 1, False)
    prune_s = time.perf_counter() - t
    del copy

    cache = Path(tempfile.mkdtemp(prefix="allocsearch-db-"))
    try:
        spec = DatabaseSpec("sparsegpt", LevelGrid(DEFAULT_LEVELS), cal)
        report = build_database(lm, spec, cache_dir=cache, progress=False)
        db = report.database
        disk = db.nbytes()
        targets = uniform_targets(lm.adapter, args.target)
        digest = anchor_digest({n: tt.sparsity for n, tt in targets.items()})
        seq = build_database(lm, DatabaseSpec("sparsegpt", LevelGrid(DEFAULT_LEVELS), cal, digest),
                             anchor=targets, cache_dir=cache, progress=False)
        config = EvaluatorConfig(masks="database", pruner="sparsegpt", profile=cal,
                                 fidelities=(2048, 8192), batch_size=8, reference="none")
        ev = Evaluator.build(lm, config, cache_dir=cache, progress=False)
        rng = np.random.default_rng(0)
        ident = identity_from_adapter(lm.adapter, lm.name)
        parent = ev.prepare(random_plan(ident, args.target, block_spread=0.0, module_spread=0.0))
        chain = [parent]
        for _ in range(args.plans):
            chain.append(offspring(chain[-1], db.grid, rng))
        randoms = [ev.prepare(random_plan(ident, args.target, seed=s)) for s in range(args.plans)]
        ev.fitness(parent)  # warm-up: first forward, page cache
        switches = overhead(ev, chain[1:])
        fresh = overhead(ev, randoms)
        ev.close()
    finally:
        if not args.keep:
            shutil.rmtree(cache, ignore_errors=True)

    levels = len(DEFAULT_LEVELS) - 1
    element = torch.empty((), dtype=lm.dtype).element_size()
    rows = [
        {"quantity": "one sequential SparseGPT prune (s)", "value": prune_s},
        {"quantity": "database build (s)", "value": report.seconds},
        {"quantity": "build / one prune", "value": report.seconds / prune_s},
        {"quantity": f"sequential-aware build at uniform {args.target:g} (s)", "value": seq.seconds},
        {"quantity": "sequential-aware build / one prune", "value": seq.seconds / prune_s},
        {"quantity": "database on disk (GiB)", "value": disk / 2**30},
        {"quantity": "projected LLaMA-7B, bf16 (GiB)", "value": LLAMA7B_PRUNABLE * levels * 2 / 2**30},
        *({"quantity": f"apply overhead, {what} ({stat.__name__})",
           "value": stat(r["ratio"] for r in runs)}
          for what, runs in (("level switches", switches), ("all modules change", fresh))
          for stat in (statistics.median, max)),
    ]
    print_table(rows, ["quantity", "value"])
    protocol = {"device": str(lm.device), "dtype": args.dtype, "model": args.model, "data": "embedded",
                "calibration": f"{args.nsamples} x {args.seqlen}, seed 0", "seeds": [0]}
    path = write_json(f"database_costs_{lm.device.type}.json", protocol=protocol, payload={
        "command": command_line(), "environment": environment(),
        "model": args.model, "dtype": args.dtype, "calibration": vars(cal),
        "levels": list(DEFAULT_LEVELS), "element_size": element, "entries": len(report.built),
        "prune_s": prune_s, "build_s": report.seconds, "disk_bytes": disk,
        "reference_build_s": seq.seconds, "reference": f"uniform {args.target:g}",
        "projected_llama7b_bf16_bytes": LLAMA7B_PRUNABLE * levels * 2,
        "fitness": {"fidelities": list(config.fidelities), "batch_size": config.batch_size},
        "switch_chain": switches, "all_change": fresh, "rows": rows,
    })
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
