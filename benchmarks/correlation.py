"""Does the cheap fitness rank plans like the exact number? Spearman over varied plans.

    python benchmarks/correlation.py --nsamples 16 --seqlen 256 --eval-windows 40
    python benchmarks/correlation.py --pruner sparsegpt     # the level database vs SparseGPT

For 44 plans (10 at each of 60/65/70%: uniform, OWL, alpha, ramps of both signs, random
per-block plans, a per-type plan with q/k sparser than v/o, a random per-module plan; and 14
more at 70%, where ranking is hardest: the quality suites' priors, per-type offsets alone and
on a ramp, random per-block and per-module plans of smaller spread), on SmolLM2-135M and the
embedded data:
- cached-mask fitness on the search part (perplexity and KL to dense), at each fidelity;
- exact verification: sequential Wanda at the plan's ratios (calibration --nsamples x
  --seqlen, seed 0), perplexity on --eval-windows x 512 tokens of the evaluation part.
Reports Spearman's rho of each cheap fitness against the exact perplexity, over all plans and
within each target. ``--draws 0 1 2`` takes the exact number as the mean over three
calibration draws (and reports Spearman against draw 0 alone beside it); ``--targets 0.7``
measures one target's plans only. Finished plans are
kept in results/runs/correlation_<tag>.partial.json (an interrupted run resumes; a plan
measured on other library code or numerics is measured again); writes
results/correlation_<tag>.json. ``--shard 0/2`` and ``--shard 1/2`` split the plans
between two processes (one core each); a last run without ``--shard`` writes the result (and,
when it measures anything, folds the shards' files into the partial file).

With ``--pruner sparsegpt`` the plans are snapped to the level grid, the cheap fitness is the
level database's (SparseGPT levels calibrated on the same --nsamples x --seqlen windows as the
verification, one-shot), the cached Wanda-rank fitness of the same plans is kept beside it
(``wanda_ppl@...``: what the search optimised before the database), and the exact number is a
sequential SparseGPT prune. ``--reference uniform`` adds the sequential-aware database's
fitness (``ref_ppl@...``): per target, the database built on the activations of a sequential
SparseGPT prune at the uniform plan (:meth:`allocsearch.evaluate.Evaluator.use_reference`);
with several references the geometric mean of their fitnesses is reported too
(``refs_geomean@<tokens>``). The reference databases are scored at every fidelity but the
first: ``--fidelities 2048 8192 16384`` adds their fitness on twice the search tokens.
With the default ``--pruner wanda`` the same flag adds the anchored cached ranks' fitness: per
target, Wanda scores taken with the input norms a sequential Wanda prune at the reference plan
sees (on the profile's calibration windows, as a study with ``evaluator.reference`` does).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _code_state import code_state, fresh_entries, without_code_state
from _common import (
    RUNS,
    add_model_args,
    command_line,
    environment,
    print_table,
    reference_fidelities,
    reference_key,
    write_json,
)
from _shards import load_done, save_rows, shard_of, shard_path
from scipy.stats import spearmanr

from allocsearch.allocation import get_allocator
from allocsearch.budget import identity_from_adapter, plan_from_values, random_plan
from allocsearch.data import DataConfig
from allocsearch.evaluate import Evaluator, EvaluatorConfig, VerifyConfig
from allocsearch.evaluate import verify as verify_exact
from allocsearch.evaluate.reference import canonical_reference
from allocsearch.models import load_model
from allocsearch.models.adapters import projection_kind
from allocsearch.plan import Plan

TARGETS = (0.6, 0.65, 0.7)
PRIORS: list[tuple[str, str, dict[str, Any]]] = [
    ("uniform", "uniform", {}),
    ("owl M=5 lam=0.08", "owl", {"M": 5, "lam": 0.08}),
    ("alpha eps=0.1", "alpha", {"eps": 0.1}),
    ("ramp +0.15", "ramp", {"slope": 0.15}),
    ("ramp +0.3", "ramp", {"slope": 0.3}),
    ("ramp -0.2", "ramp", {"slope": -0.2}),
]
RANDOM = [("random 0.1", 0.1), ("random 0.2", 0.2)]
#: A per-type plan as EvoPress's 70% profiles look: q/k sparser than v/o in every block.
TYPE_OFFSETS = {"self_attn.q_proj": 0.1, "self_attn.k_proj": 0.1, "self_attn.v_proj": -0.1,
                "self_attn.o_proj": -0.1}
#: Fourteen more plans at 70%, where ranking is hardest, so that 24 plans share that target:
#: the priors the quality suites start from, per-type offsets (alone and on a ramp), and
#: random per-block and per-module plans of smaller spread, near the good plans.
MORE_TARGET = 0.7
MORE_PRIORS: list[tuple[str, str, dict[str, Any]]] = [
    ("ramp +0.05", "ramp", {"slope": 0.05}),
    ("ramp +0.1", "ramp", {"slope": 0.1}),
    ("ramp +0.2", "ramp", {"slope": 0.2}),
    ("owl M=10 lam=0.2", "owl", {"M": 10, "lam": 0.2}),
    ("alpha eps=0.05", "alpha", {"eps": 0.05}),
]
#: (label, base prior's slope or None for uniform, offset per projection kind)
MORE_TYPES: list[tuple[str, float | None, dict[str, float]]] = [
    ("types qk+ vo- 0.05", None, {k: v / 2 for k, v in TYPE_OFFSETS.items()}),
    ("ramp +0.1 types qk+ vo-", 0.1, TYPE_OFFSETS),
    ("types attn+ mlp-", None, {k: 0.1 for k in TYPE_OFFSETS}),
    ("types down-", None, {"mlp.down_proj": -0.1}),
]
#: (label, block spread, module spread, seed)
MORE_RANDOM = [("modules 0.1 b", 0.05, 0.1, 101), ("modules 0.15 b", 0.05, 0.15, 102),
               ("random 0.05 b", 0.05, 0.05, 103), ("random 0.1 b", 0.1, 0.05, 104),
               ("random 0.1 c", 0.1, 0.05, 105)]


def make_plans(ev: Evaluator) -> dict[str, Plan]:
    """Every plan, made while the model is dense (OWL reads the dense weights)."""
    ev.restore()
    ident = identity_from_adapter(ev.loaded.adapter, ev.loaded.name)
    plans: dict[str, Plan] = {}
    for i, target in enumerate(TARGETS):
        for label, method, params in PRIORS:
            plans[f"{target:.2f} {label}"] = get_allocator(method, **params).allocate(ev.profile, target)
        for j, (label, spread) in enumerate(RANDOM):
            plans[f"{target:.2f} {label}"] = random_plan(ident, target, block_spread=spread,
                                                         seed=10 * i + j)
        values = [target + TYPE_OFFSETS.get(projection_kind(ident.architecture, n), 0.0)
                  for n in ident.shapes]
        plans[f"{target:.2f} types qk+ vo-"] = plan_from_values(ident, target, values)
        plans[f"{target:.2f} modules 0.15"] = random_plan(ident, target, block_spread=0.05,
                                                          module_spread=0.15, seed=10 * i + 5)
    return plans | more_plans(ev)


def more_label(label: str) -> str:
    """An added plan's label in the results: its target, then its name."""
    return f"{MORE_TARGET:.2f} {label}"


