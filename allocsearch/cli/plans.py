"""``allocsearch allocate``, ``allocsearch plan show`` and ``allocsearch export``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from allocsearch.cli.common import add_data_args, add_model_args, add_quiet, load, parse_params, registered
from allocsearch.io import atomic_write_text


def register(sub: Any) -> None:
    a = sub.add_parser("allocate", help="make a per-module sparsity plan with a published prior")
    add_model_args(a)
    add_data_args(a, nsamples=64)
    a.add_argument("--method", default="owl", choices=registered("allocators"),
                   help="the prior (default owl): %(choices)s")
    a.add_argument("--sparsity", type=float, required=True, help="global (parameter-weighted) target")
    a.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="allocator parameter, repeatable: owl M=5 lam=0.08 granularity=block; "
                        "alpha eps=0.1; ramp slope=0.2; besa steps=30 rowwise=true; "
                        "all: min_sparsity=0 max_sparsity=0.95")
    a.add_argument("--out", type=Path, required=True, help="plan JSON to write")
    a.set_defaults(func=cmd_allocate)

    plan = sub.add_parser("plan", help="inspect plans")
    plan_sub = plan.add_subparsers(dest="plan_command", required=True)
    show = plan_sub.add_parser("show", help="print a per-block table and save a bar chart")
    show.add_argument("plan", type=Path)
    show.add_argument("--png", type=Path, default=None, help="chart path (default: PLAN.png)")
    show.add_argument("--compare", type=Path, action="append", default=[],
                      help="another plan whose block averages to draw on the chart (repeatable)")
    add_quiet(show)
    show.set_defaults(func=cmd_plan_show)

    ex = sub.add_parser("export", help="export a plan for llm-compressor or EvoPress")
    ex.add_argument("plan", type=Path)
    ex.add_argument("--format", required=True, choices=["llmcompressor", "evopress"])
    ex.add_argument("--method", default="sparsegpt", choices=["sparsegpt", "wanda"],
                    help="llm-compressor modifier (default sparsegpt)")
    ex.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    add_quiet(ex)
    ex.set_defaults(func=cmd_export)


def cmd_allocate(args: argparse.Namespace) -> int:
    from allocsearch.allocation import get_allocator
    from allocsearch.data import DataConfig
    from allocsearch.pipeline import allocate_plan

    params = parse_params(args.param)
    if args.method == "besa":
        params.setdefault("progress", not args.quiet)
    get_allocator(args.method, **params)  # bad names or values fail before loading
    if not (0.0 <= args.sparsity < 1.0):
        raise ValueError(f"--sparsity must lie in [0, 1), got {args.sparsity}")
    data = DataConfig(args.data, args.nsamples, args.seqlen, args.seed)
    loaded = load(args)
    plan = allocate_plan(loaded, args.method, args.sparsity, data, params=params,
                         progress=not args.quiet)
    plan.save(args.out)
    cached = plan.provenance.get("profile_from_cache")
    state = "reused from cache" if cached else "computed and cached"
    print(f"profile {plan.provenance.get('profile')}: {state}")
    blocks = plan.block_sparsity()
    print(f"wrote {args.out}: {args.method} plan at {plan.budget():.6f} (target {args.sparsity}); "
          f"block sparsity {min(blocks):.3f}..{max(blocks):.3f}")
    return 0


def cmd_plan_show(args: argparse.Namespace) -> int:
    from allocsearch.plan import Plan
    from allocsearch.plan_view import plan_table, plot_plan

    plan = Plan.load(args.plan)
    others = {str(p.stem): Plan.load(p) for p in args.compare}
    print(plan_table(plan))
    png = plot_plan(plan, args.png or args.plan.with_suffix(".png"), others)
    print(f"chart: {png}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from allocsearch.export import export_plan
    from allocsearch.plan import Plan

    text = export_plan(Plan.load(args.plan), args.format, args.method)
    if args.out is None:
        print(text, end="")
    else:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    return 0
