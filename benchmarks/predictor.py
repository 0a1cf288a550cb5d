"""Held-out quality of the accuracy predictor's models on SmolLM2-135M.

Each study benchmarks/predictor_data.py ran is predicted by a predictor trained on all the
others (leave-one-study-out): Spearman, Kendall, MAE in log space, top-10% recall and the
ensemble's +-1 std coverage, overall, per target and per study, for every registered model
(plain, monotone and residual XGBoost, LightGBM with linear leaves, a pairwise ranker,
scikit-learn's HistGradientBoosting, the additive ridge baseline). Each model is measured
twice: with each study held out alone, and held out together with the other seeds of its kind
(its target and sampler), as a user's new kind of study would be; and checked for
extrapolation on the real records (:func:`extrapolation`). The default model is the one with
the highest minimum Spearman over the 60-75% studies held out with their kind, among the models
that extrapolate; the JSON names it (``default_model``) and says whether it meets the bars of
issue 24. A parity plot of it.

    python benchmarks/predictor.py --suite quality            # ~40 min on one CPU core (27 studies)
    python benchmarks/predictor.py --suite quality --jobs 2   # two models at a time, ~20 min

Writes benchmarks/results/predictor_quality_<device>.json; ``python benchmarks/report.py``
writes the predictor section of docs/results.md from it and from
``benchmarks/predictor_efficiency.py``'s results (``_predictor_render.py``, ``_efficiency_render.py``).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    RESULTS,
    add_model_args,
    command_line,
    environment,
    predictor_records,
    print_table,
    records_digest,
    write_json,
)

from allocsearch.models import load_model
from allocsearch.predictor import FeatureTable, hold_out
from allocsearch.predictor.base import DEFAULT_MODEL, regressor_names
from allocsearch.predictor.evaluation import HeldOut, extrapolation_margin, importances, parity_plot
from allocsearch.predictor.model import Predictor

#: The targets whose held-out studies decide the default model (the range the issue sets).
DECIDING = (0.6, 0.75)


#: The extrapolation check (see :func:`extrapolation`), as the library's extrapolation test.
EXTRAPOLATION_QUANTILE = 0.3
LIGHTER_STEP = 0.05
EXTRAPOLATION_MARGIN = 0.01


def study_kind(record: Any) -> str:
    """A study's kind: its name less the seed (``pred-70-tpe-s1`` -> ``pred-70-tpe``)."""
    return re.sub(r"-s\d+$", "", record.study)


def deciding(target: float) -> bool:
    """Whether a study at ``target`` is one the bar is set on."""
    return DECIDING[0] - 1e-9 <= target <= DECIDING[1] + 1e-9


def suite_quality(args: argparse.Namespace) -> dict[str, Any]:
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    records, source = predictor_records(loaded.device.type)
    from allocsearch.data import DataConfig
    from allocsearch.profile import build_profile

    table = FeatureTable.from_profile(build_profile(loaded, DataConfig(), progress=False))
    rows: list[dict[str, Any]] = []
    per_kind: dict[str, Any] = {}
    helds = {}
    jobs = [(table, records, kind, args.members, args.seed) for kind in args.kinds]
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        for kind, (held, measured) in zip(args.kinds, pool.map(measure, *zip(*jobs, strict=True)),
                                          strict=True):
            helds[kind], per_kind[kind] = held, measured
            print(f"  {kind}: {measured['seconds']:.0f}s", flush=True)
    for kind, scores in per_kind.items():
        for group, named in (("all", {"all": scores["overall"]}), ("target", scores["per_target"]),
                             ("study", scores["per_study"])):
            for name, sc in named.items():
                rows.append({"model": kind, "group": group, "plans": name} | sc)
    decision = choose_default(per_kind, records)
    parity_plot(helds[decision["default_model"]], RESULTS / "predictor_parity.png",
                f"{decision['default_model']}, each study held out")
    print_table([r for r in rows if r["group"] != "study"],
                ["model", "plans", "n", "spearman", "kendall", "mae_log", "top10_recall", "coverage"])
    print_table(decision["table"], ["model", "min_spearman", "min_spearman_kind_out", "mean_kendall",
                                    "recall_70", "kendall_above_additive", "extrapolates", "meets_bar"])
    print(f"default model: {decision['default_model']} ({decision['rule']})")
    studies = sorted({r.study for r in records})
    return {"suite": "quality", "records": len(records), "records_from": source,
            "records_digest": records_digest(records), "studies": studies,
            "fidelity_tokens": records[0].tokens, "members": args.members, "seed": args.seed,
            "rows": rows, "models": per_kind, "parity_plot": "predictor_parity.png",
            "library_default": DEFAULT_MODEL} | decision


