"""``allocsearch predictor train|eval|rank|damage`` and ``allocsearch study records``."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from allocsearch.cli.common import add_quiet, registered
from allocsearch.predictor.base import DEFAULT_MODEL

if TYPE_CHECKING:
    from allocsearch.predictor import PlanRecord


def register(sub: Any) -> None:
    p = sub.add_parser("predictor", help="train, evaluate and apply the accuracy predictor")
    p_sub = p.add_subparsers(dest="predictor_command", required=True)

    t = p_sub.add_parser("train", help="train on the completed trials of studies and records files")
    _add_sources(t)
    t.add_argument("--out", type=Path, required=True, help="predictor JSON to write")
    t.add_argument("--kind", default=DEFAULT_MODEL, choices=registered("predictors"),
                   help="the model: %(choices)s (default %(default)s, chosen by held-out rank quality)")
    t.add_argument("--members", type=int, default=5, help="ensemble members (default 5)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--model", default=None, help="the model the records are for (default: as the "
                   "studies recorded it)")
    t.add_argument("--device", default="auto")
    t.add_argument("--dtype", default="float32")
    t.add_argument("--damage", type=Path, default=None,
                   help="measured damage curves (`predictor damage`) to add to the model's mean")
    add_quiet(t)
    t.set_defaults(func=cmd_train)

    d = p_sub.add_parser("damage", help="measure block curves around centre plans, for `train --damage`")
    d.add_argument("config", type=Path, help="study YAML: its model and Evaluator")
    d.add_argument("--targets", type=float, nargs="+", default=None,
                   help="the budgets to measure at (default: the study's target)")
    d.add_argument("--centres", nargs="+", default=None,
                   help="plans to measure around, as reference spellings (default: uniform and "
                        "'ramp slope=0.3')")
    d.add_argument("--tokens", type=int, default=None,
                   help="search tokens per evaluation (default: the study's first fidelity)")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a study config key")
    d.add_argument("--out", type=Path, required=True, help="damage JSON to write")
    add_quiet(d)
    d.set_defaults(func=cmd_damage)

    e = p_sub.add_parser("eval", help="held-out quality of a saved predictor on other studies")
    e.add_argument("predictor", type=Path)
    _add_sources(e)
    e.add_argument("--plot", type=Path, default=None, help="parity plot PNG (default beside the predictor)")
    e.add_argument("--json", type=Path, default=None, help="also write the scores as JSON")
    add_quiet(e)
    e.set_defaults(func=cmd_eval)

    r = p_sub.add_parser("rank", help="predicted fitness of plans, best first")
    r.add_argument("predictor", type=Path)
    r.add_argument("plans", type=Path, nargs="+")
    add_quiet(r)
    r.set_defaults(func=cmd_rank)


def register_study(study_sub: Any) -> None:
    """``allocsearch study records DIR... --out records.jsonl``."""
    r = study_sub.add_parser("records", help="export completed trials as predictor training records")
    r.add_argument("folder", type=Path, nargs="+", help="study output folders (holding study.db)")
    r.add_argument("--storage", default=None, help="read the study from this storage URL instead")
    r.add_argument("--out", type=Path, required=True, help="records JSONL to write")
    _add_tokens(r)
    add_quiet(r)
    r.set_defaults(func=cmd_records)


def _add_tokens(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokens", type=int, default=None,
                   help="a study's records at this fidelity (every trial that read it, pruned ones "
                        "included) instead of at the full one")


def _add_sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", type=Path, nargs="+", default=[], help="study output folders")
    p.add_argument("--records", type=Path, nargs="+", default=[], help="records JSONL files")
    _add_tokens(p)


def _records(args: argparse.Namespace) -> list[PlanRecord]:
    from allocsearch.predictor import read_records
    from allocsearch.search.records import folder_records

    if not args.study and not args.records:
        raise ValueError("give training data with --study DIR... and/or --records FILE...")
    out = folder_records(args.study, tokens=args.tokens)
    for path in args.records:
        out += read_records(path)
    return out


def cmd_records(args: argparse.Namespace) -> int:
    from allocsearch.predictor import write_records
    from allocsearch.search.records import folder_records

    records = folder_records(args.folder, args.storage, args.tokens)
    write_records(records, args.out)
    print(f"wrote {len(records)} records from {len(args.folder)} studies to {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from allocsearch.predictor import train_predictor
    from allocsearch.predictor.damage import DamageCurves

    damage = DamageCurves.load(args.damage) if args.damage is not None else None
    pred = train_predictor(_records(args), kind=args.kind, members=args.members, seed=args.seed,
                           model=args.model, device=args.device, dtype=args.dtype, progress=not args.quiet,
                           damage=damage)
    pred.save(args.out)
    m = pred.meta
    print(f"trained {args.kind} x{m.members} on {m.n_train} plans of {len(m.studies)} studies "
          f"({m.fitness_name} at {m.tokens} tokens, model {m.model}); wrote {args.out}")
    if pred.damage is not None:
        print(f"damage at targets {list(pred.damage.targets)} added at {pred.damage_scale:.4g} per unit")
    return 0


def cmd_damage(args: argparse.Namespace) -> int:
    from allocsearch.evaluate.reference import ReferencePlan
    from allocsearch.predictor.damage import CENTRES, DamageCurves, measure_damage
    from allocsearch.search import StudyConfig, study_evaluator

    config = StudyConfig.load(args.config, list(args.set))
    targets = args.targets or [config.target]
    centres = args.centres or list(CENTRES)
    for c in centres:
        ReferencePlan.parse(c)  # an unknown allocator fails before the model loads
    if any(not 0.0 < t < 1.0 for t in targets):
        raise ValueError(f"--targets are budgets in (0, 1), got {targets}")
    entries = []
    with study_evaluator(config, None, None, progress=not args.quiet) as ev:
        for t in sorted(set(targets)):
            ev.use_reference(t)  # a sequential-aware database, as a study at t would
            for c in centres:
                entries.append(measure_damage(ev, t, c, tokens=args.tokens, progress=not args.quiet))
                cur = entries[-1].curves
                print(f"{t:g} around {c}: {cur.num_blocks} blocks x {len(cur.levels)} levels, "
                      f"{cur.tokens_read:,} tokens ({cur.seconds:.0f} s; kept in the cache)")
    damage = DamageCurves(tuple(entries))
    damage.save(args.out)
    print(f"wrote {args.out}: {len(entries)} sets of curves, {damage.tokens_read:,} search tokens")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from allocsearch.predictor import HeldOut, Predictor, importances
    from allocsearch.predictor.evaluation import parity_plot

    pred = Predictor.load(args.predictor)
    records = _records(args)
    seen = sorted({r.study for r in records} & set(pred.meta.studies))
    if seen:
        print(f"warning: the predictor was trained on {seen}: those scores are not held out")
    mean, std = pred.predict([r.plan for r in records])
    held = HeldOut(records, mean, std)
    scores = held.scores()
    print(f"{'plans':14s} {'n':>5} {'spearman':>9} {'kendall':>8} {'mae(log)':>9} {'top10%':>7}")
    rows = [("all", scores["overall"])] + [(f"target {k}", v) for k, v in scores["per_target"].items()]
    for name, s in rows:
        print(f"{name:14s} {s['n']:>5} {s['spearman']:>9.3f} {s['kendall']:>8.3f} {s['mae_log']:>9.3f} "
              f"{s['top10_recall']:>7.2f}")
    plot = args.plot or args.predictor.with_suffix(".parity.png")
    parity_plot(held, plot, f"{pred.model} on {len({r.study for r in records})} studies")
    imp = importances(pred)
    if imp:
        print("feature importances: " + ", ".join(f"{n} {v:.3f}" for n, v in imp[:10]))
    print(f"parity plot: {plot}")
    if args.json:
        from allocsearch.io import atomic_write_text

        payload = scores | {"importances": imp, "predictor": str(args.predictor),
                            "mean_std": float(np.mean(std))}
        atomic_write_text(args.json, json.dumps(payload, indent=1) + "\n")
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    from allocsearch.plan import Plan
    from allocsearch.predictor import Predictor

    plans = [Plan.load(p) for p in args.plans]
    pred = Predictor.load(args.predictor)
    mean, std = pred.predict(plans)
    print(f"predicted {pred.meta.fitness_name} at {pred.meta.tokens} tokens ({pred.model}, "
          f"trained on {pred.meta.n_train} plans)")
    print(f"{'rank':>4}  {'predicted':>10}  {'x/÷ spread':>10}  plan")
    order = sorted(range(len(plans)), key=lambda i: float(mean[i]))
    for rank, i in enumerate(order, 1):
        print(f"{rank:>4}  {math.exp(mean[i]):>10.4g}  {math.exp(std[i]):>10.3f}  {args.plans[i]}")
    return 0
