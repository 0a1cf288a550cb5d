"""A measured window beside the predictor: does it rank the held-out studies' plans?

Every committed record's plan (benchmarks/predictor_data.py's studies, 2048-token labels) is
probed on one window of the same Evaluator's search tokens (:class:`WindowProbe`; --window 4 by
default: tokens 2048-2560, past the labels' own, so no label token is scored twice) with each
fitness of --fitness (the studies' ``ppl``; ``kl``, to the dense model). Then each kind of study
(its seeds together) is held out, as benchmarks/predictor.py's deciding rule holds them out, and
its plans ranked by:

- ``default``: the default model trained on the other kinds;
- ``blend``: the same plus the measured damage (benchmarks/predictor_damage.py's curves,
  :meth:`Predictor.with_damage`);
- ``probe (F)``: the probe alone;
- ``stack (F)``: :class:`ProbeStack` of the blend and the probe, its two weights fitted on the
  other kinds' plans, each of them predicted by a blend trained without it and without the
  held-out kind (nested: no label of the held-out kind reaches the stack).

Spearman against the labels per study; the summary over the 60-75% studies. The cost beside
it: seconds per probe and per label evaluation, both timed on the same --time-plans plans.

    python benchmarks/predictor_probe.py --shard 0/2     # beside --shard 1/2, one core each
    python benchmarks/predictor_probe.py                 # after the shards: the table (~5 min)
    python benchmarks/predictor_probe.py --window 0 --fresh --fitness ppl   # studies no model saw
    python benchmarks/predictor_probe.py --window 0 --fresh --fitness ppl --retest 75-cmaes-s4 ...

``--retest`` (with ``--fresh``) also ranks the named fresh studies against a second measurement
of their plans on the next 2048 search tokens (benchmarks/predictor_fresh.py's, resumed from its
partial file or measured here, sharded as the probes are): no token of it is a probe's or a
label's, so a ranking that only shares the label's noise (a window-0 probe reads the label's
first 512 tokens) shows it there.

The probes are kept in results/runs/predictor_probe_w<window>.partial.json (a run resumes;
probes measured on other library code are measured again). The damage curves are read from
benchmarks/predictor_damage.py's resume state (measured there where missing or stale). Writes
benchmarks/results/predictor_probe_<device>.json (``_w<window>`` added for another window: window 0,
the first quarter of each label's own tokens, asks how well a prefix of the fitness a search's
first rung measures, with the model, orders the candidates for that rung).
"""

from __future__ import annotations

import argparse
import sys
import time
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
from predictor import study_kind
from predictor_ceiling import plan_key, reliability
from predictor_damage import LABEL_TOKENS, TARGETS, curves_of, measure_all, study_rows, summary
from predictor_fresh import fresh_records, retest
from scipy.stats import spearmanr

from allocsearch.data import DataConfig
from allocsearch.evaluate import Evaluator
from allocsearch.models import load_model
from allocsearch.predictor import FeatureTable, PlanRecord, Predictor
from allocsearch.predictor.base import DEFAULT_MODEL
from allocsearch.predictor.damage import CENTRES, DamageCurves
from allocsearch.predictor.probe import ProbeStack, WindowProbe, log_probes
from allocsearch.profile import build_profile

PROBE_EVALUATOR_TOKENS = 4 * LABEL_TOKENS  # the studies' full fidelity: windows 0-15
DEFAULT_WINDOW = 4  # tokens 2048-2560: the first window past the labels' 2048


def partial_path(window: int) -> Path:
    return RUNS / f"predictor_probe_w{window}.partial.json"


def result_name(device: str, window: int, fresh: bool = False) -> str:
    """The result's file: another window than the default's, or the fresh studies, a variant of it."""
    suffix = ("" if window == DEFAULT_WINDOW else f"_w{window}") + ("_fresh" if fresh else "")
    return f"predictor_probe_{device}{suffix}.json"


def measure_probes(ev: Evaluator, records: list[PlanRecord], window: int, fitnesses: list[str],
                   shard: tuple[int, int] | None) -> dict[str, Any]:
    """Each record's probe per fitness (this shard's share), measured or read back."""
    partial = partial_path(window)
    done = fresh_entries(load_done(partial), partial.name)
    probes = {f: WindowProbe(ev, window, f) for f in fitnesses}
    mine = records[shard[0]::shard[1]] if shard else records
    own = [plan_key(r) for r in mine]
    for i, r in enumerate(mine):
        key = plan_key(r)
        if key in done and all(f in done[key] for f in fitnesses):
            continue
        entry: dict[str, float] = {}
        for f, probe in probes.items():  # the first applies the plan; the others find it applied
            start = time.perf_counter()
            entry[f] = probe(r.plan)
            entry[f"{f} seconds"] = time.perf_counter() - start
        done[key] = entry | code_state()
        if i % 20 == 19 or i == len(mine) - 1:
            save_rows(partial, done, shard, own)
            print(f"  {i + 1}/{len(mine)} probed", flush=True)
    return done


