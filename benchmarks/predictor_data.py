"""Training data for the accuracy predictor: several studies on SmolLM2-135M, at several
targets and with several samplers, each at several seeds, every trial measured at one
fidelity (no pruner, so each trial's fitness is on the same tokens).

    python benchmarks/predictor_data.py                      # 27 studies, ~2 h on one CPU core
    python benchmarks/predictor_data.py --shard 0/2 &        # or ~1 h split between two processes,
    python benchmarks/predictor_data.py --shard 1/2          # then one run without --shard
    python benchmarks/predictor_data.py --studies 70-tpe 70-random --seeds 0 --n-trials 20

Each study (a key at a seed) is an ordinary study folder under
benchmarks/results/predictor_runs/<key>-s<seed>/ (git-ignored; ``allocsearch study records``
and ``allocsearch predictor train --study`` read them). A run resumes the folders already
there: a finished study is not run again, and one an interrupted run left half-run starts
again from its first trial (as a straight run would draw its trials). A run with ``--shard
I/N`` runs every N-th (study, seed) from the I-th and writes nothing else; a run without it
runs what is missing (once the shards have finished), then writes
benchmarks/results/predictor_data_<device>.json (per study its config, trials, search tokens
and the seconds its trials took) and
benchmarks/results/predictor_records_<device>.jsonl: the records of every study folder there,
the file the predictor benchmarks read on a machine without the folders.

    python benchmarks/predictor_data.py --fresh              # the same kinds at seeds 3-5 (~2 h)

``--fresh`` runs the same study kinds at seeds no predictor is trained on (3, 4, 5 unless
``--seeds`` says others, none of 0-2) into benchmarks/results/predictor_fresh_runs/, and writes
predictor_data_fresh_<device>.json and predictor_records_fresh_<device>.jsonl:
benchmarks/predictor_fresh.py ranks their plans with the predictor trained on the records above.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    FRESH_RECORDS,
    FRESH_RUNS,
    PREDICTOR_RECORDS,
    PREDICTOR_RUNS,
    RESULTS,
    STUDIES,
    add_model_args,
    command_line,
    environment,
    predictor_study_folders,
    print_table,
    restart_unfinished,
    write_json,
)
from _shards import shard_of

from allocsearch.evaluate import Evaluator
from allocsearch.models import load_model
from allocsearch.predictor.records import write_records
from allocsearch.search import StudyConfig, run_study, tokens_read
from allocsearch.search.records import folder_records
from allocsearch.search.storage import load_study

#: (target %, sampler): four targets, four samplers, more at 70% for the per-target figures.
DEFAULT_STUDIES = ("70-tpe", "70-evopress", "70-random", "60-cmaes", "60-evopress", "50-tpe",
                   "50-random", "75-cmaes", "75-tpe")
#: Three seeds of each: leave-one-study-out has 21 held-out studies at 60-75% to be judged on.
DEFAULT_SEEDS = (0, 1, 2)
#: ``--fresh``: seeds of studies no predictor result trains on.
FRESH_SEEDS = (3, 4, 5)
#: Few priors, so the samplers make most of the plans.
WARM = "[{method: uniform}, {method: ramp, grid: {slope: [0.1, 0.3]}}, {method: alpha, params: {eps: 0.1}}]"


def runs_of(fresh: bool) -> Path:
    """Where the studies' folders are: the fresh studies' own folder with ``--fresh``."""
    return FRESH_RUNS if fresh else PREDICTOR_RUNS


def study_config(key: str, seed: int, args: argparse.Namespace) -> StudyConfig:
    pct, sampler = key.split("-")
    overrides = [
        f"target={int(pct) / 100}", f"sampler.name={sampler}", "sampler.params={}",
        "pruner.name=none", "pruner.params={}", f"evaluator.fidelities=[{args.fidelity}]",
        f"n_trials={args.n_trials}", f"seed={seed}", f"device={args.device}",
        f"dtype={args.dtype}", f"warm_start={WARM}",
    ]
    if sampler == "tpe":
        overrides.append("sampler.params={n_startup_trials: 15}")
    cfg = StudyConfig.load(STUDIES / "smollm2-70.yaml", overrides)
    return dataclasses.replace(cfg, name=f"pred-{key}-s{seed}", output=runs_of(args.fresh) / f"{key}-s{seed}")


def study_row(key: str, cfg: StudyConfig) -> dict[str, Any]:
    """One finished study's row, read from its folder (so a resumed or sharded run reports
    every study alike): trials, search tokens, best fitness and the seconds its trials took."""
    study = load_study(cfg.output)
    done = [tr for tr in study.trials if tr.values]
    seconds = sum((tr.datetime_complete - tr.datetime_start).total_seconds() for tr in done
                  if tr.datetime_complete is not None and tr.datetime_start is not None)
    return {"study": key, "seed": cfg.seed, "folder": str(cfg.output.relative_to(RESULTS)),
            "target": cfg.target, "sampler": cfg.sampler, "trials": len(done),
            "search_tokens": tokens_read(study), "best_fitness": min(tr.values[0] for tr in done),
            "seconds": seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_args(p)
    p.add_argument("--studies", nargs="+", default=list(DEFAULT_STUDIES),
                   help="<target pct>-<sampler> keys")
    p.add_argument("--n-trials", type=int, default=40)
    p.add_argument("--fidelity", type=int, default=2048, help="search tokens per trial")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="each study key is run at each of these seeds (0 1 2; with --fresh, 3 4 5)")
    p.add_argument("--shard", type=shard_of, default=None, metavar="I/N",
                   help="run every N-th (study, seed) from the I-th only, and write no result")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--records-only", action="store_true",
                   help="only write the records file from the study folders already here")
    p.add_argument("--fresh", action="store_true",
                   help="studies for benchmarks/predictor_fresh.py: seeds no predictor trains on")
    args = p.parse_args()
    if args.seeds is None:
        args.seeds = list(FRESH_SEEDS if args.fresh else DEFAULT_SEEDS)
    if args.fresh and set(args.seeds) & set(DEFAULT_SEEDS):
        p.error(f"--fresh studies must not share a seed with the training records' {list(DEFAULT_SEEDS)}")
    if args.records_only:
        device = "cuda" if args.device == "cuda" else "cpu"
        return write_records_file(device, args.fresh)
    keys = [(k, seed) for seed in args.seeds for k in args.studies]
    configs = [study_config(k, seed, args) for k, seed in keys]
    mine = list(range(len(keys)))[args.shard[0]::args.shard[1]] if args.shard else range(len(keys))
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    ev = Evaluator.build(loaded, configs[0].evaluator, progress=False)
    for i in mine:
        restart_unfinished(configs[i])  # a half-run study's sampler would draw again from its seed
        run = run_study(configs[i], evaluator=ev, progress=args.progress, verify=False)
        done = [tr for tr in run.study.trials if tr.values]
        print(f"  {keys[i][0]} seed {keys[i][1]}: {len(done)} trials, "
              f"best {min(tr.values[0] for tr in done):.2f}", flush=True)
    ev.close()
    if args.shard:
        return
    rows = [study_row(k, cfg) for (k, _), cfg in zip(keys, configs, strict=True)]
    print_table(rows, ["study", "seed", "target", "sampler", "trials", "search_tokens", "best_fitness",
                       "seconds"])
    fresh = "_fresh" if args.fresh else ""
    out = write_json(f"predictor_data{fresh}_{loaded.device.type}.json", {
        "command": command_line(), "model": args.model, "dtype": args.dtype,
        "fidelity": args.fidelity, "seeds": args.seeds, "warm_start": WARM,
        "environment": environment(), "rows": rows,
    }, protocol={"device": str(loaded.device), "dtype": args.dtype, "model": args.model,
                 "data": "embedded", "evaluation": f"fitness at {args.fidelity} search tokens",
                 "seeds": args.seeds})
    print(f"wrote {out}")
    write_records_file(loaded.device.type, args.fresh)


def write_records_file(device: str, fresh: bool = False) -> None:
    records = folder_records(predictor_study_folders(runs_of(fresh)))
    name = FRESH_RECORDS if fresh else PREDICTOR_RECORDS
    path = write_records(records, RESULTS / name.format(device=device))
    print(f"wrote {path} ({len(records)} records)")


if __name__ == "__main__":
    main()
