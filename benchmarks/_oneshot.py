"""The ``oneshot`` suite of benchmarks/quality.py: the priors and the searched plans under
one-shot pruning (every block calibrated on the dense model, ``inputs=dense``).

One-shot Wanda masks are the Evaluator's cached masks for a dense profile of the same
calibration windows (tests/evaluate/test_anchor.py checks equality with
``prune_with_plan(..., inputs="dense")``), so this suite prunes nothing: it builds one
Evaluator whose profile is the verification's calibration (--nsamples x --seqlen, --seed),
chooses each prior family's parameters again on the search split under this protocol (the
sequential choice need not carry over), and measures the chosen priors and the searched
plans on the evaluation split. The searched plan that the ratio uses is the search
pipeline's last stage, chosen by fitness: ``search_best_<pct>_cpu_refined.json`` where it
exists, else ``search_best_<pct>.json``; every other saved plan is listed for information.
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import RESULTS, environment, prior_candidates, prior_label

from allocsearch.data import DataConfig
from allocsearch.evaluate import Evaluator, EvaluatorConfig
from allocsearch.models import load_model
from allocsearch.pipeline import evaluate_perplexity
from allocsearch.plan import Plan


def suite_oneshot(args: argparse.Namespace) -> dict[str, Any]:
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    cal = DataConfig(args.data, args.nsamples, args.seqlen, args.seed)
    config = EvaluatorConfig(source=args.data, fidelities=(args.search_windows * 512,),
                             batch_size=8, profile=cal)
    ev = Evaluator.build(loaded, config, progress=False)

    def evaluation(plan: Plan) -> float:
        ev.apply(plan)
        return evaluate_perplexity(loaded, args.data, part="evaluation", seqlen=512,
                                   nsamples=args.eval_windows, progress=False).ppl

    rows: list[dict[str, Any]] = []
    for target in args.targets:
        pct = round(target * 100)
        found: dict[str, list[tuple[float, str, Plan]]] = {}
        for family, method, params in prior_candidates():
            label = prior_label(method, params)
            plan = Plan.load(RESULTS / "priors_plans" / f"{pct}_{label.replace(' ', '_')}.json")
            found.setdefault(family, []).append((ev.fitness(plan), label, plan))
        chosen = {"owl default (M=5, lam=0.08)": next(c for c in found["owl"]
                                                      if c[1] == "owl M=5.0 lam=0.08")}
        for family, cands in found.items():
            name = f"{family} (best on search)" if len(cands) > 1 else family
            chosen[name] = min(cands, key=lambda c: c[0])
        at: list[dict[str, Any]] = []
        for name, (search, label, plan) in chosen.items():
            at.append({"target": target, "plan": name, "params": label, "search_ppl": search,
                       "eval_ppl": evaluation(plan), "kind": "prior"})
            print(f"  {pct}% {name:30s} {label:22s} search {search:9.3f} eval {at[-1]['eval_ppl']:9.3f}",
                  flush=True)
        best_prior = min(at, key=lambda r: r["search_ppl"])
        best_prior["best_prior"] = True
        refined = RESULTS / f"search_best_{pct}_cpu_refined.json"
        designated = refined if refined.exists() else RESULTS / f"search_best_{pct}.json"
        for path in sorted(RESULTS.glob(f"search_best_{pct}*.json")):
            plan = Plan.load(path)
            row = {"target": target, "plan": path.name, "params": "", "kind": "searched",
                   "search_ppl": ev.fitness(plan), "eval_ppl": evaluation(plan)}
            if path == designated:
                row["searched_result"] = True
                row["ratio"] = row["eval_ppl"] / best_prior["eval_ppl"]
            at.append(row)
            print(f"  {pct}% {path.name:53s} search {row['search_ppl']:9.3f} eval "
                  f"{row['eval_ppl']:9.3f}" + (f" = {row['ratio']:.3f}x" if "ratio" in row else ""),
                  flush=True)
        rows += at
    ev.close()
    return {"suite": "oneshot", "model": args.model, "device": loaded.device.type,
            "dtype": args.dtype, "pruner": "wanda, one-shot (inputs=dense)",
            "calibration": vars(cal), "search_tokens": args.search_windows * 512,
            "evaluation_windows": args.eval_windows, "environment": environment(), "rows": rows}