def time_costs(ev: Evaluator, records: list[PlanRecord], window: int, fitnesses: list[str],
               n: int, label_tokens: int = LABEL_TOKENS) -> dict[str, Any]:
    """Mean seconds of one probe per fitness and of one label evaluation (``label_tokens``, the
    studies' 2048) on the same ``n`` records, one after the other in this process: the probes' own
    timings were taken beside other shards. Each plan is applied afresh before each timing
    (from the dense model), so every figure includes writing the plan."""
    picked = records[:: max(1, len(records) // n)][:n]
    probes = {f: WindowProbe(ev, window, f) for f in fitnesses}
    for probe in probes.values():
        probe(None)  # the dense reference a KL probe needs is built once, outside the timing
    spent = dict.fromkeys([*fitnesses, "label"], 0.0)
    for r in picked:
        for name in spent:
            ev.restore()
            start = time.perf_counter()
            if name == "label":
                ev.fitness(r.plan, fidelity=label_tokens)
            else:
                probes[name](r.plan)
            spent[name] += time.perf_counter() - start
    return {"probe_seconds": {f: spent[f] / len(picked) for f in fitnesses},
            "label_seconds": spent["label"] / len(picked), "plans_timed": len(picked)}


def blend_of(table: FeatureTable, train: list[PlanRecord], test: list[PlanRecord], curves: DamageCurves,
             members: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(default, blend) predicted log-fitness of ``test``, both (plans,), by a model of ``train``."""
    pred = Predictor.train(table, train, model=DEFAULT_MODEL, members=members, seed=seed)
    plans = [r.plan for r in test]
    return pred.predict(plans)[0], pred.with_damage(curves).predict(plans)[0]


def kind_out(table: FeatureTable, records: list[PlanRecord], curves: DamageCurves, members: int,
             seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(default, blend) predicted log-fitness of every record, both (plans,), each by a model
    trained on the records of the other kinds."""
    kinds = [study_kind(r) for r in records]
    default, blend = np.zeros(len(records)), np.zeros(len(records))
    for kind in sorted(set(kinds)):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        rest = [r for r, k in zip(records, kinds, strict=True) if k != kind]
        default[idx], blend[idx] = blend_of(table, rest, [records[i] for i in idx], curves, members, seed)
    return default, blend


def rankings(table: FeatureTable, records: list[PlanRecord], curves: DamageCurves,
             probes: dict[str, np.ndarray], members: int, seed: int
             ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, dict[str, float]]]]:
    """Every ranking of the records (name -> (plans,) scores), kind held out, and the stack
    weights fitted for each held-out kind (kind -> fitness -> weights)."""
    default, blend = kind_out(table, records, curves, members, seed)
    ranked = {"default": default, "blend": blend} | {f"probe ({f})": v for f, v in probes.items()}
    ranked |= {f"stack ({f})": np.zeros(len(records)) for f in probes}
    log_label = np.log([r.fitness for r in records])
    kinds = [study_kind(r) for r in records]
    weights: dict[str, dict[str, dict[str, float]]] = {}
    for held in sorted(set(kinds)):
        out = [i for i, k in enumerate(kinds) if k != held]
        test = [i for i, k in enumerate(kinds) if k == held]
        # The stack's training plans, each predicted without its own kind and without ``held``.
        inner = kind_out(table, [records[i] for i in out], curves, members, seed)[1]
        studies = [records[i].study for i in out]
        weights[held] = {}
        for f, probe in probes.items():
            stack = ProbeStack.fit(inner, probe[out], log_label[out], studies)
            ranked[f"stack ({f})"][test] = stack.score(blend[test], probe[test])
            weights[held][f] = {"model": stack.model, "probe": stack.probe}
        print(f"  {held}: held out", flush=True)
    return ranked, weights


def fresh_rankings(table: FeatureTable, train: list[PlanRecord], fresh: list[PlanRecord],
                   curves: DamageCurves, probes: dict[str, np.ndarray], members: int, seed: int
                   ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, dict[str, float]]]]:
    """The fresh studies' rankings (name -> (fresh plans,) scores) by models of every committed
    record, and the stack weights, fitted once on the committed plans (each predicted without its
    kind; under the key ``"all"``). ``probes``: fitness -> (train + fresh,) log-probes, the
    committed records first."""
    inner = kind_out(table, train, curves, members, seed)[1]
    d, b = blend_of(table, train, fresh, curves, members, seed)
    ranked = {"default": d, "blend": b} | {f"probe ({f})": v[len(train):] for f, v in probes.items()}
    log_label = np.log([r.fitness for r in train])
    weights: dict[str, dict[str, float]] = {}
    for f, v in probes.items():
        stack = ProbeStack.fit(inner, v[:len(train)], log_label, [r.study for r in train])
        ranked[f"stack ({f})"] = stack.score(b, v[len(train):])
        weights[f] = {"model": stack.model, "probe": stack.probe}
    return ranked, {"all": weights}