def more_labels() -> set[str]:
    """The labels of the plans :func:`more_plans` makes."""
    names = [x[0] for x in MORE_PRIORS] + [x[0] for x in MORE_TYPES] + [x[0] for x in MORE_RANDOM]
    return {more_label(name) for name in names}


def more_plans(ev: Evaluator) -> dict[str, Plan]:
    """The fourteen extra plans at :data:`MORE_TARGET` (OWL reads the dense weights)."""
    ident = identity_from_adapter(ev.loaded.adapter, ev.loaded.name)
    t = MORE_TARGET
    plans = {more_label(label): get_allocator(method, **params).allocate(ev.profile, t)
             for label, method, params in MORE_PRIORS}
    for label, slope, offsets in MORE_TYPES:
        base = (get_allocator("ramp", slope=slope).allocate(ev.profile, t).sparsities()
                if slope is not None else dict.fromkeys(ident.shapes, t))
        values = [base[n] + offsets.get(projection_kind(ident.architecture, n), 0.0)
                  for n in ident.shapes]
        plans[more_label(label)] = plan_from_values(ident, t, values)
    for label, blocks, modules, seed in MORE_RANDOM:
        plans[more_label(label)] = random_plan(ident, t, block_spread=blocks,
                                                module_spread=modules, seed=seed)
    return plans


