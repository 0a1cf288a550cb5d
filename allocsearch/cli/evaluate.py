"""``allocsearch evaluate plan.json``: cached-mask fitness at each fidelity, and optionally
the exact verification (sequential prune + evaluation perplexity)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from allocsearch.cli.common import (
    add_data_args,
    add_model_args,
    add_task_args,
    load,
    registered,
    task_config,
)
from allocsearch.evaluate.reference import canonical_reference
from allocsearch.io import atomic_write_text


def _fidelities(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(float(x)) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated token counts, got {text!r}") from exc


def _reference(text: str) -> str:
    try:
        return canonical_reference(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def register(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="score a plan with cached masks (and verify it exactly)")
    p.add_argument("plan", type=Path, nargs="+", help="plan JSON file(s), all for the same model")
    add_model_args(p, default=None)
    add_data_args(p, nsamples=64)
    p.add_argument("--fitness", default="ppl", help="ppl (default) or kl (to the dense model)")
    p.add_argument("--masks", default="ranks", choices=["ranks", "database"],
                   help="how plans are written: cached ranks of --pruner (default), or a level "
                        "database of --pruner's weights (built once, cached)")
    p.add_argument("--pruner", default="wanda", choices=registered("pruners"),
                   help="whose weights the fitness sees: wanda (default) or magnitude with ranks; "
                        "sparsegpt, wanda or magnitude with --masks database")
    p.add_argument("--reference", default=None, type=_reference,
                   help="with --masks database: calibrate the database on a sequential prune at "
                        "this allocator's plan at each plan's target, with parameters if any "
                        f"(\"ramp slope=0.1\"; one of {', '.join(registered('allocators'))}; "
                        "default uniform; none: one-shot, on the dense model's activations)")
    p.add_argument("--levels", default=None,
                   help="the database's level grid, start:stop:step or a comma list "
                        "(default dense + 0.3:0.95:0.05)")
    p.add_argument("--fidelity", type=_fidelities, default=(2048, 8192, 20480),
                   help="search-part token prefixes to report, comma-separated "
                        "(default 2048,8192,20480; the last is the full fidelity)")
    p.add_argument("--verify", default=None, metavar="PRUNER", choices=registered("pruners"),
                   help="also prune sequentially with this pruner (%(choices)s) and report "
                        "evaluation-split perplexity")
    p.add_argument("--verify-inputs", default="pruned", choices=["pruned", "dense"],
                   help="--verify prunes sequentially (pruned, default) or one-shot (dense)")
    p.add_argument("--verify-nsamples", type=int, default=None,
                   help="evaluation windows for --verify (default all)")
    p.add_argument("--verify-seeds", type=int, nargs="+", default=None, metavar="SEED",
                   help="--verify once per calibration seed and report the mean and spread "
                        "(default: --seed alone)")
    p.add_argument("--batch-size", type=int, default=1, help="windows per forward")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    add_task_args(p)  # on the verified model with --verify, else on the cached-mask model
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from allocsearch.data import DataConfig
    from allocsearch.database import DEFAULT_LEVELS, LevelGrid
    from allocsearch.evaluate import Evaluator, EvaluatorConfig, VerifyConfig, plan_accuracy, verify
    from allocsearch.plan import Plan
    from allocsearch.pruners import get_pruner

    if args.verify is not None:
        get_pruner(args.verify)
    data = DataConfig(args.data, args.nsamples, args.seqlen, args.seed)
    levels = LevelGrid.parse(args.levels).levels if args.levels else DEFAULT_LEVELS
    config = EvaluatorConfig(
        fitness=args.fitness, masks=args.masks, pruner=args.pruner, levels=levels,
        source=args.data, seqlen=args.seqlen, fidelities=args.fidelity,
        batch_size=args.batch_size, profile=data, reference=args.reference,
    )
    tasks = task_config(args)
    verify_config = VerifyConfig(args.verify or "wanda", data, seqlen=args.seqlen,
                                 nsamples=args.verify_nsamples, batch_size=args.batch_size,
                                 inputs=args.verify_inputs, tasks=tasks,
                                 calibration_seeds=tuple(args.verify_seeds or ()),
                                 threads=args.threads, source=args.data)
    plans = [Plan.load(p) for p in args.plan]  # validated before any model is loaded
    loaded = load(args, args.model or plans[0].model.name)
    results: list[dict[str, Any]] = []
    with Evaluator.build(loaded, config, progress=not args.quiet) as ev:
        if ev.profile.from_cache:
            print(f"profile reused from cache ({ev.profile.key})")
        for path, given in zip(args.plan, plans, strict=True):
            reference = ev.use_reference(given.target)  # built once per target, then cached
            if reference is not None:
                print(f"{path}: database calibrated on a sequential prune at the "
                      f"{config.reference} plan at {given.target:.4f}")
            plan = ev.prepare(given)
            if plan is not given:
                print(f"{path}: snapped to the database's level grid "
                      f"(budget {plan.budget():.6f}, target {plan.target:.6f})")
            steps = list(ev.iter_fitness(plan))
            line = ", ".join(f"{s.tokens} tok: {s.value:.4f}" for s in steps)
            print(f"{path}: target {plan.target:.4f}, {args.fitness} on search part: {line}")
            row: dict[str, Any] = {
                "plan": str(path), "target": plan.target, "fitness": args.fitness,
                "steps": [vars(s) for s in steps],
            }
            if args.verify is not None:
                v = verify(ev, plan, verify_config)
                spread = (f" (mean of {len(v.draws)} calibration draws, spread {v.ppl_spread:.3f})"
                          if len(v.draws) > 1 else "")
                print(f"  verified with {v.pruner} ({v.inputs} inputs, {v.threads} threads): evaluation "
                      f"perplexity {v.ppl:.3f}{spread} on {v.tokens} tokens, sparsity "
                      f"{v.achieved_sparsity:.4f}")
                for score in v.tasks.values():
                    print(f"  verified {score.describe()}")
                row["verification"] = v.to_dict()
            elif tasks is not None:
                scores = plan_accuracy(ev, plan, tasks)
                for score in scores.values():
                    print(f"  cached masks: {score.describe()}")
                row["tasks"] = {name: score.to_dict() for name, score in scores.items()}
            results.append(row)
    if args.json is not None:
        payload = {"model": loaded.name, "config": config.to_dict(), "results": results}
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
    return 0
