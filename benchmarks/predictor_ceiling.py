"""How well can any predictor rank the predictor studies' plans? The labels' own noise.

Every plan of the studies benchmarks/predictor_data.py ran carries one fitness: perplexity on
the first --label-tokens search tokens. A second, disjoint measurement of the same plan (the
next --label-tokens tokens of the search split, same cached Wanda masks) has the same
expected ranking but its own noise. Per held-out study:

- ``label vs second``: Spearman of the two measurements (their reliability r). A predictor
  that knew each plan's noise-free fitness would rank the labels at about sqrt(r) (the
  classical attenuation of a correlation by noise in one of its two sides), given as
  ``ceiling``; the bar of issue 24 (0.9 on every 60-75% study) is out of reach of any model
  where the ceiling is below 0.9, that is where r is below 0.81;
- ``model vs label`` and ``model vs second``: the default model's held-out predictions
  (leave-one-study-out, as benchmarks/predictor.py) against each measurement; the second
  shares no noise with the training labels;
- ``model vs both``: against the perplexity on both halves together (2 x --label-tokens), a
  label with half the noise variance: the rank quality a less noisy label would show;
- the same for the additive baseline;
- ``in-sample``: the default model trained on every study, this one included, against the
  labels: how well its design can fit the study at all, given the study's own plans;
- ``trained on both vs both`` (when every study is measured again): held out as above, but
  trained on labels of both halves too, so the training data have half the noise as well.

A learning curve follows: per 60-75% study, the default model's held-out Spearman when trained
on k of the other studies (--curve-sizes, --curve-subsets random choices each, and all of
them): whether more studies of these kinds would still raise it.

    python benchmarks/predictor_ceiling.py        # ~10 min of one CPU core per study (40 plans x 4096 tokens)
    python benchmarks/predictor_ceiling.py --studies 70-tpe 60-cmaes   # some studies (~10 min each)

The studies at 60-75% are measured first, so an interrupted run has the ones the bar is set on;
the table has a row for each study whose plans are all measured.

The re-measured plans are kept in results/runs/predictor_ceiling.partial.json (an interrupted
run resumes; a plan measured on other library code or numerics is measured again);
``--shard 0/2`` and ``--shard 1/2`` split the plans between two processes (one core each),
and a last run without ``--shard`` writes benchmarks/results/predictor_ceiling_<device>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
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
from predictor import deciding
from scipy.stats import spearmanr

from allocsearch.data import DataConfig
from allocsearch.evaluate import Evaluator
from allocsearch.models import load_model
from allocsearch.predictor import FeatureTable, Predictor, hold_out
from allocsearch.predictor.base import DEFAULT_MODEL
from allocsearch.predictor.records import PlanRecord
from allocsearch.profile import build_profile


def second_measure(ev: Evaluator, plan: Any, label_tokens: int) -> tuple[float, float]:
    """The plan's perplexity on the first ``label_tokens`` search tokens (the label again) and
    on the next ``label_tokens`` alone (from the running means: NLL is additive in tokens)."""
    steps = list(ev.iter_fitness(plan))
    first, both = steps[0], steps[-1]
    # ppl = exp(NLL sum / positions), positions proportional to tokens: the sums subtract.
    nll = math.log(both.value) * both.tokens - math.log(first.value) * first.tokens
    rest = nll / (both.tokens - first.tokens)
    return first.value, math.exp(rest)


def measure_again(ev: Evaluator, chosen: list[PlanRecord], done: dict[str, Any], partial: Path,
                  shard: tuple[int, int] | None, label_tokens: int) -> None:
    """Measure each of ``chosen`` not yet in ``done`` again (:func:`second_measure`) into
    ``done``, saved to ``partial`` (this shard's file) after each plan."""
    own = [plan_key(r) for r in chosen]
    for i, r in enumerate(chosen):
        key = plan_key(r)
        if key in done:
            continue
        again, later = second_measure(ev, r.plan, label_tokens)
        done[key] = {"label": r.fitness, "again": again, "second": later} | code_state()
        save_rows(partial, done, shard, own)
        if i % 20 == 0:
            print(f"  {i}/{len(chosen)} {key}: label {r.fitness:.3f} again {again:.3f} second {later:.3f}",
                  flush=True)


def remeasured(ev: Evaluator, records: list[PlanRecord], chosen: list[PlanRecord], partial: Path,
               shard: tuple[int, int] | None, label_tokens: int) -> dict[str, Any]:
    """``partial``'s rows of ``records`` (resumed), plus this shard's share of ``chosen``
    measured again (:func:`measure_again`); without ``shard``, the shards' rows folded into
    ``partial``. study|trial -> label, label again, second."""
    partial.parent.mkdir(parents=True, exist_ok=True)
    done = current_rows(fresh_entries(load_done(partial), partial.name), records)
    if shard is not None:
        chosen = chosen[shard[0]::shard[1]]
    measure_again(ev, chosen, done, partial, shard, label_tokens)
    if shard is None:
        save_partial(partial, done)  # the shards' rows folded in
    return done


def reliability(label: np.ndarray, second: np.ndarray) -> dict[str, float]:
    """The Spearman of two measurements of the same plans (``label``, ``second``: (plans,)) and
    the ceiling it sets on any predictor's Spearman against the first (its square root)."""
    rel = _rho(label, second)
    return {"label vs second": rel, "ceiling": math.sqrt(max(rel, 0.0))}


def plan_key(r: Any) -> str:
    """A record's key in the partial file."""
    return f"{r.study}|{r.trial}"


def current_rows(done: dict[str, Any], records: list[PlanRecord]) -> dict[str, Any]:
    """The partial file's rows that belong to ``records``: a row is keyed by study and trial, and
    a records file measured again (new plans under the same names) would otherwise pair one
    plan's label with another plan's second measurement. A row stands when its stored label is
    its record's fitness."""
    fitness = {plan_key(r): r.fitness for r in records}
    kept = {k: v for k, v in done.items() if k in fitness and v["label"] == fitness[k]}
    if len(kept) < len(done):
        print(f"measuring again: {len(done) - len(kept)} rows of the partial file belong to other "
              "records", flush=True)
    return kept


def _rho(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    return float(spearmanr(a, b).statistic)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--label-tokens", type=int, default=2048, help="tokens of the studies' fitness")
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--studies", nargs="+", default=None,
                   help="measure only the studies whose name contains one of these (default: all)")
    p.add_argument("--curve-sizes", type=int, nargs="+", default=[4, 6],
                   help="numbers of training studies in the learning curve (besides all the others)")
    p.add_argument("--curve-subsets", type=int, default=10,
                   help="random choices of the training studies per size of the learning curve")
    p.add_argument("--shard", type=shard_of, default=None, metavar="I/N",
                   help="measure every N-th plan from the I-th only, into its own partial file "
                        "(run I = 0..N-1 side by side, then once without --shard to write the "
                        "result)")
    args = p.parse_args()

    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    records, _ = predictor_records(loaded.device.type)
    chosen = [r for r in records if args.studies is None or any(s in r.study for s in args.studies)]
    # The studies the bar is set on first: an interrupted run has measured what matters.
    chosen.sort(key=lambda r: not deciding(r.target))
    ev = predictor_evaluator(loaded, (args.label_tokens, 2 * args.label_tokens))
    done = remeasured(ev, records, chosen, RUNS / "predictor_ceiling.partial.json", args.shard,
                      args.label_tokens)
    ev.close()
    if args.shard is not None:
        print(f"shard {args.shard[0]}/{args.shard[1]} done; run again without --shard to write the result")
        return

    table = FeatureTable.from_profile(build_profile(loaded, DataConfig(), progress=False))
    rows = study_rows(table, records, done, args.members, args.seed)
    if not rows:
        raise SystemExit("no study has all of its plans measured yet; rerun to resume")
    agree = max(abs(d["again"] - d["label"]) / d["label"] for d in done.values())
    print_table(rows, list(rows[0]))
    summary = minimum_over_deciding(rows)
    print("minimum over the 60-75% studies:", {k: round(v, 3) for k, v in summary.items()})
    curve = learning_curve(table, records, args.curve_sizes, args.curve_subsets, args.members, args.seed)
    print_table(curve, list(curve[0]) if curve else [])
    path = write_json(f"predictor_ceiling_{loaded.device.type}.json", {
        "command": command_line(), "environment": environment(),
        "records": sum(r["n"] for r in rows), "records_digest": records_digest(records),
        "label_tokens": args.label_tokens,
        "default_model": DEFAULT_MODEL,
        "members": args.members, "seed": args.seed, "label_reproduced_rel": agree,
        "rows": rows, "min_over_deciding": summary,
        "learning_curve": curve, "curve_subsets": args.curve_subsets,
    }, protocol={"device": loaded.device.type, "dtype": args.dtype, "model": args.model, "data": "embedded",
                 "calibration": "the predictor studies' profile (studies/smollm2-70.yaml)",
                 "evaluation": f"search tokens {args.label_tokens}-{2 * args.label_tokens}",
                 "seeds": [args.seed]})
    print(f"\nwrote {path}")


def minimum_over_deciding(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per rank column, its minimum over the 60-75% studies' rows (empty when only studies
    outside 60-75% were measured, as with --studies 50-tpe)."""
    decide = [r for r in rows if deciding(r["target"])]
    columns = dict.fromkeys(k for r in decide for k in r if " vs " in k or k == "ceiling")
    return {k: min(r[k] for r in decide if k in r) for k in columns}


def both_halves(records: list[PlanRecord], done: dict[str, Any]) -> list[PlanRecord] | None:
    """Each record labelled with its perplexity on both halves (twice the tokens, half the
    noise variance), or None unless every record was measured again."""
    if any(plan_key(r) not in done for r in records):
        return None
    # NLL adds over tokens: log ppl on both halves is the mean of the two logs.
    return [dataclasses.replace(r, tokens=2 * r.tokens, fitness=math.exp(
        (math.log(r.fitness) + math.log(done[plan_key(r)]["second"])) / 2)) for r in records]


def study_rows(table: FeatureTable, records: list[PlanRecord], done: dict[str, Any], members: int,
               seed: int) -> list[dict[str, Any]]:
    """Per study whose plans are all measured again: the labels' reliability and ceiling, each
    model's held-out rank against either measurement and both; for the default model also
    trained with the study in its data (``in-sample``: what its design can fit at all) and,
    when every study was measured again, trained and scored on both halves."""
    models = list(dict.fromkeys((DEFAULT_MODEL, "additive")))
    held = {m: hold_out(table, records, model=m, members=members, seed=seed) for m in models}
    fitted = Predictor.train(table, records, model=DEFAULT_MODEL, members=members, seed=seed)
    in_sample = fitted.predict([r.plan for r in records])[0]
    relabelled = both_halves(records, done)
    held_both = (hold_out(table, relabelled, model=DEFAULT_MODEL, members=members, seed=seed)
                 if relabelled is not None else None)
    rows = []
    for study in sorted({r.study for r in records}):
        idx = [i for i, r in enumerate(records) if r.study == study]
        if any(plan_key(records[i]) not in done for i in idx):
            continue  # not all of its plans are measured yet
        label = np.log([records[i].fitness for i in idx])
        second = np.log([done[plan_key(records[i])]["second"] for i in idx])
        both = (label + second) / 2
        row: dict[str, Any] = {"study": study, "target": records[idx[0]].target, "n": len(idx),
                               **reliability(label, second)}
        for model, h in held.items():
            row[f"{model} vs label"] = _rho(h.mean[idx], label)
            row[f"{model} vs second"] = _rho(h.mean[idx], second)
            row[f"{model} vs both"] = _rho(h.mean[idx], both)
        row[f"{DEFAULT_MODEL} in-sample vs label"] = _rho(in_sample[idx], label)
        if held_both is not None:
            row[f"{DEFAULT_MODEL} trained on both vs both"] = _rho(held_both.mean[idx], both)
        rows.append(row)
    return rows


def learning_curve(table: FeatureTable, records: list[PlanRecord], sizes: list[int], subsets: int,
                   members: int, seed: int) -> list[dict[str, Any]]:
    """Per 60-75% study, the default model's held-out Spearman against its labels when trained
    on ``k`` of the other studies (``subsets`` random choices of them; all of them once): does
    the rank quality still grow with more studies of these kinds?"""
    rng = np.random.default_rng(seed)
    studies = sorted({r.study for r in records})
    out = []
    for study in [s for s in studies if deciding(next(r.target for r in records if r.study == s))]:
        others = [s for s in studies if s != study]
        test = [r for r in records if r.study == study]
        label = np.log([r.fitness for r in test])
        for k in [*sorted({k for k in sizes if 2 <= k < len(others)}), len(others)]:
            picks = [others] if k == len(others) else [
                list(rng.choice(others, size=k, replace=False)) for _ in range(subsets)]
            rhos = []
            for pick in picks:
                train = [r for r in records if r.study in pick]
                pred = Predictor.train(table, train, model=DEFAULT_MODEL, members=members, seed=seed)
                rhos.append(_rho(pred.predict([r.plan for r in test])[0], label))
            out.append({"study": study, "studies trained on": k, "subsets": len(picks),
                        "mean": float(np.mean(rhos)), "min": min(rhos), "max": max(rhos)})
    return out


if __name__ == "__main__":
    main()