def reference_fitness(ev: Evaluator, plans: dict[str, Plan], done: dict[str, Any], reference: str,
                      tokens: list[int]) -> None:
    """``done[label][reference_key(reference, t)]`` for each ``t`` in ``tokens`` (fidelities of
    one pass): each plan's fitness on the database built at the ``reference`` allocator's plan
    at its target (one build per target, cached), where missing."""
    keys = [reference_key(reference, t) for t in tokens]
    for target in TARGETS:
        todo = [k for k, p in plans.items()
                if abs(p.target - target) < 1e-9 and any(key not in done.get(k, {}) for key in keys)]
        if not todo:
            continue
        ev.use_reference(target, reference)
        for label in todo:
            steps = {s.tokens: s.value for s in ev.iter_fitness(plans[label])}
            done.setdefault(label, {}).update({reference_key(reference, t): steps[t] for t in tokens})
    ev.anchor(None)


def wanda_rank_fitness(
    ev: Evaluator, plans: dict[str, Plan], config: EvaluatorConfig
) -> dict[str, dict[str, float]]:
    """The cached Wanda-rank fitness of each plan (what the search used before the database),
    from a second evaluator on the same model; ``ev``'s backend is told its weights changed."""
    if not plans:
        return {}
    ev.restore()
    ranks = Evaluator(ev.loaded, ev.profile, dataclasses.replace(config, masks="ranks", pruner="wanda"),
                      progress=False)
    out: dict[str, dict[str, float]] = {}
    try:
        for label, plan in plans.items():
            # The first fidelity only: the old proxy's ranking, at a quarter of the cost.
            steps = ranks.iter_fitness(plan, upto=config.fidelities[0])
            out[label] = {f"wanda_ppl@{s.tokens}": s.value for s in steps}
    finally:
        ranks.close()
        ev.backend.forget()
    return out


def spearman(rows: list[dict[str, Any]], key: str, exact: str = "exact_ppl") -> float:
    rho = spearmanr([r[key] for r in rows], [r[exact] for r in rows]).statistic
    return float(rho)


def exact_draws(ev: Evaluator, plan: Plan, verify: VerifyConfig, row: dict[str, Any],
                seeds: list[int]) -> int:
    """``row["exact_draws"]``: the plan's sequential-prune perplexity per calibration seed, the
    missing seeds measured now (a row from before draws were kept holds seed 0's as
    ``exact_ppl``); ``exact_ppl`` becomes their mean over ``seeds``. Returns how many draws
    were measured now."""
    draws = row.setdefault("exact_draws", {} if "exact_ppl" not in row else {"0": row["exact_ppl"]})
    missing = [s for s in seeds if str(s) not in draws]
    if missing:
        v = verify_exact(ev, plan, dataclasses.replace(verify, calibration_seeds=tuple(missing)))
        draws |= {str(d.seed): d.ppl for d in v.draws}
        row["exact_tokens"] = v.tokens
        row["verify_s"] = row.get("verify_s", 0.0) + sum(d.prune_seconds + d.eval_seconds for d in v.draws)
    row["exact_ppl"] = sum(draws[str(s)] for s in seeds) / len(seeds)
    return len(missing)


