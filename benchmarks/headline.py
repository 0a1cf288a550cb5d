"""The README headline from the shipped study configs: each config run with seeds 0/1/2, its
best searched plan against the lowest verified prior, paired across calibration draws, on the
evaluation split and on text of another domain.

    python benchmarks/headline.py                      # resumable; hours on 2 CPU cores
    python benchmarks/headline.py --configs smollm2-70 --seeds 0

Per config and seed: ``allocsearch search <config> --seed S`` (the same library call), then
the study report's verdict (:class:`allocsearch.search.report.Verdict`: searched trial vs. the
prior with the lowest verified mean, draw by draw), and both plans verified again, with the
same settings, on another domain's evaluation part (Debian's licences, or ``--other``).
Writes benchmarks/results/headline_<device>.json; ``report.py`` renders it in the README.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, RUNS, other_domain_file, print_table, write_json

from allocsearch.evaluate import verify_plan
from allocsearch.io import atomic_write_text
from allocsearch.models import load_model
from allocsearch.models.loading import resolve_device
from allocsearch.search import StudyConfig, run_study, store
from allocsearch.search.report import build_report

CONFIGS = ["smollm2-70", "smollm2-60", "smollm2-70-sparsegpt", "smollm2-60-sparsegpt"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=CONFIGS, help="shipped study names or YAML paths")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides (tests)")
    p.add_argument("--other", default=None, help="the other domain's source (default: Debian's licences)")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--progress", action="store_true")
    args = p.parse_args()

    runs = args.results / "runs" if args.results != RESULTS else RUNS
    partial = runs / "headline.partial.json"
    done: dict[str, Any] = json.loads(partial.read_text()) if partial.exists() else {}
    other = args.other or other_domain_file(runs)
    loaded = None
    for name in args.configs:
        for seed in args.seeds:
            key = f"{name}|{seed}"
            if key in done:
                continue
            cfg = StudyConfig.load(name, [*args.set, f"seed={seed}"])
            cfg = dataclasses.replace(cfg, output=runs / "headline" / f"{cfg.name}_s{seed}")
            if loaded is None:
                loaded = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype)
            done[key] = one_run(cfg, loaded, other, args.progress) | {"config": name, "seed": seed}
            atomic_write_text(partial, json.dumps(done, indent=1))
            r = done[key]
            print(f"{name} seed {seed}: {r.get('ratio', float('nan')):.3f}x {r.get('prior', '-')}, "
                  f"{r.get('verdict', 'no verdict')}", flush=True)
    rows = summarise(done)
    print_table(rows, ["config", "pruner", "target", "seeds", "ratio_median", "ratio_other_median",
                       "better_seeds", "verdict"])
    device = loaded.device.type if loaded is not None else resolve_device("auto").type
    out = write_json(f"headline_{device}.json", {"rows": rows, "runs": done},
                     {"device": device, "seeds": args.seeds,
                      "evaluation": {"part": "evaluation", "other_domain": other}}, folder=args.results)
    print(f"wrote {out}")


def one_run(cfg: StudyConfig, loaded: Any, other: str, progress: bool) -> dict[str, Any]:
    """One study: its report's verdict, and both plans on the other domain."""
    run = run_study(cfg, loaded=loaded, progress=progress)
    report = build_report(run.study, cfg.output, plots=False)
    verdicts = [v for v in report.verdicts if v.pruner == cfg.verify.pruner and not v.source]
    row: dict[str, Any] = {"name": cfg.name, "pruner": cfg.verify.pruner, "target": cfg.target,
                           "trials": len(run.study.trials)}
    if not verdicts:
        return row | {"verdict": "no verified prior and searched plan"}
    v = verdicts[0]
    vc = cfg.verify_config()
    other_config = dataclasses.replace(vc, source=other, nsamples=None, tasks=None)
    other_runs = {}
    for label, number in (("searched", v.searched), ("prior", v.prior)):
        plan = store.trial_plan(run.study, next(t for t in store.ranked(run.study) if t.number == number))
        other_runs[label] = verify_plan(loaded, plan, other_config, progress=False)
    ppl_other = {label: result.ppl for label, result in other_runs.items()}
    searched_draws, prior_draws = other_runs["searched"].by_seed, other_runs["prior"].by_seed
    lower_other = sum(searched_draws[s] < prior_draws[s] for s in searched_draws)
    return row | {"searched_trial": v.searched, "prior_trial": v.prior, "prior": v.prior_label,
                  "ppl": v.ppl, "prior_ppl": v.prior_ppl, "ratio": v.ratio, "lower_on": v.lower_on,
                  "draws": v.draws, "verdict": v.label,
                  "ppl_other": ppl_other["searched"], "prior_ppl_other": ppl_other["prior"],
                  "ratio_other": ppl_other["searched"] / ppl_other["prior"], "lower_on_other": lower_other}


def summarise(done: dict[str, Any]) -> list[dict[str, Any]]:
    """Per config: the median ratio over seeds on each domain, and how many seeds were better
    than the best prior on every calibration draw."""
    rows = []
    for name in dict.fromkeys(r["config"] for r in done.values()):
        runs = [r for r in done.values() if r["config"] == name and "ratio" in r]
        if not runs:
            continue
        better = sum(r["verdict"] == "better" for r in runs)
        rows.append({"config": name, "pruner": runs[0]["pruner"], "target": runs[0]["target"],
                     "seeds": len(runs), "ratio_median": statistics.median(r["ratio"] for r in runs),
                     "ratio_min": min(r["ratio"] for r in runs), "ratio_max": max(r["ratio"] for r in runs),
                     "ratio_other_median": statistics.median(r["ratio_other"] for r in runs),
                     "better_seeds": better,
                     "verdict": "better on every seed and draw" if better == len(runs) else "within noise"})
    return rows


if __name__ == "__main__":
    main()
