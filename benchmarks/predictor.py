"""Accuracy-predictor benchmarks on SmolLM2-135M.

Suite ``quality``: held-out quality on the studies benchmarks/predictor_data.py ran (each
study predicted by a predictor trained on all the others): Spearman, Kendall, MAE in log
space and top-10% recall, overall and per target, for XGBoost, scikit-learn's
HistGradientBoosting and the additive baseline side by side; a parity plot.

    python benchmarks/predictor.py --suite quality

Suite ``efficiency``: the samplers suite's protocol at 70% (studies/smollm2-70.yaml, uniform
warm start only, best trial verified with a sequential Wanda prune), with the fitness read at
one fidelity (``--fidelity``, 2048 tokens) and a budget of ``--max-tokens`` search tokens,
TPE alone against TPE with predictor short-listing, several seeds. Reports the search tokens
(and real evaluations) until the best fitness reaches the ramp prior's (slope 0.3), and the
verified perplexity at the end. The predictor learns online: its training data are the
study's own trials, whose tokens are in the count.

    python benchmarks/predictor.py --suite efficiency --seeds 0 1 2

Prints tables and writes benchmarks/results/predictor_<suite>_<device>.json;
``python benchmarks/report.py`` writes the predictor section of docs/results.md from those files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ARCHIVED_NOTE,
    RESULTS,
    STUDIES,
    add_model_args,
    environment,
    print_table,
    result_path,
    write_json,
)

from allocsearch.allocation import get_allocator
from allocsearch.evaluate import Evaluator, verify
from allocsearch.models import load_model
from allocsearch.predictor import FeatureTable, hold_out
from allocsearch.predictor.evaluation import importances, parity_plot
from allocsearch.predictor.model import Predictor
from allocsearch.search import StudyConfig, run_study, store
from allocsearch.search.records import folder_records

RUNS = RESULTS / "predictor_runs"
KINDS = ("xgboost", "hist", "additive")


def suite_quality(args: argparse.Namespace) -> dict[str, Any]:
    folders = sorted(p.parent for p in RUNS.glob("*/study.db") if not p.parent.name.startswith("eff-"))
    records = folder_records(folders)
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    from allocsearch.data import DataConfig
    from allocsearch.profile import build_profile

    table = FeatureTable.from_profile(build_profile(loaded, DataConfig(), progress=False))
    rows: list[dict[str, Any]] = []
    per_kind: dict[str, Any] = {}
    for kind in KINDS:
        t = time.perf_counter()
        held = hold_out(table, records, model=kind, members=args.members, seed=args.seed)
        scores = held.scores()
        per_kind[kind] = scores | {"seconds": time.perf_counter() - t}
        for name, s in [("all", scores["overall"]), *scores["per_target"].items()]:
            rows.append({"model": kind, "plans": name} | s)
        if kind == "xgboost":
            parity_plot(held, RESULTS / "predictor_parity.png", "XGBoost, each study held out")
            full = Predictor.train(table, records, model=kind, members=args.members, seed=args.seed)
            per_kind[kind]["importances"] = importances(full, top=15)
    print_table(rows, ["model", "plans", "n", "spearman", "kendall", "mae_log", "top10_recall"])
    studies = sorted({r.study for r in records})
    return {"suite": "quality", "records": len(records), "studies": studies,
            "fidelity_tokens": records[0].tokens, "members": args.members, "seed": args.seed,
            "rows": rows, "models": per_kind, "parity_plot": "predictor_parity.png"}


def _efficiency_config(args: argparse.Namespace, seed: int, predictor: str) -> StudyConfig:
    overrides = [
        f"seed={seed}", f"device={args.device}", f"dtype={args.dtype}", "warm_start=[{method: uniform}]",
        "verify.top=1", f"evaluator.fidelities=[{args.fidelity}]", "pruner.name=none", "pruner.params={}",
        "sampler.params={n_startup_trials: 10}", f"max_tokens={args.max_tokens}", "n_trials=100000",
        f"predictor={{model: {predictor}, pool: {args.pool}, k: {args.k}, warmup: {args.warmup}}}",
    ]
    cfg = StudyConfig.load(STUDIES / "smollm2-70.yaml", overrides)
    name = f"eff-{predictor}-s{seed}"
    return dataclasses.replace(cfg, name=name, output=RUNS / name)


def _reach(study_trials: list[Any], threshold: float) -> tuple[int | None, int | None]:
    """(search tokens, real evaluations) until the best fitness is at or below ``threshold``."""
    tokens = 0
    for n, t in enumerate(study_trials, 1):
        tokens += t.tokens
        if t.values and t.values[0] <= threshold:
            return tokens, n
    return None, None


def suite_efficiency(args: argparse.Namespace) -> dict[str, Any]:
    base = _efficiency_config(args, args.seeds[0], "none")
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    ev = Evaluator.build(loaded, base.evaluator, progress=False)
    ramp = get_allocator("ramp", slope=0.3).allocate(ev.profile, base.target)
    ramp_fitness = ev.fitness(ramp)
    ramp_ppl = verify(ev, ramp, base.verify_config()).ppl
    print(f"ramp 0.3: fitness {ramp_fitness:.3f} at {args.fidelity} tokens, verified {ramp_ppl:.3f}",
          flush=True)
    runs: list[dict[str, Any]] = json.loads(args.resume.read_text())["runs"] if args.resume else []
    for predictor in args.predictors:
        for seed in args.seeds:
            if any((r["predictor"], r["seed"]) == (predictor, seed) for r in runs):
                continue  # measured by the run resumed from
            cfg = _efficiency_config(args, seed, predictor)
            t = time.perf_counter()
            run = run_study(cfg, evaluator=ev, progress=args.progress, verify=True)
            trials = sorted((x for x in store.trials(run.study) if x.state.name in ("COMPLETE", "PRUNED")),
                            key=lambda x: x.number)
            best = min((x for x in trials if x.values), key=lambda x: x.values[0])
            tokens, evals = _reach(trials, ramp_fitness)
            screened = [x for x in trials if x.screened is not None]
            runs.append({"predictor": predictor, "seed": seed, "trials": len(trials),
                         "screened_trials": len(screened),
                         "search_tokens": sum(x.tokens for x in trials),
                         "tokens_to_ramp": tokens, "evals_to_ramp": evals,
                         "best_fitness": best.values[0], "best_trial": best.number,
                         "best_wanda_ppl": run.verified[best.number].ppl,
                         "seconds": time.perf_counter() - t})
            print(f"  {predictor:8s} seed {seed}: best {best.values[0]:.3f} (trial {best.number}), verified "
                  f"{runs[-1]['best_wanda_ppl']:.3f}; ramp reached after {tokens} tokens / {evals} evals",
                  flush=True)
            _save(args, _efficiency_payload(args, base, ramp_fitness, ramp_ppl, runs))  # after every run
    ev.close()
    out = _efficiency_payload(args, base, ramp_fitness, ramp_ppl, runs)
    print_table(runs, ["predictor", "seed", "trials", "search_tokens", "tokens_to_ramp", "evals_to_ramp",
                       "best_fitness", "best_wanda_ppl"])
    print_table(out["summary"], ["predictor", "metric", "runs", "reached", "median", "min", "max"])
    return out


def _efficiency_payload(args: argparse.Namespace, base: StudyConfig, ramp_fitness: float, ramp_ppl: float,
                        runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary = []
    for predictor in dict.fromkeys(r["predictor"] for r in runs):
        mine = [r for r in runs if r["predictor"] == predictor]
        for key in ("tokens_to_ramp", "evals_to_ramp", "best_fitness", "best_wanda_ppl"):
            vals = [r[key] for r in mine if r[key] is not None]
            summary.append({"predictor": predictor, "metric": key, "runs": len(mine), "reached": len(vals),
                            "median": statistics.median(vals) if vals else None,
                            "min": min(vals, default=None), "max": max(vals, default=None)})
    return {"suite": "efficiency", "target": base.target, "fidelity": args.fidelity,
            "max_tokens": args.max_tokens, "pool": args.pool, "k": args.k, "warmup": args.warmup,
            "ramp": {"slope": 0.3, "fitness": ramp_fitness, "wanda_ppl": ramp_ppl},
            "verify": dataclasses.asdict(base.verify), "resumed_from": str(args.resume or ""),
            "runs": runs, "summary": summary}


def _save(args: argparse.Namespace, out: dict[str, Any]) -> Path:
    return write_json(f"predictor_{args.suite}_{args.device_name}.json", out | {
        "command": " ".join(sys.argv), "model": args.model, "dtype": args.dtype,
        "environment": environment()},
        protocol={"device": args.device_name, "dtype": args.dtype, "model": args.model, "data": "embedded"})




def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "not reached"
    return f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"


def render_results() -> str:
    """The predictor section of docs/results.md, from the results JSON files only."""
    q_path, archived = result_path("predictor_quality_cpu.json")
    q = json.loads(q_path.read_text())
    note = [f"*{ARCHIVED_NOTE}.*", ""] if archived else []
    lines = [*note, f"**Held-out quality** (`{q['command']}`; {q['records']} plans of SmolLM2-135M from "
             f"{len(q['studies'])} studies at 50-75% with TPE, CMA-ES, random and EvoPress-style "
             f"samplers, `benchmarks/predictor_data.py`; fitness = perplexity on the first "
             f"{q['fidelity_tokens']} search tokens; each study predicted by a predictor trained on "
             f"the other studies; {q['members']} members, seed {q['seed']}):", "",
             "| model | plans | n | Spearman | Kendall | MAE (log) | top-10% recall |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in q["rows"]:
        lines.append(f"| {r['model']} | {r['plans']} | {r['n']} | {_fmt(r['spearman'])} | "
                     f"{_fmt(r['kendall'])} | {_fmt(r['mae_log'])} | {_fmt(r['top10_recall'], 2)} |")
    imp = q["models"]["xgboost"].get("importances", [])[:5]
    lines += ["", "Parity plot: `benchmarks/results/predictor_parity.png`. Largest XGBoost gains: "
              + ", ".join(f"`{n}` {s:.2f}" for n, s in imp) + "."]
    eff_path, _ = result_path("predictor_efficiency_cpu.json")
    if eff_path.is_file():
        e = json.loads(eff_path.read_text())
        samplers = result_path("quality_samplers_cpu.json")[0]
        evo = next(r for r in json.loads(samplers.read_text())["rows"]
                   if r["sampler"] == "evopress" and r["budget"] == "491520 tokens"
                   and r["metric"] == "best_wanda_ppl")
        lines += ["", f"**Sample efficiency at {e['target']:.0%}** (`{e['command']}`): uniform warm start "
                  f"only, fitness = perplexity on {e['fidelity']} search tokens, budget "
                  f"{e['max_tokens']:,} search tokens (a third of the EvoPress-style runs' 491,520), "
                  f"best trial verified with a sequential Wanda prune (calibration "
                  f"{e['verify']['nsamples']} x {e['verify']['seqlen']}, {e['verify']['eval_windows']} "
                  f"x 512 evaluation tokens). Ramp prior (slope 0.3) in the same run: fitness "
                  f"{e['ramp']['fitness']:.2f}, verified {e['ramp']['wanda_ppl']:.2f}. Both arms sample "
                  f"with TPE (10 random start-up trials); `xgboost` adds short-listing after {e['warmup']} "
                  f"trials (pool {e['pool']}, k = {e['k']}), `none` is TPE alone. The predictor's "
                  f"training data are the study's own trials (their tokens are counted).", "",
                  "| predictor | seed | trials | search tokens | tokens to the ramp's fitness | "
                  "evaluations to it | best fitness | verified ppl |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in e["runs"]:
            lines.append(f"| {r['predictor']} | {r['seed']} | {r['trials']} | {r['search_tokens']:,} | "
                         f"{_fmt(r['tokens_to_ramp'])} | {_fmt(r['evals_to_ramp'])} | "
                         f"{r['best_fitness']:.2f} | {r['best_wanda_ppl']:.2f} |")
        lines += ["", "| predictor | metric | runs reaching it | median | min | max |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for s in e["summary"]:
            lines.append(f"| {s['predictor']} | {s['metric']} | {s['reached']} of {s['runs']} | "
                         f"{_fmt(s['median'], 2)} | {_fmt(s['min'], 2)} | {_fmt(s['max'], 2)} |")
        lines += ["", f"For reference, the EvoPress-style sampler at 491,520 tokens "
                  f"(`quality_samplers_cpu.json`, fidelities 2048/8192, same verification): verified "
                  f"median {evo['median']:.2f} [{evo['min']:.2f}, {evo['max']:.2f}] over "
                  f"{evo['runs']} seeds."]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_args(p)
    p.add_argument("--suite", choices=["quality", "efficiency"])
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--predictors", nargs="+", default=["xgboost", "none"])
    p.add_argument("--fidelity", type=int, default=2048)
    p.add_argument("--max-tokens", type=int, default=163840, help="a third of EvoPress's 491,520")
    p.add_argument("--pool", type=int, default=1000)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--warmup", type=int, default=16)
    p.add_argument("--progress", action="store_true")
    p.add_argument("--resume", type=Path, default=None,
                   help="efficiency: keep the runs of this earlier results (or .partial) JSON and "
                        "run only the missing (predictor, seed) pairs")
    args = p.parse_args()
    if args.suite is None:
        p.error("--suite is required")
    import torch

    args.device_name = "cuda" if args.device == "auto" and torch.cuda.is_available() else \
        ("cpu" if args.device == "auto" else args.device)
    out = suite_quality(args) if args.suite == "quality" else suite_efficiency(args)
    print(f"wrote {_save(args, out)}")


if __name__ == "__main__":
    main()
