"""``allocsearch search STUDY.yaml`` and ``allocsearch study report DIR``."""

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
