"""``allocsearch prune`` (uniform or from a plan) and ``allocsearch eval``."""

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


def register(sub: Any) -> None:
    p = sub.add_parser("prune", help="prune a model (uniformly or by a plan) and save it")
    add_model_args(p, default=None)
    add_data_args(p, nsamples=64)
    p.add_argument("--method", default="wanda", choices=registered("pruners"),
                   help="the pruner (default wanda): %(choices)s")
    p.add_argument("--sparsity", type=float, default=None,
                   help="fraction of weights removed per layer (default 0.5, or the N:M ratio)")
    p.add_argument("--pattern", default="unstructured", help="unstructured (default) or N:M, e.g. 2:4")
    p.add_argument("--plan", type=Path, default=None,
                   help="a plan JSON: per-module sparsities instead of --sparsity/--pattern; "
                        "the model defaults to the plan's")
    p.add_argument("--batch-size", type=int, default=1, help="calibration windows per forward")
    p.add_argument("--inputs", default="pruned", choices=["pruned", "dense"],
                   help="calibrate each block on the pruned model's outputs (sequential, default) "
                   "or on the dense model's (one-shot, like the search's cached masks)")
    p.add_argument("--out", type=Path, required=True,
                   help="directory for the pruned model (a plan with structured actions saves a "
                        "physically smaller model)")
    p.add_argument("--eval", action="store_true", help="also report evaluation perplexity")
    p.set_defaults(func=cmd_prune)

    e = sub.add_parser("eval", help="perplexity and sparsity of a model")
    add_model_args(e)
    add_data_args(e, nsamples=None)
    e.add_argument("--part", default="evaluation", choices=["calibration", "search", "evaluation"],
                   help="which part of the data (default evaluation)")
    e.add_argument("--batch-size", type=int, default=1, help="windows per forward")
    e.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    e.add_argument("--latency", action="store_true",
                   help="also measure prefill and decode tokens per second (batch 1)")
    e.add_argument("--decode-tokens", type=int, default=64, help="tokens generated per decode timing")
    e.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median)")
    add_task_args(e)
    e.set_defaults(func=cmd_eval)


def _check_out(out: Path) -> None:
    """The saved model replaces ``out`` whole: only an empty folder or an earlier output."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / "allocsearch_prune.json").is_file())):
        raise ValueError(f"--out {out} exists and is not an earlier allocsearch output; the pruned "
                         f"model replaces the whole folder, so name a new one")


def cmd_prune(args: argparse.Namespace) -> int:
    from allocsearch.data import DataConfig
    from allocsearch.io import atomic_directory
    from allocsearch.models import save_model
    from allocsearch.pipeline import (
        PruneConfig,
        evaluate_perplexity,
        prune_uniform,
        prune_with_plan,
        write_prune_record,
    )
    from allocsearch.plan import Plan
    from allocsearch.pruners import Pattern, get_pruner
    from allocsearch.structure import save_structured

    _check_out(args.out)
    structured = False
    calibration = DataConfig(args.data, args.nsamples, args.seqlen, args.seed)
    if args.plan is not None:
        if args.sparsity is not None or args.pattern != "unstructured":
            raise ValueError("--plan sets every module's sparsity; drop --sparsity/--pattern")
        plan = Plan.load(args.plan)  # validated before any model is loaded
        get_pruner(args.method)
        loaded = load(args, args.model or plan.model.name)
        report = prune_with_plan(loaded, plan, args.method, calibration,
                                 batch_size=args.batch_size, progress=not args.quiet,
                                 inputs=args.inputs)
        config = PruneConfig(args.method, plan.target, calibration=calibration,
                             batch_size=args.batch_size, inputs=args.inputs)
        what = f"plan {args.plan} (target {plan.target:.4f})"
        structured = bool(plan.structured())
    else:
        pattern = Pattern.parse(args.pattern)
        sparsity = args.sparsity if (args.sparsity is not None or pattern.is_nm) else 0.5
        config = PruneConfig(args.method, sparsity, pattern, calibration, args.batch_size,
                             args.inputs)
        loaded = load(args, args.model or "smollm2-135m")
        report = prune_uniform(loaded, config, progress=not args.quiet)
        what = f"{config.pattern} {config.sparsity:.4f}"
    with atomic_directory(args.out) as tmp:  # an interrupted save leaves no half a model
        if structured:
            plain = save_structured(loaded, tmp)
            kind = ("an ordinary transformers checkpoint" if plain else
                    "safetensors + allocsearch_structure.json (load with allocsearch)")
            params = sum(p.numel() for p in loaded.model.parameters())
            print(f"structured: {loaded.adapter.num_blocks} blocks, {params:,} parameters; saved as {kind}")
        else:
            save_model(loaded, tmp)
        write_prune_record(tmp, loaded, config, report, plan=args.plan)
    print(
        f"pruned {loaded.name} with {args.method}, {what}: {report.overall:.4f} sparsity over "
        f"{len(report.sparsity)} layers in {report.seconds:.1f}s; saved to {args.out}"
    )
    if args.eval:
        res = evaluate_perplexity(loaded, args.data, seqlen=args.seqlen, progress=not args.quiet)
        print(f"evaluation perplexity {res.ppl:.3f} on {res.tokens} tokens ({args.data})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from allocsearch.evaluate import LatencyConfig, measure_latency
    from allocsearch.io import atomic_write_text
    from allocsearch.pipeline import evaluate_perplexity, overall_sparsity

    tasks = task_config(args)
    # Every argument is checked before the model loads: a bad count costs seconds.
    latency = LatencyConfig(prefill=args.seqlen, decode=args.decode_tokens, repeats=args.repeats)
    if args.nsamples is not None and args.nsamples < 1:
        raise ValueError(f"--nsamples must be at least 1, got {args.nsamples}")
    loaded = load(args)
    res = evaluate_perplexity(
        loaded, args.data, part=args.part, seqlen=args.seqlen, nsamples=args.nsamples,
        batch_size=args.batch_size, progress=not args.quiet,
    )
    sparsity = overall_sparsity(loaded)
    params = sum(p.numel() for p in loaded.model.parameters())
    print(
        f"{loaded.name}: perplexity {res.ppl:.3f} on {res.tokens} tokens "
        f"({res.windows} x {res.seqlen}, {args.data} {args.part}); sparsity {sparsity:.4f}; "
        f"{loaded.adapter.num_blocks} blocks, {params:,} parameters"
    )
    payload = {"model": loaded.name, "data": args.data, "part": args.part,
               "sparsity": sparsity, "parameters": params, **res.to_dict()}
    if args.latency:
        lat = measure_latency(loaded.model, latency)
        print(f"latency on {lat.device}: prefill {lat.prefill_tok_s:,.0f} tokens/s "
              f"({args.seqlen}-token window), decode {lat.decode_tok_s:,.1f} tokens/s (batch 1)")
        payload["latency"] = lat.to_dict()
    if tasks is not None:
        from allocsearch.evaluate.tasks import task_accuracy

        scores = task_accuracy(loaded, tasks, progress=not args.quiet)
        for score in scores.values():
            print(score.describe())
        payload["tasks"] = {name: score.to_dict() for name, score in scores.items()}
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
    return 0
