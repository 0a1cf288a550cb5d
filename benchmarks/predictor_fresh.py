"""Fresh studies: the shipped predictor ranking the plans of studies no predictor was trained on.

benchmarks/predictor.py and benchmarks/predictor_damage.py hold each of the 27 committed
predictor studies out in turn: their Spearman is measured on those studies' plans, which also
chose the model (a selection effect). Here the default model (and the additive baseline) is
trained on every committed record, as ``allocsearch predictor train`` would, and ranks the plans
of studies of the same kinds at other seeds (benchmarks/predictor_data.py --fresh: seeds 3-5,
run after the models were chosen): plans it has never seen, as a user's next study would be.

Per fresh study, the Spearman against its labels of: ``default``, ``blend`` (the default model
plus the measured damage of benchmarks/predictor_damage.py's 2048-token curves, read back from
its resume file or the library's curve cache, measured where neither has them), ``additive``,
and ``damage`` alone; and ``spread``, the interquartile range of the study's log-fitness: a
study whose plans lie within the labels' noise of each other cannot be ranked by anything.

``--retest`` names fresh studies (any whose name contains one of the words) whose plans are
measured again on the next 2048 search tokens, as benchmarks/predictor_ceiling.py does for the
committed ones: their rows gain ``label vs second`` (the labels' reliability) and ``ceiling``
(its square root: about the best Spearman any predictor can reach against these labels).

    python benchmarks/predictor_data.py --fresh      # the fresh studies (~2 h of one core)
    python benchmarks/predictor_fresh.py             # the table (~3 min with the curves cached)
    python benchmarks/predictor_fresh.py --retest 70-evopress-s4 --shard 0/2   # beside 1/2, then
    python benchmarks/predictor_fresh.py --retest 70-evopress-s4               # (~10 min a study)

The re-measured plans are kept in results/runs/predictor_fresh_retest.partial.json (a run
resumes; ``--shard I/N`` measures every N-th plan into its own file and writes no result).
Writes benchmarks/results/predictor_fresh_<device>.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _common import (
    FRESH_RECORDS,
    RESULTS,
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
from _shards import shard_of
from predictor_ceiling import plan_key, reliability, remeasured
from predictor_damage import LABEL_TOKENS, TARGETS, curves_of, measure_all, study_rows, summary

from allocsearch.data import DataConfig
from allocsearch.models import load_model
from allocsearch.predictor import FeatureTable, Predictor
from allocsearch.predictor.base import DEFAULT_MODEL
from allocsearch.predictor.damage import CENTRES, DamageCurves
from allocsearch.predictor.records import PlanRecord, read_records
from allocsearch.profile import build_profile


def fresh_records(device: str) -> list[PlanRecord]:
    """The fresh studies' records, or a SystemExit naming the command that makes them."""
    path = RESULTS / FRESH_RECORDS.format(device=device)
    if not path.is_file():
        raise SystemExit(f"no {path.name}: run benchmarks/predictor_data.py --fresh first")
    return read_records(path)


def check_fresh(train: list[PlanRecord], fresh: list[PlanRecord]) -> None:
    """Refuse fresh records that share a study with the training records."""
    shared = sorted({r.study for r in train} & {r.study for r in fresh})
    if shared:
        raise SystemExit(f"the fresh records share studies with the training records: {', '.join(shared)}")


def spread(records: list[PlanRecord], rows: list[dict[str, Any]]) -> None:
    """Add each study's interquartile range of log-fitness to its row."""
    for row in rows:
        y = np.log([r.fitness for r in records if r.study == row["study"]])
        q75, q25 = np.percentile(y, [75, 25])
        row["spread"] = float(q75 - q25)


def retest(loaded: Any, fresh: list[PlanRecord], words: list[str],
           shard: tuple[int, int] | None) -> dict[str, Any]:
    """The plans of the fresh studies named by ``words`` measured again (resumed from the
    partial file; with ``shard``, this shard's share only): study|trial -> label and second."""
    chosen = [r for r in fresh if any(w in r.study for w in words)]
    ev = predictor_evaluator(loaded, (LABEL_TOKENS, 2 * LABEL_TOKENS))
    done = remeasured(ev, fresh, chosen, RUNS / "predictor_fresh_retest.partial.json", shard, LABEL_TOKENS)
    ev.close()
    return done


