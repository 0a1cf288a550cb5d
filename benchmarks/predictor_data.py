"""Training data for the accuracy predictor: several studies on SmolLM2-135M, at several
targets and with several samplers, every trial measured at one fidelity (no pruner, so each
trial's fitness is on the same tokens).

    python benchmarks/predictor_data.py                      # ~35 min on 2 CPU cores
    python benchmarks/predictor_data.py --studies 70-tpe 70-random --n-trials 20

Each study is an ordinary study folder under benchmarks/results/predictor_runs/ (git-ignored;
``allocsearch study records`` and ``allocsearch predictor train --study`` read them). Writes
benchmarks/results/predictor_data_<device>.json (per study its config, trials and search
tokens) and benchmarks/results/predictor_records_<device>.jsonl: the records of every study
folder there, the file the predictor benchmarks read on a machine without the folders.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PREDICTOR_RECORDS,
    PREDICTOR_RUNS,
    RESULTS,
    STUDIES,
    add_model_args,
    command_line,
    environment,
    predictor_study_folders,
    print_table,
    write_json,
)

from allocsearch.evaluate import Evaluator
from allocsearch.models import load_model
from allocsearch.predictor.records import write_records
from allocsearch.search import StudyConfig, run_study, tokens_read
from allocsearch.search.records import folder_records

RUNS = PREDICTOR_RUNS
#: (target %, sampler): four targets, four samplers, more at 70% for the per-target figures.
DEFAULT_STUDIES = ("70-tpe", "70-evopress", "70-random", "60-cmaes", "60-evopress", "50-tpe",
                   "50-random", "75-cmaes", "75-tpe")
#: Few priors, so the samplers make most of the plans.
WARM = "[{method: uniform}, {method: ramp, grid: {slope: [0.1, 0.3]}}, {method: alpha, params: {eps: 0.1}}]"


def study_config(key: str, args: argparse.Namespace) -> StudyConfig:
    pct, sampler = key.split("-")
    overrides = [
        f"target={int(pct) / 100}", f"sampler.name={sampler}", "sampler.params={}",
        "pruner.name=none", "pruner.params={}", f"evaluator.fidelities=[{args.fidelity}]",
        f"n_trials={args.n_trials}", f"seed={args.seed}", f"device={args.device}",
        f"dtype={args.dtype}", f"warm_start={WARM}",
    ]
    if sampler == "tpe":
        overrides.append("sampler.params={n_startup_trials: 15}")
    cfg = StudyConfig.load(STUDIES / "smollm2-70.yaml", overrides)
    return dataclasses.replace(cfg, name=f"pred-{key}-s{args.seed}", output=RUNS / f"{key}-s{args.seed}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_args(p)
    p.add_argument("--studies", nargs="+", default=list(DEFAULT_STUDIES),
                   help="<target pct>-<sampler> keys")
    p.add_argument("--n-trials", type=int, default=40)
    p.add_argument("--fidelity", type=int, default=2048, help="search tokens per trial")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true")
    p.add_argument("--records-only", action="store_true",
                   help="only write the records file from the study folders already here")
    args = p.parse_args()
    if args.records_only:
        device = "cuda" if args.device == "cuda" else "cpu"
        return write_records_file(device)
    configs = [study_config(k, args) for k in args.studies]
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    ev = Evaluator.build(loaded, configs[0].evaluator, progress=False)
    rows: list[dict[str, Any]] = []
    for key, cfg in zip(args.studies, configs, strict=True):
        t = time.perf_counter()
        run = run_study(cfg, evaluator=ev, progress=args.progress, verify=False)
        done = [tr for tr in run.study.trials if tr.values]
        rows.append({"study": key, "folder": str(cfg.output.relative_to(RESULTS)), "target": cfg.target,
                     "sampler": cfg.sampler, "trials": len(done), "search_tokens": tokens_read(run.study),
                     "best_fitness": min(tr.values[0] for tr in done), "seconds": time.perf_counter() - t})
        print(f"  {key}: {len(done)} trials, best {rows[-1]['best_fitness']:.2f}", flush=True)
    ev.close()
    print_table(rows, ["study", "target", "sampler", "trials", "search_tokens", "best_fitness", "seconds"])
    out = write_json(f"predictor_data_{loaded.device.type}.json", {
        "command": command_line(), "model": args.model, "dtype": args.dtype,
        "fidelity": args.fidelity, "seed": args.seed, "warm_start": WARM,
        "environment": environment(), "rows": rows,
    }, protocol={"device": str(loaded.device), "dtype": args.dtype, "model": args.model,
                 "data": "embedded", "evaluation": f"fitness at {args.fidelity} search tokens",
                 "seeds": [args.seed]})
    print(f"wrote {out}")
    write_records_file(loaded.device.type)


def write_records_file(device: str) -> None:
    records = folder_records(predictor_study_folders())
    path = write_records(records, RESULTS / PREDICTOR_RECORDS.format(device=device))
    print(f"wrote {path} ({len(records)} records)")


if __name__ == "__main__":
    main()
