"""The search suites of benchmarks/quality.py (kept apart for size).

``search``: at each target, run the study config studies/smollm2-<pct>.yaml, verify its best
trial exactly, and verify on the same device every prior plan chosen in the ``priors`` suite
(benchmarks/results/priors_plans/), with Wanda and, for the best searched plan and the best
prior, SparseGPT too.

``anchored``: the sequential-aware study studies/smollm2-<pct>-seq.yaml (anchored rounds,
allocsearch/search/anchored.py): its best anchor against the best prior, both verified on the
same device with Wanda and, unless --no-sparsegpt, SparseGPT.

``samplers``: the EvoPress-style sampler vs. TPE vs. CMA-ES at equal trial budgets, several
seeds, the 70% study with only the uniform warm start (so the samplers, not the priors, find
the plans); the best trial of each run is verified with Wanda.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, RUNS, environment, restart_unfinished, result_path, study_file

from allocsearch.evaluate import Evaluator, verify
from allocsearch.io import atomic_write_json
from allocsearch.models import load_model
from allocsearch.plan import Plan
from allocsearch.search import StudyConfig, run_study, store, tokens_read
from allocsearch.search.report import best_plan


def _config(target: float, args: argparse.Namespace, extra: list[str]) -> StudyConfig:
    pct = round(target * 100)
    tag = f"{args.suite}_{pct}_{args.device}_{args.dtype}{_tag(args)}"  # suites never share a study
    overrides = [f"seed={args.seed}", f"device={args.device}", f"dtype={args.dtype}", *extra,
                 *args.set] + ([f"n_trials={args.n_trials}"] if args.n_trials else [])
    cfg = StudyConfig.load(study_file("search", target), overrides)
    out = RESULTS / "search_runs" / f"{cfg.name}_{tag}_{cfg.sampler}_s{cfg.seed}"
    return dataclasses.replace(cfg, output=out)


def _tag(args: argparse.Namespace) -> str:
    """``_<tag>`` when the run is another protocol of its suite (its files must not replace
    the suite's own), else nothing."""
    return f"_{args.tag}" if args.tag else ""


def _evaluator(args: argparse.Namespace) -> Evaluator:
    """One evaluator for every study of the suite (the studies share their evaluator config)."""
    cfg = _config(args.targets[0], args, [])
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    return Evaluator.build(loaded, cfg.evaluator, progress=False)


def _verify(ev: Evaluator, cfg: StudyConfig, plan: Plan, pruner: str) -> float:
    return verify(ev, plan, cfg.verify_config(pruner)).ppl


def _priors_chosen(target: float) -> dict[str, tuple[str, bool]]:
    """prior row name -> (plan label, is the best prior), from the priors suite's results."""
    rows = json.loads(result_path("quality_priors.json")[0].read_text())["rows"]
    return {r["prior"]: (r["params"], bool(r["best_prior"])) for r in rows
            if abs(r["target"] - target) < 1e-9}


def suite_search(args: argparse.Namespace) -> dict[str, Any]:
    ev = _evaluator(args)
    rows: list[dict[str, Any]] = []
    for target in args.targets:
        cfg = _config(target, args, [])
        t = time.perf_counter()
        restart_unfinished(cfg)
        run = run_study(cfg, evaluator=ev, progress=args.progress, verify=True)
        search_s = time.perf_counter() - t
        best = best_plan(run.study)
        best_trial = best.provenance["trial"]
        best_ppl = run.verified[best_trial].ppl
        fitness_evals = sum(1 for tr in store.trials(run.study) if tr.plan is not None)
        out: dict[str, Any] = {
            "target": target, "trials": len(run.study.trials), "fitness_evaluations": fitness_evals,
            "search_s": search_s, "best_trial": best_trial,
            "best_fitness": best.provenance["fitness"], "best_wanda_ppl": best_ppl,
            "top_verified": {str(k): v.ppl for k, v in run.verified.items()},
            "priors_wanda_ppl": {}, "verifications": len(run.verified),
        }
        best_prior_plan = None
        for name, (label, is_best) in _priors_chosen(target).items():
            path = RESULTS / "priors_plans" / f"{round(target * 100)}_{label.replace(' ', '_')}.json"
            plan = Plan.load(path)
            ppl = _verify(ev, cfg, plan, "wanda")
            out["priors_wanda_ppl"][name] = ppl
            out["verifications"] += 1
            if is_best:
                best_prior_plan = plan
                out["best_prior"] = name
                out["best_prior_wanda_ppl"] = ppl
            print(f"  {target:.0%} prior {name:28s} wanda ppl {ppl:9.3f}", flush=True)
        out["ratio_wanda"] = best_ppl / out["best_prior_wanda_ppl"]
        if args.sparsegpt and best_prior_plan is not None:
            out["best_sparsegpt_ppl"] = _verify(ev, cfg, best, "sparsegpt")
            out["best_prior_sparsegpt_ppl"] = _verify(ev, cfg, best_prior_plan, "sparsegpt")
            out["ratio_sparsegpt"] = out["best_sparsegpt_ppl"] / out["best_prior_sparsegpt_ppl"]
            out["verifications"] += 2
        best.save(RESULTS / f"search_best_{round(target * 100)}{_tag(args)}.json")
        print(f"  {target:.0%} searched best (trial {best_trial}): wanda ppl {best_ppl:.3f} vs best "
              f"prior {out['best_prior_wanda_ppl']:.3f} = {out['ratio_wanda']:.3f}x", flush=True)
        rows.append(out)
        _save_partial("search", args, rows)
    ev.close()
    return {"suite": "search", "model": args.model, "device": ev.loaded.device.type, "dtype": args.dtype,
            "n_trials": args.n_trials, "environment": environment(), "rows": rows}


def suite_anchored(args: argparse.Namespace) -> dict[str, Any]:
    from allocsearch.search.anchored import run_anchored

    rows: list[dict[str, Any]] = []
    ev: Evaluator | None = None
    for target in args.targets:
        pct = round(target * 100)
        overrides = [f"seed={args.seed}", f"device={args.device}", f"dtype={args.dtype}",
                     *args.set] + ([f"n_trials={args.n_trials}"] if args.n_trials else [])
        cfg = StudyConfig.load(study_file("anchored", target), overrides)
        tag = f"anchored_{pct}_{args.device}_{args.dtype}_{cfg.sampler}_s{cfg.seed}{_tag(args)}"
        cfg = dataclasses.replace(cfg, output=RESULTS / "search_runs" / f"{cfg.name}_{tag}")
        if ev is None:
            loaded = load_model(args.model, device=args.device, dtype=args.dtype)
            ev = Evaluator.build(loaded, cfg.evaluator, progress=False)
        t = time.perf_counter()
        run = run_anchored(cfg, evaluator=ev, progress=args.progress, verify=True)
        assert run.best is not None
        out: dict[str, Any] = {
            "target": target, "rounds": len(run.rounds), "trials_per_round": cfg.n_trials,
            "fitness_evaluations": sum(
                sum(1 for tr in store.trials(r.study) if tr.plan is not None) for r in run.rounds
            ),
            "exact_measurements": len(run.measured), "measured": run.measured,
            "best_from": run.best.provenance["anchored"],
            "best_wanda_ppl": run.verified["best"]["ppl"],
            "start_wanda_ppl": run.verified["start"]["ppl"], "search_s": time.perf_counter() - t,
        }
        for name, (label, is_best) in _priors_chosen(target).items():
            if not is_best:
                continue
            prior = Plan.load(RESULTS / "priors_plans" / f"{pct}_{label.replace(' ', '_')}.json")
            out["best_prior"] = name
            out["best_prior_wanda_ppl"] = _verify(ev, cfg, prior, "wanda")
            out["ratio_wanda"] = out["best_wanda_ppl"] / out["best_prior_wanda_ppl"]
            if args.sparsegpt:
                out["best_sparsegpt_ppl"] = _verify(ev, cfg, run.best, "sparsegpt")
                out["best_prior_sparsegpt_ppl"] = _verify(ev, cfg, prior, "sparsegpt")
                out["ratio_sparsegpt"] = out["best_sparsegpt_ppl"] / out["best_prior_sparsegpt_ppl"]
        run.best.save(RESULTS / f"search_best_{pct}_anchored_{ev.loaded.device.type}{_tag(args)}.json")
        print(f"  {target:.0%} anchored best ({out['best_from']}): wanda ppl "
              f"{out['best_wanda_ppl']:.3f} vs best prior {out.get('best_prior_wanda_ppl', 0):.3f} "
              f"= {out.get('ratio_wanda', 0):.3f}x", flush=True)
        rows.append(out)
        _save_partial("anchored", args, rows)
    assert ev is not None
    ev.close()
    return {"suite": "anchored", "model": args.model, "device": ev.loaded.device.type,
            "dtype": args.dtype, "n_trials": args.n_trials, "environment": environment(), "rows": rows}


def suite_samplers(args: argparse.Namespace) -> dict[str, Any]:
    ev = _evaluator(args)
    device = ev.loaded.device.type
    runs: list[dict[str, Any]] = []
    target = args.targets[0]
    for sampler in args.samplers:
        for seed in args.sampler_seeds:
            extra = [f"sampler.name={sampler}", f"seed={seed}", "warm_start=[{method: uniform}]",
                     "verify.top=1"]
            if sampler == "evopress":
                extra += ["sampler.params={}", "pruner.name=evopress", "pruner.params={}"]
            elif sampler == "cmaes":
                extra += ["sampler.params={}"]
            cfg = _config(target, args, extra)
            t = time.perf_counter()
            restart_unfinished(cfg)
            run = run_study(cfg, evaluator=ev, progress=args.progress, verify=True)
            best = best_plan(run.study)
            trial = best.provenance["trial"]
            pruned = sum(1 for tr in run.study.trials if tr.state.name == "PRUNED")
            runs.append({"sampler": sampler, "seed": seed, "device": device,
                         "budget": _budget(cfg), "trials": len(run.study.trials), "pruned": pruned,
                         "search_tokens": tokens_read(run.study),
                         "best_fitness": best.provenance["fitness"],
                         "best_wanda_ppl": run.verified[trial].ppl,
                         "seconds": time.perf_counter() - t})
            print(f"  {sampler:9s} seed {seed}: best fitness {runs[-1]['best_fitness']:.3f}, "
                  f"verified {runs[-1]['best_wanda_ppl']:.3f} ({pruned} pruned)", flush=True)
            _save_partial("samplers", args, runs)
    ev.close()
    merged = _merge_runs(runs, args.merge)
    return {"suite": "samplers", "model": args.model, "target": target, "n_trials": args.n_trials,
            "device": device, "dtype": args.dtype, "environment": environment(),
            "merged_from": [str(m) for m in args.merge],
            "rows": _sampler_summary(merged), "runs": merged}


def _budget(cfg: StudyConfig) -> str:
    return f"{cfg.max_tokens} tokens" if cfg.max_tokens else f"{cfg.n_trials} trials"


def _merge_runs(runs: list[dict[str, Any]], files: list[Path]) -> list[dict[str, Any]]:
    """Earlier results files' runs plus this invocation's; a run is one (sampler, seed, device,
    budget), and a later file or this invocation replaces an earlier copy of it. Older files
    name the device and trial budget once, at the top."""
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for path in files:
        earlier = json.loads(path.read_text())
        for r in earlier["runs"]:
            r = {"device": earlier["device"], "budget": f"{earlier['n_trials']} trials", **r}
            by_key[_run_key(r)] = r
    for r in runs:
        by_key[_run_key(r)] = r
    return sorted(by_key.values(), key=_run_key)


def _run_key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["sampler"], r["budget"], r["device"], r["seed"])


def _sampler_summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median and spread per sampler and budget over the valid runs (a run marked ``invalid``
    is left out); a seed run on two devices counts twice (their trajectories differ)."""
    summary = []
    for sampler, budget in dict.fromkeys((r["sampler"], r["budget"]) for r in runs):
        mine = [r for r in runs if (r["sampler"], r["budget"]) == (sampler, budget)
                and "invalid" not in r]
        devices = ",".join(sorted({r["device"] for r in mine}))
        tokens = [r["search_tokens"] for r in mine if "search_tokens" in r]
        for key in ("best_fitness", "best_wanda_ppl"):
            vals = [r[key] for r in mine]
            summary.append({"sampler": sampler, "budget": budget, "metric": key,
                            "median": statistics.median(vals), "min": min(vals),
                            "max": max(vals), "runs": len(vals), "devices": devices,
                            "median_tokens": statistics.median(tokens) if tokens else None})
    return summary


def _save_partial(suite: str, args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    RUNS.mkdir(parents=True, exist_ok=True)
    path = RUNS / f"quality_{suite}_{args.device}_{args.dtype}{_tag(args)}.partial.json"
    atomic_write_json(path, rows, indent=1)