def second_rows(fresh: list[PlanRecord], ranked: dict[str, np.ndarray], second: dict[str, Any]
                ) -> list[dict[str, Any]]:
    """Per fresh study whose plans were all measured again: the labels' reliability
    (``label vs second``, ``ceiling``) and each ranking's Spearman against the second measurement."""
    out = []
    for study in sorted({r.study for r in fresh}):
        idx = [i for i, r in enumerate(fresh) if r.study == study]
        if not all(plan_key(fresh[i]) in second for i in idx):
            continue
        again = np.log([second[plan_key(fresh[i])]["second"] for i in idx])
        row: dict[str, Any] = {"study": study, "target": fresh[idx[0]].target, "n": len(idx)}
        row |= reliability(np.log([fresh[i].fitness for i in idx]), again)
        row |= {f"{k} vs second": float(spearmanr(v[idx], again).statistic) for k, v in ranked.items()}
        out.append(row)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                   help="the search window probed (0-based, 512 tokens); 0-3 lie inside the labels' tokens")
    p.add_argument("--fitness", nargs="+", default=["ppl", "kl"], choices=["ppl", "kl"])
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-plans", type=int, default=20,
                   help="plans whose probes and label evaluation are timed one after the other")
    p.add_argument("--shard", type=shard_of, default=None, metavar="I/N",
                   help="probe every N-th record from the I-th only, into its own partial file")
    p.add_argument("--fresh", action="store_true",
                   help="rank the fresh studies' plans (benchmarks/predictor_data.py --fresh) by models and "
                        "stack weights of every committed record instead of holding kinds out")
    p.add_argument("--retest", nargs="+", default=[], metavar="STUDY",
                   help="with --fresh: also rank these fresh studies (any whose name contains one of the "
                        "words) against a second measurement of their plans on the next 2048 tokens")
    args = p.parse_args()
    if args.retest and not args.fresh:
        p.error("--retest ranks fresh studies against a second measurement: give --fresh")

    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    records, _ = predictor_records(loaded.device.type)
    fresh = fresh_records(loaded.device.type) if args.fresh else []
    RUNS.mkdir(parents=True, exist_ok=True)
    ev = predictor_evaluator(loaded, (LABEL_TOKENS, PROBE_EVALUATOR_TOKENS))
    done = measure_probes(ev, records + fresh, args.window, args.fitness, args.shard)
    if args.retest:
        ev.restore()  # the retest builds its own Evaluator, on the dense weights
    second = retest(loaded, fresh, args.retest, args.shard) if args.retest else {}
    if args.shard is not None:
        print(f"shard {args.shard[0]}/{args.shard[1]} done; run again without --shard to write the result")
        return
    save_partial(partial_path(args.window), done)
    costs = time_costs(ev, records, args.window, args.fitness, args.time_plans)
    ev.close()
    pairs = [(t, c) for t in TARGETS for c in CENTRES]
    curves_ev = predictor_evaluator(loaded, (LABEL_TOKENS,))
    curves = curves_of(measure_all(curves_ev, pairs, None, LABEL_TOKENS), pairs)
    curves_ev.close()
    probes = {f: log_probes([done[plan_key(r)][f] for r in records + fresh]) for f in args.fitness}
    table = FeatureTable.from_profile(build_profile(loaded, DataConfig(), progress=False))
    if args.fresh:
        ranked, weights = fresh_rankings(table, records, fresh, curves, probes, args.members, args.seed)
    else:
        ranked, weights = rankings(table, records, curves, probes, args.members, args.seed)
    rows = study_rows(fresh or records, ranked)
    print_table(rows, list(rows[0]))
    best = [{"ranking": k} | v for k, v in summary(rows).items()]
    print_table(best, ["ranking", "min", "median", "below_0.9"])
    retested = second_rows(fresh, ranked, second) if second else []
    if retested:
        print_table(retested, list(retested[0]))
    path = write_json(result_name(loaded.device.type, args.window, args.fresh), {
        "command": command_line(), "environment": environment(),
        "records": len(records), "records_digest": records_digest(records),
        **({"fresh_records": len(fresh), "fresh_digest": records_digest(fresh)} if fresh else {}),
        "default_model": DEFAULT_MODEL, "members": args.members, "seed": args.seed,
        "window": args.window, "probe_tokens": int(ev.windows.shape[1]), "label_tokens": LABEL_TOKENS,
        "fitnesses": args.fitness, "targets": list(TARGETS), "centres": list(CENTRES),
        "cost": costs,
        "weights": weights, "rows": best, "studies": rows,
        **({"retest": args.retest, "retested": retested} if args.retest else {}),
    }, protocol={"device": loaded.device.type, "dtype": args.dtype, "model": args.model, "data": "embedded",
                 "calibration": "the predictor studies' profile (studies/smollm2-70.yaml)",
                 "evaluation": f"labels: search tokens 0-{LABEL_TOKENS}; probes: window {args.window}",
                 "seeds": [args.seed]})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