def measure(table: FeatureTable, records: list[Any], kind: str, members: int,
            seed: int) -> tuple[HeldOut, dict[str, Any]]:
    """One model's held-out predictions and scores (``seconds``: the leave-one-study-out's),
    and the importances of that model trained on every record; one process per model."""
    t = time.perf_counter()
    held = hold_out(table, records, model=kind, members=members, seed=seed)
    scores = held.scores() | {"seconds": time.perf_counter() - t}
    kind_out = hold_out(table, records, model=kind, members=members, seed=seed, group=study_kind).scores()
    scores["kind_held_out"] = {k: kind_out[k] for k in ("per_target", "per_study")}
    full = Predictor.train(table, records, model=kind, members=members, seed=seed)
    return held, scores | {"importances": importances(full, top=15),
                           "extrapolation": extrapolation(table, records, kind, members, seed)}


def extrapolation(table: FeatureTable, records: list[Any], kind: str, members: int,
                  seed: int) -> dict[str, Any]:
    """The library's extrapolation test on the real records, one deciding target at a time
    (:func:`allocsearch.predictor.evaluation.extrapolation_margin` on that target's records
    only, so a lower budget cannot borrow another target's level): ``margins`` per target, and
    whether every one is at least EXTRAPOLATION_MARGIN."""
    margins = {}
    for t in sorted({f"{r.target:.4g}" for r in records if deciding(r.target)}):
        mine = [r for r in records if f"{r.target:.4g}" == t]
        margins[t] = extrapolation_margin(table, mine, model=kind, members=members, seed=seed,
                                          quantile=EXTRAPOLATION_QUANTILE, step=LIGHTER_STEP)
    return {"margins": margins, "extrapolates": all(m >= EXTRAPOLATION_MARGIN for m in margins.values())}


def choose_default(per_kind: dict[str, Any], records: list[Any]) -> dict[str, Any]:
    """The default model: the highest minimum Spearman over the 60-75% studies held out with
    their kind, among the models that extrapolate (ties: the higher mean Kendall within those
    targets), with the bars the issue sets (on each study held out alone)."""
    target_of = {r.study: r.target for r in records}
    decide = sorted(s for s, t in target_of.items() if deciding(t))
    targets = sorted({f"{t:.4g}" for s, t in target_of.items() if s in decide})
    table = []
    for kind, sc in per_kind.items():
        spear = [sc["per_study"][s]["spearman"] for s in decide]
        spear_kind = [sc["kind_held_out"]["per_study"][s]["spearman"] for s in decide] \
            if "kind_held_out" in sc else spear
        kend = {t: sc["per_target"][t]["kendall"] for t in targets}
        above = all(kend[t] > per_kind["additive"]["per_target"][t]["kendall"] for t in targets) \
            if "additive" in per_kind and kind != "additive" else None
        recall = sc["per_target"].get("0.7", {}).get("top10_recall")
        extrapolates = sc.get("extrapolation", {}).get("extrapolates")
        table.append({"model": kind, "min_spearman": min(spear), "min_spearman_kind_out": min(spear_kind),
                      "mean_kendall": statistics.mean(kend.values()), "recall_70": recall,
                      "kendall_above_additive": above, "extrapolates": extrapolates,
                      "meets_bar": bool(min(spear) >= 0.9 and (recall or 0) >= 0.6 and above
                                        and extrapolates)})
    # A short-list must rank plans better than any the search has seen (the end of a search
    # lives there): only models that extrapolate may be the default, if any do.
    eligible = [r for r in table if r["extrapolates"]] or table
    # Decided with each study's kind held out: a user's new study need not resemble one the
    # predictor saw (another seed of the same target and sampler makes ranking much easier).
    best = max(eligible, key=lambda r: (r["min_spearman_kind_out"], r["mean_kendall"]))
    return {"default_model": best["model"], "deciding_studies": decide, "table": table,
            "rule": "highest minimum Spearman over the 60-75% studies, each held out with the other seeds "
                    "of its kind, among the models that extrapolate (ties: mean Kendall)"}


def _save(args: argparse.Namespace, out: dict[str, Any]) -> Path:
    return write_json(f"predictor_{args.suite}_{args.device_name}.json", out | {
        "command": command_line(), "model": args.model, "dtype": args.dtype,
        "environment": environment()},
        protocol={"device": args.device_name, "dtype": args.dtype, "model": args.model, "data": "embedded"})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_args(p)
    p.add_argument("--suite", choices=["quality"], default="quality")
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", nargs="+", default=regressor_names(), help="the models compared")
    p.add_argument("--jobs", type=int, default=1,
                   help="models measured side by side, one process (and core) each")
    args = p.parse_args()
    import torch

    args.device_name = "cuda" if args.device == "auto" and torch.cuda.is_available() else \
        ("cpu" if args.device == "auto" else args.device)
    out = suite_quality(args)
    print(f"wrote {_save(args, out)}")


if __name__ == "__main__":
    main()
