"""Measured damage beside the default predictor: does it rank the held-out studies better?

For each target of --targets and each centre of --centres (the uniform plan, a steep ramp), the
block curves around that centre plan (:mod:`allocsearch.predictor.damage`: every block alone
moved to 6 levels, 180 evaluations of the predictor studies' Evaluator at --tokens search
tokens for SmolLM2-135M) are measured once. Then every study benchmarks/predictor_data.py ran is
held out as in benchmarks/predictor.py (alone, and with the other seeds of its kind) and its
plans ranked, by Spearman against their labels:

- ``default``: the default model trained on the other studies;
- ``damage``: the blended damage alone (no parameter learned from any study);
- ``blend``: the default model's prediction plus the damage times the factor that gives both
  the same spread within a study over the training studies (:meth:`Predictor.with_damage`);
- ``other target``: the same, each study's plans reading the curves of the nearest other
  measured target (as a study at a target without curves would: measured once, used between).

A study at a target without curves reads the curves of the nearest measured target. The
curves' cost (evaluations, tokens, seconds) is in the JSON beside a predictor study's.

    python benchmarks/predictor_damage.py                           # ~1.5 h of one core (6 x 181 evaluations)
    python benchmarks/predictor_damage.py --tokens 2048 512 --shard 0/2   # beside --shard 1/2, one core each
    python benchmarks/predictor_damage.py --tokens 2048 512         # after the shards: the table (~2 min)

The curves are kept in results/runs/predictor_damage_<tokens>.partial.json (a run resumes; a
shard measures every N-th (target, centre) into its own file) and in the library's curve cache.
Writes benchmarks/results/predictor_damage_<device>.json. ``--tokens 2048 512`` also measures
the curves on 512 search tokens each (a quarter of the cost, noisier) and ranks with those too.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _code_state import code_state, fresh_entries
from _common import (
    RUNS,
    add_model_args,
    command_line,
    environment,
    predictor_evaluator,
    predictor_records,
    print_table,
    records_digest,
    write_json,
)
from _shards import load_done, save_partial, save_rows, shard_of
from predictor import deciding, study_kind
from scipy.stats import spearmanr

from allocsearch.data import DataConfig
from allocsearch.evaluate import Evaluator
from allocsearch.models import load_model
from allocsearch.predictor import FeatureTable, Predictor
from allocsearch.predictor.base import DEFAULT_MODEL
from allocsearch.predictor.damage import CENTRES, CentredCurves, DamageCurves, measure_damage
from allocsearch.predictor.records import PlanRecord
from allocsearch.profile import build_profile

LABEL_TOKENS = 2048  # the predictor studies' fitness tokens (benchmarks/predictor_data.py)
TARGETS = (0.6, 0.7, 0.75)  # the targets whose curves are measured by default

def partial_path(tokens: int) -> Path:
    """The resumable curves measured with ``tokens`` search tokens per evaluation."""
    return RUNS / f"predictor_damage_{tokens}.partial.json"


def curve_key(target: float, centre: str) -> str:
    return f"{target:g}|{centre}"


def measure_all(ev: Evaluator, pairs: list[tuple[float, str]], shard: tuple[int, int] | None,
                tokens: int) -> dict[str, Any]:
    """Every (target, centre) of ``pairs`` (this shard's share) measured or read back."""
    partial = partial_path(tokens)
    # Curves measured on other library code are measured again (as every suite's resume does).
    done = fresh_entries(load_done(partial), partial.name)
    own = [curve_key(t, c) for t, c in pairs]
    for t, c in pairs:
        key = curve_key(t, c)
        if key in done:
            continue
        start = time.perf_counter()
        curves = measure_damage(ev, t, c, tokens=tokens, progress=True)
        done[key] = {"curves": curves.to_dict(), "seconds": time.perf_counter() - start} | code_state()
        save_rows(partial, done, shard, own)
        print(f"  {key}: {done[key]['seconds']:.0f} s", flush=True)
    return done


def curves_of(done: dict[str, Any], pairs: list[tuple[float, str]]) -> DamageCurves:
    """The curves of every (target, centre) of ``pairs`` among the measured entries ``done``
    (what :func:`measure_all` returns)."""
    return DamageCurves(tuple(CentredCurves.from_dict(done[curve_key(t, c)]["curves"]) for t, c in pairs))


def other_targets(curves: DamageCurves, target: float) -> DamageCurves:
    """The curves of every measured target but ``target``: what a study at a target nobody
    measured reads (the nearest other target's)."""
    return DamageCurves(tuple(e for e in curves.entries if abs(e.target - target) > 1e-9))


def damage_elsewhere(curves: DamageCurves, records: list[PlanRecord]) -> np.ndarray:
    """(plans,) each record's damage from the curves of the other targets (:func:`other_targets`)."""
    out = np.empty(len(records))
    for t in {r.target for r in records}:
        idx = [i for i, r in enumerate(records) if r.target == t]
        out[idx] = other_targets(curves, t).of_plans([records[i].plan for i in idx])
    return out


Variants = dict[str, Callable[[float], DamageCurves]]


def held_out(table: FeatureTable, records: list[PlanRecord], variants: Variants,
             key: Callable[[PlanRecord], str], members: int, seed: int) -> dict[str, np.ndarray]:
    """(plans,) held-out scores of each record (its group left out of training): ``model``, the
    default model's prediction, and per ``variants`` entry (name -> the curves for a group at a
    target) the same predictor's with that damage (its factor fitted on the training records)."""
    out = {k: np.zeros(len(records)) for k in ["model", *variants]}
    for name in sorted({key(r) for r in records}):
        train = [r for r in records if key(r) != name]
        test = [i for i, r in enumerate(records) if key(r) == name]
        pred = Predictor.train(table, train, model=DEFAULT_MODEL, members=members, seed=seed)
        plans = [records[i].plan for i in test]
        out["model"][test] = pred.predict(plans)[0]
        for v, curves_for in variants.items():
            out[v][test] = pred.with_damage(curves_for(records[test[0]].target)).predict(plans)[0]
    return out


def study_rows(records: list[PlanRecord], ranked: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Per study, the Spearman of each ranking (``ranked``: name -> (plans,) scores) against
    the labels."""
    y = np.log([r.fitness for r in records])
    study = np.array([r.study for r in records])
    rows = []
    for s in sorted(set(study.tolist())):
        m = study == s
        row: dict[str, Any] = {"study": s, "target": records[int(np.argmax(m))].target, "n": int(m.sum())}
        row |= {k: float(spearmanr(v[m], y[m]).statistic) for k, v in ranked.items()}
        rows.append(row)
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per ranking column: its minimum and median over the 60-75% studies and how many are below 0.9."""
    decide = [r for r in rows if deciding(r["target"])]
    cols = [k for k in rows[0] if k not in ("study", "target", "n")]
    return {k: {"min": min(r[k] for r in decide), "median": float(np.median([r[k] for r in decide])),
                "below_0.9": sum(r[k] < 0.9 for r in decide)} for k in cols}


def _const(curves: DamageCurves) -> Callable[[float], DamageCurves]:
    """The same curves for a study at any target."""
    return lambda t: curves


def rankings(table: FeatureTable, records: list[PlanRecord], curves: dict[int, DamageCurves],
             members: int, seed: int) -> dict[str, np.ndarray]:
    """Every ranking of the records (name -> (plans,) scores): the default model held out alone
    and with its kind, plus the damage of the first ``curves`` (tokens -> curves), of the other
    targets' curves, and of each cheaper set (kind held out), and the damage alone."""
    first, *cheaper = curves
    main = curves[first]
    variants: Variants = {"blend": lambda t: main}
    several = len(main.targets) > 1  # then a study's plans can read another target's curves
    if several:
        variants["blend kind out other target"] = lambda t: other_targets(main, t)
    for tokens in cheaper:
        variants[f"blend kind out, {tokens} tokens"] = _const(curves[tokens])
    alone = held_out(table, records, {"blend": lambda t: main}, lambda r: r.study, members, seed)
    kind = held_out(table, records, variants, study_kind, members, seed)
    ranked = {"default": alone["model"], "blend": alone["blend"], "default kind out": kind["model"],
              "blend kind out": kind.pop("blend")}
    ranked |= {k: v for k, v in kind.items() if k != "model"}
    ranked["damage"] = main.of_plans([r.plan for r in records])
    if several:
        ranked["damage other target"] = damage_elsewhere(main, records)
    for tokens in cheaper:
        ranked[f"damage, {tokens} tokens"] = curves[tokens].of_plans([r.plan for r in records])
    return ranked


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--targets", type=float, nargs="+", default=list(TARGETS))
    p.add_argument("--centres", nargs="+", default=list(CENTRES))
    p.add_argument("--tokens", type=int, nargs="+", default=[LABEL_TOKENS],
                   help="search tokens per evaluation: the first for the main columns (the studies' "
                        "labels' 2048), each other for a cheaper set of curves")
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard", type=shard_of, default=None, metavar="I/N",
                   help="measure every N-th (target, centre) from the I-th only, into its own partial file")
    args = p.parse_args()

    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    pairs = [(t, c) for t in sorted(args.targets) for c in args.centres]
    RUNS.mkdir(parents=True, exist_ok=True)
    mine = pairs[args.shard[0]::args.shard[1]] if args.shard else pairs
    done: dict[int, dict[str, Any]] = {}
    for tokens in args.tokens:
        ev = predictor_evaluator(loaded, (tokens,))
        done[tokens] = measure_all(ev, mine, args.shard, tokens)
        ev.close()
    if args.shard is not None:
        print(f"shard {args.shard[0]}/{args.shard[1]} done; run again without --shard to write the result")
        return
    curves = {}
    for tokens, rows_done in done.items():
        save_partial(partial_path(tokens), rows_done)
        curves[tokens] = curves_of(rows_done, pairs)
    records, _ = predictor_records(loaded.device.type)
    table = FeatureTable.from_profile(build_profile(loaded, DataConfig(), progress=False))
    rows = study_rows(records, rankings(table, records, curves, args.members, args.seed))
    print_table(rows, list(rows[0]))
    best = [{"ranking": k} | v for k, v in summary(rows).items()]
    print_table(best, ["ranking", "min", "median", "below_0.9"])
    study_tokens = len([r for r in records if r.study == records[0].study]) * records[0].tokens
    path = write_json(f"predictor_damage_{loaded.device.type}.json", {
        "command": command_line(), "environment": environment(),
        "records": len(records), "records_digest": records_digest(records),
        "default_model": DEFAULT_MODEL, "members": args.members, "seed": args.seed,
        "targets": sorted(args.targets), "centres": args.centres, "tokens": args.tokens,
        "cost": {str(tokens): cost(done[tokens], curves[tokens], pairs) | {"study_tokens": study_tokens}
                 for tokens in args.tokens},
        "curves": {f"{curve_key(t, c)}|{tokens}": {k: v for k, v in done[tokens][curve_key(t, c)].items()
                                              if k != "curves"} for tokens in args.tokens for t, c in pairs},
        "rows": best, "studies": rows,
    }, protocol={"device": loaded.device.type, "dtype": args.dtype, "model": args.model, "data": "embedded",
                 "calibration": "the predictor studies' profile (studies/smollm2-70.yaml)",
                 "evaluation": f"search tokens 0-{max(args.tokens)}", "seeds": [args.seed]})
    print(f"\nwrote {path}")


def cost(done: dict[str, Any], curves: DamageCurves, pairs: list[tuple[float, str]]) -> dict[str, Any]:
    """What measuring ``curves`` took: evaluations, search tokens, seconds of one core."""
    return {"evaluations": sum(e.curves.num_blocks * len(e.curves.levels) + 1 for e in curves.entries),
            "tokens": curves.tokens_read, "seconds": sum(done[curve_key(t, c)]["seconds"] for t, c in pairs)}


if __name__ == "__main__":
    main()