def add_reliability(records: list[PlanRecord], rows: list[dict[str, Any]], done: dict[str, Any]) -> None:
    """Add the labels' reliability and ceiling to the row of each study whose plans were all
    measured again."""
    for row in rows:
        mine = [r for r in records if r.study == row["study"]]
        if all(plan_key(r) in done for r in mine):
            row |= reliability(np.log([r.fitness for r in mine]),
                               np.log([done[plan_key(r)]["second"] for r in mine]))


def curves_at_label_tokens(loaded: Any) -> DamageCurves:
    """predictor_damage.py's 2048-token curves (its resume file, the cache, or measured)."""
    ev = predictor_evaluator(loaded, (LABEL_TOKENS,))
    pairs = [(t, c) for t in TARGETS for c in CENTRES]
    done = measure_all(ev, pairs, None, LABEL_TOKENS)
    ev.close()
    return curves_of(done, pairs)


def rankings(table: FeatureTable, train: list[PlanRecord], fresh: list[PlanRecord], curves: DamageCurves,
             members: int, seed: int) -> dict[str, np.ndarray]:
    """(plans,) scores of the fresh plans per ranking, each model trained on every ``train`` record."""
    plans = [r.plan for r in fresh]
    default = Predictor.train(table, train, model=DEFAULT_MODEL, members=members, seed=seed)
    additive = Predictor.train(table, train, model="additive", members=members, seed=seed)
    return {"default": default.predict(plans)[0], "blend": default.with_damage(curves).predict(plans)[0],
            "additive": additive.predict(plans)[0], "damage": curves.of_plans(plans)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retest", nargs="+", default=[],
                   help="fresh studies (names containing these) whose plans are measured again")
    p.add_argument("--shard", type=shard_of, default=None, metavar="I/N",
                   help="with --retest: measure every N-th plan from the I-th only, and write no result")
    args = p.parse_args()
    if args.shard is not None and not args.retest:
        p.error("--shard splits the plans of --retest; give --retest")
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    train, _ = predictor_records(loaded.device.type)
    fresh = fresh_records(loaded.device.type)
    check_fresh(train, fresh)
    done = retest(loaded, fresh, args.retest, args.shard) if args.retest else {}
    if args.shard is not None:
        print(f"shard {args.shard[0]}/{args.shard[1]} done; run again without --shard to write the result")
        return
    curves = curves_at_label_tokens(loaded)
    table = FeatureTable.from_profile(build_profile(loaded, DataConfig(), progress=False))
    rows = study_rows(fresh, rankings(table, train, fresh, curves, args.members, args.seed))
    best = [{"ranking": k} | v for k, v in summary(rows).items()]
    spread(fresh, rows)
    add_reliability(fresh, rows, done)
    print_table(rows, list(rows[0]))
    print_table(best, ["ranking", "min", "median", "below_0.9"])
    path = write_json(f"predictor_fresh_{loaded.device.type}.json", {
        "command": command_line(), "environment": environment(),
        "records": len(train), "records_digest": records_digest(train),
        "fresh_records": len(fresh), "fresh_digest": records_digest(fresh),
        "default_model": DEFAULT_MODEL, "members": args.members, "seed": args.seed,
        "targets": list(TARGETS), "centres": list(CENTRES), "tokens": LABEL_TOKENS, "retest": args.retest,
        "rows": best, "studies": rows,
    }, protocol={"device": loaded.device.type, "dtype": args.dtype, "model": args.model, "data": "embedded",
                 "calibration": "the predictor studies' profile (studies/smollm2-70.yaml)",
                 "evaluation": f"search tokens 0-{LABEL_TOKENS}", "seeds": [args.seed]})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
