"""Command line: parse arguments once into typed configs, then call the library.

    allocsearch prune --model smollm2-135m --method wanda --sparsity 0.5 --out pruned/
    allocsearch eval  --model pruned/ --data embedded
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from allocsearch import __version__


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="smollm2-135m",
        help="hub id, model directory, .gguf file, or the alias smollm2-135m (default)",
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument(
        "--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
        help="weights and activations dtype (default float32)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or info logs")


def _add_data_args(p: argparse.ArgumentParser, nsamples: int | None) -> None:
    p.add_argument(
        "--data", default="embedded",
        help="embedded (default, offline), wikitext2, c4, or a path to a text file",
    )
    p.add_argument(
        "--nsamples", type=int, default=nsamples,
        help=f"number of windows (default {nsamples if nsamples else 'all'})",
    )
    p.add_argument("--seqlen", type=int, default=512, help="tokens per window (default 512)")
    p.add_argument("--seed", type=int, default=0, help="seed for the calibration windows")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="allocsearch", description="Per-layer sparsity allocation search for LLM pruning."
    )
    parser.add_argument("--version", action="version", version=f"allocsearch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prune", help="prune a model uniformly and save it")
    _add_model_args(p)
    _add_data_args(p, nsamples=64)
    p.add_argument("--method", default="wanda", help="magnitude, wanda (default) or sparsegpt")
    p.add_argument("--sparsity", type=float, default=None,
                   help="fraction of weights removed per layer (default 0.5, or the N:M ratio)")
    p.add_argument("--pattern", default="unstructured", help="unstructured (default) or N:M, e.g. 2:4")
    p.add_argument("--batch-size", type=int, default=1, help="calibration windows per forward")
    p.add_argument("--out", type=Path, required=True, help="directory for the pruned model")
    p.add_argument("--eval", action="store_true", help="also report evaluation perplexity")
    p.set_defaults(func=_cmd_prune)

    e = sub.add_parser("eval", help="perplexity and sparsity of a model")
    _add_model_args(e)
    _add_data_args(e, nsamples=None)
    e.add_argument("--part", default="evaluation", choices=["calibration", "search", "evaluation"],
                   help="which part of the data (default evaluation)")
    e.add_argument("--batch-size", type=int, default=1, help="windows per forward")
    e.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    e.set_defaults(func=_cmd_eval)
    return parser


def _load(args: argparse.Namespace) -> Any:
    from allocsearch.models import load_model

    return load_model(args.model, device=args.device, dtype=args.dtype)


def _cmd_prune(args: argparse.Namespace) -> int:
    from allocsearch.data import DataConfig
    from allocsearch.models import save_model
    from allocsearch.pipeline import (
        PruneConfig,
        evaluate_perplexity,
        prune_uniform,
        write_prune_record,
    )
    from allocsearch.pruners import Pattern

    pattern = Pattern.parse(args.pattern)
    sparsity = args.sparsity if (args.sparsity is not None or pattern.is_nm) else 0.5
    config = PruneConfig(
        method=args.method,
        sparsity=sparsity,
        pattern=pattern,
        calibration=DataConfig(args.data, args.nsamples, args.seqlen, args.seed),
        batch_size=args.batch_size,
    )
    loaded = _load(args)
    report = prune_uniform(loaded, config, progress=not args.quiet)
    save_model(loaded, args.out)
    write_prune_record(args.out, loaded, config, report)
    print(
        f"pruned {loaded.name} with {config.method} ({config.pattern}) to "
        f"{report.overall:.4f} sparsity over {len(report.sparsity)} layers "
        f"in {report.seconds:.1f}s; saved to {args.out}"
    )
    if args.eval:
        res = evaluate_perplexity(loaded, args.data, seqlen=args.seqlen, progress=not args.quiet)
        print(f"evaluation perplexity {res.ppl:.3f} on {res.tokens} tokens ({args.data})")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from allocsearch.pipeline import evaluate_perplexity, overall_sparsity

    loaded = _load(args)
    res = evaluate_perplexity(
        loaded, args.data, part=args.part, seqlen=args.seqlen, nsamples=args.nsamples,
        batch_size=args.batch_size, progress=not args.quiet,
    )
    sparsity = overall_sparsity(loaded)
    print(
        f"{loaded.name}: perplexity {res.ppl:.3f} on {res.tokens} tokens "
        f"({res.windows} x {res.seqlen}, {args.data} {args.part}); "
        f"sparsity {sparsity:.4f}"
    )
    if args.json is not None:
        payload = {"model": loaded.name, "data": args.data, "part": args.part,
                   "sparsity": sparsity, **res.to_dict()}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"allocsearch: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