def geomean_key(rows: list[dict[str, Any]], keys: list[str], tokens: int) -> str:
    """Adds to each row the geometric mean of its ``keys`` (the fitness on several reference
    databases at once, at ``tokens``); returns the new key, ``refs_geomean@<tokens>``."""
    key = f"refs_geomean@{tokens}"
    for r in rows:
        r[key] = math.exp(sum(math.log(r[k]) for k in keys) / len(keys))
    return key


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_model_args(p)
    p.add_argument("--nsamples", type=int, default=16, help="calibration windows (verification)")
    p.add_argument("--seqlen", type=int, default=256, help="calibration window length")
    p.add_argument("--eval-windows", type=int, default=40, help="512-token evaluation windows")
    p.add_argument("--fidelities", type=int, nargs="+", default=[2048, 8192])
    p.add_argument("--pruner", default="wanda", choices=["wanda", "sparsegpt"],
                   help="wanda: cached ranks vs sequential Wanda (default); sparsegpt: the level "
                        "database vs sequential SparseGPT")
    p.add_argument("--fitness", nargs="+", default=["ppl", "kl"], choices=["ppl", "kl"],
                   help="cheap fitnesses to compute (default both)")
    p.add_argument("--reference", nargs="+", default=["none"], type=canonical_reference,
                   help="also score on the database (--pruner sparsegpt) or the Wanda ranks "
                        "(wanda) calibrated by a sequential prune at each of these allocators' "
                        "plans (uniform, ramp, 'ramp slope=0.1', ...), per target")
    p.add_argument("--draws", type=int, nargs="+", default=[0],
                   help="calibration seeds of the exact number (its mean over them; default 0 "
                        "alone); a resumed run adds the missing draws to finished plans")
    p.add_argument("--targets", type=float, nargs="+", default=list(TARGETS), choices=TARGETS,
                   help="measure only these targets' plans (default all; a subset writes "
                        "correlation_<tag>_t<pct>.json beside the full result)")
    p.add_argument("--fresh", action="store_true", help="ignore the partial results")
    p.add_argument("--shard", type=shard_of, default=None, metavar="I/N",
                   help="measure every N-th plan from the I-th only, into its own partial file "
                        "(run I = 0..N-1 side by side, then once without --shard to write the "
                        "result)")
    args = p.parse_args()

    lm = load_model(args.model, device=args.device, dtype=args.dtype)
    calibration = DataConfig("embedded", args.nsamples, args.seqlen, 0)
    if args.pruner == "sparsegpt":
        config = EvaluatorConfig(fitness="ppl", masks="database", pruner="sparsegpt",
                                 fidelities=tuple(args.fidelities), profile=calibration, batch_size=8,
                                 reference=args.reference[0])
    else:
        config = EvaluatorConfig(fitness="ppl", fidelities=tuple(args.fidelities),
                                 reference=args.reference[0])
    ev = Evaluator.build(lm, config)
    # Made for every target, then chosen: a plan's random seed depends on its target's index.
    plans = {label: ev.prepare(plan) for label, plan in make_plans(ev).items()
             if any(abs(plan.target - t) < 1e-9 for t in args.targets)}
    verify = VerifyConfig(args.pruner, calibration, nsamples=args.eval_windows)
    tag = f"{lm.device.type}_{args.dtype}" + ("_sparsegpt" if args.pruner == "sparsegpt" else "")
    subset = "" if set(args.targets) == set(TARGETS) else "_t" + "-".join(
        str(round(t * 100)) for t in sorted(args.targets))
    partial_path = RUNS / f"correlation_{tag}.partial.json"
    partial_path.parent.mkdir(parents=True, exist_ok=True)
    # Nothing is carried from an earlier result: the same plan and calibration draw, pruned
    # sequentially again in another environment (another library version), measured a few
    # percent apart, as much as between draws, so every exact number of one result is measured
    # on one code and environment. For the same reason a row of the partial file measured on
    # other library code or numerics is measured again whole; a row extended later (more draws,
    # a reference) is extended on code equal to its own, and records the state it was last
    # extended on.
    done = {} if args.fresh else fresh_entries(load_done(partial_path), partial_path.name)
    # Highest target first: where ranking is hardest, so an interrupted run has measured it.
    order = sorted(plans, key=lambda k: -plans[k].target)
    if args.shard is not None:
        order = order[args.shard[0]::args.shard[1]]
    cheap_keys = [f"{f}@{t}" for f in args.fitness for t in args.fidelities]
    todo = {k: plans[k] for k in order if any(c not in done.get(k, {}) for c in cheap_keys)}
    wanda_fitness = wanda_rank_fitness(ev, todo, config) if args.pruner == "sparsegpt" else {}
    ev.progress = False

    for label in order:
        plan, row = plans[label], done.setdefault(label, {"plan": label})
        row |= {"target": plan.target, "budget": plan.budget()}
        if label in todo:
            t = time.perf_counter()
            for fitness in args.fitness:
                for step in ev.iter_fitness(plan, fitness=fitness):
                    row[f"{fitness}@{step.tokens}"] = step.value
            row["fitness_s"] = time.perf_counter() - t
            row |= wanda_fitness.get(label, {})
        if exact_draws(ev, plan, verify, row, args.draws) or label in todo:
            row |= code_state()
            cheap = "  ".join(f"{f}@full {row[f'{f}@{args.fidelities[-1]}']:9.4g}" for f in args.fitness)
            print(f"{label:28s} {cheap}  exact over draws {args.draws} {row['exact_ppl']:9.3f}", flush=True)
            save_rows(partial_path, done, args.shard, order)
    references = [r for r in args.reference if r != "none"]
    # The reference databases at every fidelity but the screening one (the first).
    ref_tokens = reference_fidelities(args.fidelities)
    mine = {k: plans[k] for k in order}
    for reference in references:
        reference_fitness(ev, mine, done, reference, ref_tokens)
        state = code_state()
        for k in mine:
            done[k] |= state
        save_rows(partial_path, done, args.shard, order)
    ev.close()
    if args.shard is not None:
        print(f"shard {args.shard[0]}/{args.shard[1]} done: {shard_path(partial_path, args.shard)}; "
              "run again without --shard to write the result")
        return

    # exact_ppl: the mean over the draws
    rows = [without_code_state(done[k]) | {"exact_ppl_s0": done[k]["exact_draws"]["0"]} for k in plans]
    keys = list(cheap_keys)
    if args.pruner == "sparsegpt":
        keys += [f"wanda_ppl@{args.fidelities[0]}"]
    for t in ref_tokens:
        ref_keys = [reference_key(r, t) for r in references]
        keys += ref_keys
        if len(ref_keys) > 1:
            keys.append(geomean_key(rows, ref_keys, t))
    # Against the mean over the draws, and (with several draws) against one draw alone: the
    # exact number itself moves by several percent between draws at 70%.
    def group(name: str, sub: list[dict[str, Any]]) -> dict[str, Any]:
        out = {"group": name, "plans": len(sub), **{k: spearman(sub, k) for k in keys}}
        if len(args.draws) > 1:
            out |= {f"{k} vs draw 0": spearman(sub, k, "exact_ppl_s0") for k in keys}
            out["draw 0 vs mean"] = spearman(sub, "exact_ppl_s0")
        return out

    summary = [group("all", rows)]
    summary += [group(f"{t:.2f}", [r for r in rows if abs(r["target"] - t) < 1e-9])
                for t in TARGETS if t in args.targets]
    # The first 10 plans at 70% and the 14 added after them (no choice was made on those)
    if MORE_TARGET in args.targets:
        extra = more_labels()
        at = [r for r in rows if abs(r["target"] - MORE_TARGET) < 1e-9]
        summary.append(group(f"{MORE_TARGET:.2f} first", [r for r in at if r["plan"] not in extra]))
        summary.append(group(f"{MORE_TARGET:.2f} added", [r for r in at if r["plan"] in extra]))
    print_table(rows, ["plan", *keys, "exact_ppl"])
    print(f"\nSpearman rho of each cheap fitness vs. exact sequential-{args.pruner} perplexity")
    print_table(summary, list(summary[0]))
    path = write_json(f"correlation_{tag}{subset}.json", {
        "command": command_line(),
        "environment": environment(), "model": args.model, "args": vars(args),
        "evaluator": config.to_dict(), "verify": {"pruner": verify.pruner,
        "calibration": vars(verify.calibration), "eval_windows": args.eval_windows,
        "draws": args.draws},
        "rows": rows, "spearman": summary,
    }, protocol={"device": str(lm.device), "dtype": args.dtype, "model": args.model, "data": "embedded",
                 "calibration": f"{args.nsamples} x {args.seqlen}, seeds {args.draws}",
                 "evaluation": f"{args.eval_windows} x 512 evaluation windows", "seeds": [0]})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
