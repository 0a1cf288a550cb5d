"""Quality benchmark: evaluation-split perplexity of pruned SmolLM2-135M.

Suite ``uniform`` (the foundation): dense, and one uniform ratio for every layer with
magnitude, Wanda and SparseGPT, unstructured and N:M.

    python benchmarks/quality.py --suite uniform            # ~20 min on 2 CPU cores

Suite ``priors``: every allocation prior (uniform, OWL on its grid, alpha, ramp, BESA) at
50/60/70%, pruned with sequential Wanda; parameters chosen on the search split, the chosen
plans measured on the evaluation split.

    python benchmarks/quality.py --suite priors --nsamples 16 --seqlen 256 --eval-windows 40

Suites ``search`` and ``samplers`` (see benchmarks/_search.py): the Optuna search against the
priors at 70% and 60%, and the samplers against each other.

    python benchmarks/quality.py --suite search --device cuda --n-trials 250
    python benchmarks/quality.py --suite samplers --device cuda --n-trials 60 --sampler-seeds 0 1 2
    python benchmarks/quality.py --suite anchored --progress
    python benchmarks/quality.py --suite oneshot --nsamples 16 --seqlen 256 --search-windows 8 \
        --eval-windows 40 --targets 0.7 0.6

Suite ``sparsegpt`` (see benchmarks/_sparsegpt.py): the search on a SparseGPT level database
against the priors, all verified with sequential SparseGPT, 3 seeds, two domains.

    python benchmarks/quality.py --suite sparsegpt --seeds 0 1 2
    python benchmarks/quality.py --suite sparsegpt_modules --seeds 0 1 2 --offspring 120   # per-module
    python benchmarks/quality.py --suite sparsegpt_modules --seeds 0 1 2 --offspring 120 \
        --tag screened --set "predictor={model: typed, tokens: 2048}"   # ... short-listed
    python benchmarks/quality.py --suite sparsegpt_modules --seeds 0 1 2 --offspring 120 \
        --targets 0.7 --tag pretrained --pretrain 0.6   # ... from a predictor of the 60% studies
    python benchmarks/quality.py --suite sparsegpt_modules --seeds 0 1 2 --offspring 120 \
        --targets 0.7 --tag pretrained_wanda --pretrain 0.5 0.6 0.75 --pretrain-from records
        # ... from a predictor of the committed 50/60/75% Wanda studies (another pruner)

Seeds may run at once in processes of their own once the first has chosen the priors
(``--seeds 1`` and ``--seeds 2``, the same other arguments); ``--report`` then writes the result
from what they measured. Each measured entry records its commit and the library files its
process had not imported; a later run measures it again when any other file under
``allocsearch/`` differs at its own commit (``_code_state.measured_elsewhere``).

Suite ``wanda_modules``: the same protocol with Wanda (studies/smollm2-<pct>-modules.yaml:
per-module offsets on cached Wanda ranks, every plan verified with sequential Wanda).

    python benchmarks/quality.py --suite wanda_modules --seeds 0 1 2 --offspring 120   # 70% and 60%
    python benchmarks/quality.py --suite wanda_modules --seeds 0 1 2 --offspring 120 --targets 0.7 \
        --tag ref --set "evaluator.reference=ramp slope=0.2"   # ranks anchored at the best prior
    python benchmarks/quality.py --suite wanda_modules --seeds 0 1 2 --offspring 240 --targets 0.7 \
        --tag ref_long --set "evaluator.reference=ramp slope=0.2"   # ... with twice the offspring
    python benchmarks/quality.py --suite wanda_modules --seeds 0 1 2 --offspring 40 --targets 0.7 \
        --tag curves --set "warm_start=[{method: uniform}, {method: owl, grid: {M: [3, 5, 7, 10], \
        lam: [0.02, 0.05, 0.08, 0.1, 0.2]}}, {method: alpha, grid: {eps: [0.05, 0.1, 0.2, 0.3]}}, \
        {method: ramp, grid: {slope: [0.1, 0.2, 0.3, 0.4]}}, \
        {method: curves, params: {prior: ramp slope=0.2}, grid: {mix: [0.25, 0.5, 0.75, 1.0]}}]"
        # ... the priors and four plans from the block loss curves (search/curve_start.py), whose
        # tokens count as the search's, then 40 offspring
    python benchmarks/quality.py --suite sparsegpt_modules --seeds 0 1 --offspring 40 --targets 0.7 \
        --tag curves --set "warm_start=[{method: uniform}, {method: owl, grid: {M: [3, 5, 7, 10], \
        lam: [0.02, 0.05, 0.08, 0.1, 0.2]}}, {method: alpha, grid: {eps: [0.05, 0.1, 0.2, 0.3]}}, \
        {method: ramp, grid: {slope: [0.1, 0.2, 0.3, 0.4]}}, \
        {method: curves, params: {prior: ramp slope=0.1}, grid: {mix: [0.25, 0.5, 0.75, 1.0]}}]"
        # ... the same under SparseGPT (its best prior: ramp slope=0.1), on the level database
    python benchmarks/quality.py --suite sparsegpt_modules --seeds 0 1 2 --offspring 40 --targets 0.6 \
        --tag curves60 --set "warm_start=[{method: uniform}, {method: owl, grid: {M: [3, 5, 7, 10], \
        lam: [0.02, 0.05, 0.08, 0.1, 0.2]}}, {method: alpha, grid: {eps: [0.05, 0.1, 0.2, 0.3]}}, \
        {method: ramp, grid: {slope: [0.1, 0.2, 0.3, 0.4]}}, \
        {method: curves, params: {prior: ramp slope=0.2}, grid: {mix: [0.25, 0.5, 0.75, 1.0]}}]"
        # ... at 60% (the plain suite's best prior there: ramp slope=0.2)
    python benchmarks/quality.py --suite sparsegpt_modules --seeds 0 1 2 --offspring 40 --targets 0.7 \
        --tag curvesaround --set "warm_start=[{method: uniform}, {method: owl, grid: {M: [3, 5, 7, 10], \
        lam: [0.02, 0.05, 0.08, 0.1, 0.2]}}, {method: alpha, grid: {eps: [0.05, 0.1, 0.2, 0.3]}}, \
        {method: ramp, grid: {slope: [0.1, 0.2, 0.3, 0.4]}}, {method: curves, params: \
        {prior: ramp slope=0.1, around: uniform}, grid: {mix: [0.25, 0.5, 0.75, 1.0]}}]"
        # ... at 70% from the curves measured around the uniform plan (benchmarks/curves.py --around)
    python benchmarks/quality.py --suite sparsegpt_modules --seeds 0 1 2 --offspring 40 --targets 0.7 \
        --tag finalists --set "warm_start=[{method: uniform}, {method: owl, grid: {M: [3, 5, 7, 10], \
        lam: [0.02, 0.05, 0.08, 0.1, 0.2]}}, {method: alpha, grid: {eps: [0.05, 0.1, 0.2, 0.3]}}, \
        {method: ramp, grid: {slope: [0.1, 0.2, 0.3, 0.4]}}, {method: curves, params: \
        {prior: ramp slope=0.1, around: uniform}, grid: {mix: [0.25, 0.5, 0.75, 1.0]}}]" \
        "finalists={top: 8}"
        # ... the same, the best plan chosen among the 8 best by a real SparseGPT prune on the
        # search split (allocsearch/search/finalists.py)
    python benchmarks/quality.py --suite sparsegpt_modules --seeds 0 1 2 --offspring 40 --targets 0.7 \
        --tag curves2 --set "warm_start=[{method: uniform}, {method: owl, grid: {M: [3, 5, 7, 10], \
        lam: [0.02, 0.05, 0.08, 0.1, 0.2]}}, {method: alpha, grid: {eps: [0.05, 0.1, 0.2, 0.3]}}, \
        {method: ramp, grid: {slope: [0.1, 0.2, 0.3, 0.4]}}, {method: curves, params: \
        {prior: ramp slope=0.1, around: uniform, rounds: 2}, grid: {mix: [0.0, 0.25, 0.5, 0.75, 1.0]}}]"
        # ... from a second round of curves, measured around the first round's best mix (mix 0:
        # that plan itself; allocsearch/search/curve_start.py)
    python benchmarks/quality.py --suite wanda_modules --seeds 0 1 2 --offspring 46 --targets 0.7 \
        --tag rounds --set anchor.rounds=2 "anchor.start={method: ramp, params: {slope: 0.2}}"
        # ... in two anchored rounds of 75 trials (the same trial count), the second anchored at
        # the best plan the first measured exactly (allocsearch/search/anchored.py)
    python benchmarks/quality.py --suite wanda_modules --seeds 0 1 2 --offspring 120 --targets 0.7 \
        --tag pretrained_additive --pretrain 0.5 0.6 0.75 --pretrain-from records \
        --pretrain-model additive --set predictor.tokens=2048
        # ... short-listed from the start by an additive predictor of the 50/60/75% Wanda studies

Prints a table and writes benchmarks/results/quality_<suite>[_<device>].json.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PRIOR_TARGETS,
    RESULTS,
    RUNS,
    SUITE_STUDIES,
    add_model_args,
    environment,
    print_table,
    prior_candidates,
    prior_label,
    study_file,
    write_json,
)
from _oneshot import suite_oneshot
from _search import suite_anchored, suite_samplers, suite_search
from _sparsegpt import suite_sparsegpt, suite_sparsegpt_modules, suite_wanda_modules
from _sparsegpt_anchored import suite_sparsegpt_anchored

from allocsearch.data import DataConfig
from allocsearch.io import atomic_write_json
from allocsearch.models import load_model
from allocsearch.pipeline import PruneConfig, evaluate_perplexity, overall_sparsity, prune_uniform
from allocsearch.plan import Plan
from allocsearch.predictor.base import DEFAULT_MODEL, regressor_names
from allocsearch.pruners import Pattern
from allocsearch.search import StudyConfig

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


def suite_priors(args: argparse.Namespace) -> dict[str, Any]:
    """Every allocation prior at 50/60/70%, pruned for real with sequential Wanda.

    Parameters are chosen on the search split (``--search-windows`` windows); each
    family's chosen plan is then measured on the evaluation split. Partial results are
    kept in results/runs/quality_priors.partial.json so an interrupted run resumes.
    """
    from allocsearch.allocation import get_allocator
    from allocsearch.pipeline import prune_with_plan
    from allocsearch.profile import build_profile

    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    dense = copy.deepcopy(loaded.model.state_dict())
    cal = DataConfig(args.data, args.nsamples, args.seqlen, args.seed)
    profile = build_profile(loaded, DataConfig(args.data, 64, 512, args.seed), progress=False)
    partial_path = RUNS / "quality_priors.partial.json"
    RUNS.mkdir(parents=True, exist_ok=True)
    done: dict[str, Any] = json.loads(partial_path.read_text()) if partial_path.exists() else {}
    plans_dir = RESULTS / "priors_plans"

    def save_partial() -> None:
        atomic_write_json(partial_path, done, indent=1)
    plans_dir.mkdir(parents=True, exist_ok=True)

    def measure(plan: Any, part: str, windows: int | None) -> float:
        loaded.model.load_state_dict(dense)
        prune_with_plan(loaded, plan, "wanda", cal, progress=False)
        return evaluate_perplexity(loaded, args.data, part=part, seqlen=512, nsamples=windows,
                                   progress=False).ppl

    rows: list[dict[str, Any]] = []
    for target in args.targets:
        trials: list[dict[str, Any]] = []
        plans: dict[str, Any] = {}
        for family, method, params in prior_candidates():
            label = prior_label(method, params)
            key = f"{target}|{label}"
            t = time.perf_counter()
            plan_file = plans_dir / f"{round(target * 100)}_{label.replace(' ', '_')}.json"
            if plan_file.exists() and key in done:
                plan = Plan.load(plan_file)  # BESA takes minutes: do not redo it on resume
            else:
                plan = get_allocator(method, **params).allocate(profile, target)
                plan.save(plan_file)
            plans[label] = plan
            if key not in done:
                alloc_s = time.perf_counter() - t
                search = measure(plan, "search", args.search_windows)
                done[key] = {"search_ppl": search, "alloc_s": alloc_s,
                             "total_s": time.perf_counter() - t}
                save_partial()
            trials.append({"target": target, "family": family, "label": label, **done[key]})
            print(f"  {target:.0%} {label:32s} search ppl {done[key]['search_ppl']:10.3f}", flush=True)
        chosen = {"owl default (M=5, lam=0.08)": "owl M=5.0 lam=0.08"}
        for family in ("uniform", "owl", "alpha", "ramp", "besa"):
            best = min((r for r in trials if r["family"] == family), key=lambda r: r["search_ppl"])
            chosen[f"{family} (best on search)" if family in ("owl", "alpha", "ramp") else family] = (
                best["label"]
            )
        for name, label in chosen.items():
            key = f"{target}|{label}|evaluation"
            if key not in done:
                done[key] = {"eval_ppl": measure(plans[label], "evaluation", args.eval_windows)}
                save_partial()
            search = done[f"{target}|{label}"]["search_ppl"]
            rows.append({"target": target, "prior": name, "params": label, "search_ppl": search,
                         "eval_ppl": done[key]["eval_ppl"]})
            print(f"  {target:.0%} {name:30s} {label:24s} eval ppl {done[key]['eval_ppl']:10.3f}",
                  flush=True)
        at = [r for r in rows if r["target"] == target]
        best = min(at, key=lambda r: r["search_ppl"])
        for r in at:
            r["best_prior"] = r is best
        trials_all = done.setdefault("_trials", {})
        trials_all[str(target)] = trials
    return {
        "suite": "priors",
        "model": args.model,
        "data": args.data,
        "pruner": "wanda (sequential)",
        "calibration": {"nsamples": args.nsamples, "seqlen": args.seqlen, "seed": args.seed},
        "profile": {"nsamples": 64, "seqlen": 512, "seed": args.seed},
        "search": {"part": "search", "seqlen": 512, "windows": args.search_windows},
        "evaluation": {"part": "evaluation", "seqlen": 512, "windows": args.eval_windows},
        "environment": environment(),
        "rows": rows,
        "trials": done.get("_trials", {}),
    }


#: The suites that run a study config once per seed of --seeds (same rows, same --pretrain).
SEEDED = ("sparsegpt", "sparsegpt_modules", "wanda_modules")
SEEDED_COLUMNS = ["target", "plan", "seeds", "search_fitness", "ppl", "ppl_min", "ppl_max", "ppl_other",
                  "ratio", "ratio_other"]

SUITES = {"uniform": suite_uniform, "priors": suite_priors, "search": suite_search,
          "samplers": suite_samplers, "anchored": suite_anchored, "oneshot": suite_oneshot,
          "sparsegpt": suite_sparsegpt, "sparsegpt_anchored": suite_sparsegpt_anchored,
          "sparsegpt_modules": suite_sparsegpt_modules, "wanda_modules": suite_wanda_modules}


def _protocol(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """The manifest's protocol of a quality suite: its arguments, or, for the suites that run
    study configs, the config's profile and verification (what their numbers were measured on)."""
    seeds = (args.seeds if args.suite in SEEDED
             else args.sampler_seeds if args.suite == "samplers" else [args.seed])
    calibration = f"{args.nsamples} x {args.seqlen}, seed {args.seed}"
    evaluation = f"{args.eval_windows or 'all'} x 512 evaluation windows"
    if args.suite in SUITE_STUDIES:
        path = study_file(args.suite, args.targets[0])
        cfg = StudyConfig.load(path, list(args.set))
        d, v = cfg.data, cfg.verify
        calibration = (f"profile {d.nsamples} x {d.seqlen}; verification {v.nsamples} x {v.seqlen}, "
                       f"seed {d.seed} ({path.name})")
        evaluation = f"{v.eval_windows} x 512 evaluation windows"
    return {"device": device, "dtype": args.dtype, "model": args.model, "data": args.data,
            "calibration": calibration, "evaluation": evaluation, "seeds": seeds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--suite", choices=sorted(SUITES), default="uniform")
    add_model_args(p)
    p.add_argument("--data", default="embedded")
    p.add_argument("--nsamples", type=int, default=64)
    p.add_argument("--seqlen", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--search-windows", type=int, default=16, help="priors: search-split windows")
    p.add_argument("--targets", type=float, nargs="+", default=list(PRIOR_TARGETS),
                   help="priors: target sparsities")
    p.add_argument("--eval-windows", type=int, default=None, help="evaluation windows (default all)")
    p.add_argument("--n-trials", type=int, default=None,
                   help="search/samplers: trials per study; anchored: per round (default: config)")
    p.add_argument("--samplers", nargs="+", default=["evopress", "tpe", "cmaes"])
    p.add_argument("--sampler-seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="samplers: the seeds each sampler runs with")
    p.add_argument("--merge", type=Path, nargs="+", default=[],
                   help="samplers: earlier results JSONs whose runs are kept beside this one's "
                   "(a run rerun now, same sampler, seed, device and budget, is replaced)")
    p.add_argument("--no-sparsegpt", dest="sparsegpt", action="store_false",
                   help="search: skip the SparseGPT re-verification")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sparsegpt: study seeds")
    p.add_argument("--offspring", type=int, default=45,
                   help="sparsegpt: trials per study beyond its warm starts")
    p.add_argument("--fresh", action="store_true", help="sparsegpt: ignore the partial results")
    p.add_argument("--report", action="store_true",
                   help="sparsegpt suites: write the result from the partial results (each target's "
                   "measured seeds; seeds may run in processes of their own), measuring nothing")
    p.add_argument("--pretrain", type=float, nargs="+", default=[],
                   help="sparsegpt suites: start every study from a predictor trained on the plain "
                   "suite's studies at these targets (run them first; with --tag)")
    p.add_argument("--pretrain-from", choices=["suite", "records"], default="suite",
                   help="--pretrain's studies: the plain suite's (default), or the committed Wanda "
                   "predictor studies (benchmarks/predictor_data.py's records)")
    p.add_argument("--pretrain-model", choices=regressor_names(), default=DEFAULT_MODEL,
                   help="--pretrain's predictor model (default: the library's default)")
    p.add_argument("--tag", default="", help="search/anchored/sparsegpt: a suffix for the result, plan and "
                   "study names (another protocol of the suite, e.g. a refinement or --set variant)")
    p.add_argument("--progress", action="store_true", help="search: progress bars and trial log")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="search/samplers/sparsegpt: study config overrides (as allocsearch search --set)")
    args = p.parse_args()
    if args.pretrain and not (args.tag and args.suite in SEEDED):
        p.error("--pretrain runs a variant of a sparsegpt or per-module suite: give it a --tag")
    if args.suite in ("search", "samplers", "anchored", "sparsegpt_anchored", *SEEDED) \
            and args.targets == list(PRIOR_TARGETS):
        two = ("search", "sparsegpt", "sparsegpt_modules", "wanda_modules")
        args.targets = [0.7, 0.6] if args.suite in two else [0.7]
    payload = SUITES[args.suite](args)
    print()
    columns = {
        "uniform": ["run", "sparsity", "ppl", "eval_tokens", "prune_s", "eval_s"],
        "priors": ["target", "prior", "params", "search_ppl", "eval_ppl", "best_prior"],
        "search": ["target", "fitness_evaluations", "verifications", "best_fitness", "best_wanda_ppl",
                   "best_prior", "best_prior_wanda_ppl", "ratio_wanda", "ratio_sparsegpt"],
        "samplers": ["sampler", "budget", "metric", "median", "min", "max", "runs", "devices",
                     "median_tokens"],
        "oneshot": ["target", "plan", "params", "search_ppl", "eval_ppl", "best_prior", "ratio"],
        "sparsegpt_anchored": ["target", "seed", "start_ppl", "best_from", "ppl", "ppl_other"],
        **dict.fromkeys(SEEDED, SEEDED_COLUMNS),
        "anchored": ["target", "rounds", "fitness_evaluations", "exact_measurements", "best_from",
                     "best_wanda_ppl",
                     "best_prior", "best_prior_wanda_ppl", "ratio_wanda", "ratio_sparsegpt"],
    }[args.suite]
    print_table(payload["rows"], columns)
    name = args.suite if args.suite in ("uniform", "priors") else f"{args.suite}_{payload['device']}"
    name += f"_{args.tag}" if args.tag else ""
    # The device it ran on: the suite's own record, else its environment's, never "auto".
    device = payload.get("device") or payload.get("environment", {}).get("device") or args.device
    path = write_json(f"quality_{name}.json", payload, protocol=_protocol(args, str(device)))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
