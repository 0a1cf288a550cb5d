"""``allocsearch search STUDY.yaml``, ``allocsearch study report DIR`` and ``allocsearch study
curves STUDY.yaml``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from allocsearch.cli.common import add_quiet, registered
from allocsearch.cli.predictor import register_study


def register(sub: Any) -> None:
    s = sub.add_parser("search", help="run (or resume) an Optuna study from a launch config")
    s.add_argument("config", type=Path, help="a study config YAML (see studies/)")
    s.add_argument("--n-trials", type=int, default=None, help="total trials (overrides n_trials)")
    s.add_argument("--storage", default=None, help="an Optuna storage URL (default: SQLite in the "
                   "output folder); postgresql://... for many workers")
    s.add_argument("--sampler", default=None, choices=registered("samplers"),
                   help="overrides sampler.name: %(choices)s")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--target", type=float, default=None)
    s.add_argument("--output", type=Path, default=None, help="output folder (default beside the config)")
    s.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override any config key, dotted (evaluator.fidelities=[2048,8192])")
    s.add_argument("--predictor", default=None, metavar="MODEL",
                   choices=["none", *registered("predictors")],
                   help="short-list candidates with the accuracy predictor: %(choices)s "
                        "(overrides predictor.model)")
    s.add_argument("--predictor-file", default=None, metavar="P.json",
                   help="short-list from the first searched trial with this trained predictor, "
                        "retrained on the study's trials as they come (overrides predictor.file)")
    s.add_argument("--no-verify", action="store_true", help="skip the exact verification of the best")
    add_quiet(s)
    s.set_defaults(func=cmd_search)

    st = sub.add_parser("study", help="inspect study outputs")
    st_sub = st.add_subparsers(dest="study_command", required=True)
    r = st_sub.add_parser("report", help="best plans vs. the priors, best plan JSON, plots")
    r.add_argument("folder", type=Path, help="a study output folder (holding study.db)")
    r.add_argument("--storage", default=None, help="read the study from this storage URL instead")
    r.add_argument("--name", default=None, help="the study name, when the storage holds several")
    r.add_argument("--top", type=int, default=5, help="how many best trials to list")
    r.add_argument("--no-plots", action="store_true")
    add_quiet(r)
    r.set_defaults(func=cmd_report)
    c = st_sub.add_parser("curves", help="a plan from each block's measured loss curve, no search")
    c.add_argument("config", type=Path, help="a study config YAML: its model, target and Evaluator")
    c.add_argument("--prior", default=None, metavar="ALLOCATOR",
                   help="the prior mixed in below mix 1, with parameters (\"ramp slope=0.2\")")
    c.add_argument("--mix", type=float, nargs="+", default=[1.0], metavar="SHARE",
                   help="the curves' share of each block's sparsity, 0..1, one plan each; the plan "
                        "of lowest search fitness is written (default 1: the curves alone)")
    c.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override any config key, dotted (target=0.6)")
    c.add_argument("--around", default=None, metavar="ALLOCATOR",
                   help="measure the curves around this allocator's plan at the target (e.g. uniform: "
                        "one block moved, the rest at the target) instead of from the dense model")
    c.add_argument("--out", type=Path, required=True, help="plan JSON to write (the chosen mix)")
    add_quiet(c)
    c.set_defaults(func=cmd_curves)
    register_study(st_sub)


def cmd_search(args: argparse.Namespace) -> int:
    from allocsearch.search import StudyConfig, find_space, run_study
    from allocsearch.search.report import build_report, format_report

    overrides = list(args.set)
    for key, value in (("n_trials", args.n_trials), ("storage", args.storage),
                       ("sampler.name", args.sampler), ("seed", args.seed), ("target", args.target),
                       ("output", args.output),
                       ("predictor.model", args.predictor), ("predictor.file", args.predictor_file)):
        if value is not None:
            overrides.append(f"{key}={value}")
    config = StudyConfig.load(args.config, overrides)
    find_space(config.space)  # a bad space fails before the model loads
    if config.anchor.rounds:
        from allocsearch.search.anchored import format_anchors, run_anchored

        anchored = run_anchored(config, progress=not args.quiet, verify=not args.no_verify)
        print(format_anchors(anchored))
        return 0
    run = run_study(config, progress=not args.quiet, verify=not args.no_verify)
    report = build_report(run.study, config.output)
    print(format_report(report))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from allocsearch.search import load_study
    from allocsearch.search.report import build_report, format_report

    study = load_study(args.folder, args.storage, args.name)
    print(format_report(build_report(study, args.folder, top=args.top, plots=not args.no_plots)))
    return 0


def cmd_curves(args: argparse.Namespace) -> int:
    from allocsearch.evaluate.reference import ReferencePlan
    from allocsearch.evaluate.sensitivity import Around, cached_block_curves, curve_mixes
    from allocsearch.search import StudyConfig, study_evaluator

    config = StudyConfig.load(args.config, list(args.set))
    # Bad mixes or a bad prior fail before the model loads.
    if any(not 0.0 <= m <= 1.0 for m in args.mix):
        raise ValueError(f"--mix takes shares in [0, 1], got {args.mix}")
    if args.prior is None and any(m < 1.0 for m in args.mix):
        raise ValueError("a --mix below 1 needs a --prior (e.g. --prior 'ramp slope=0.2')")
    prior = ReferencePlan.parse(args.prior) if args.prior is not None else None
    if args.around is not None:
        ReferencePlan.parse(args.around)  # an unknown allocator fails before the model loads
    with study_evaluator(config, None, None, progress=not args.quiet) as ev:
        ev.use_reference(config.target)  # a sequential-aware database, as the study's own
        around = Around.reference(args.around, ev, config.target) if args.around is not None else None
        curves = cached_block_curves(ev, progress=not args.quiet, around=around)
        base = prior.plan(ev.profile, config.target) if prior is not None else None
        rows = curve_mixes(ev, curves, config.target, base, args.mix)
    best = min(rows, key=lambda r: r.fitness)
    fidelity = config.evaluator.fidelities[-1]
    print(f"block curves: {curves.num_blocks} blocks x {len(curves.levels)} levels at {curves.tokens} "
          f"tokens each ({curves.tokens_read:,} tokens, measured in {curves.seconds:.0f} s; "
          "kept in the cache)")
    print(f"{'mix':>5}  {config.evaluator.fitness} @ {fidelity} tokens")
    for r in rows:
        print(f"{r.mix:>5.2f}  {r.fitness:.4f}{'  <- written' if r is best else ''}")
    best.plan.save(args.out)
    blocks = best.plan.block_sparsity()
    print(f"wrote {args.out}: curves mix {best.mix:g} at {best.plan.budget():.6f} (target "
          f"{config.target}); block sparsity {min(blocks):.3f}..{max(blocks):.3f}")
    return 0
