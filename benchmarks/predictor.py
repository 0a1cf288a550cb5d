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
``benchmarks/predictor_efficiency.py``'s results.
"""

from __future__ import annotations

import argparse
import json
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
    ARCHIVED_NOTE,
    RESULTS,
    add_model_args,
    command_line,
    environment,
    predictor_records,
    print_table,
    result_path,
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
    return {"suite": "quality", "records": len(records), "records_from": source, "studies": studies,
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




def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "not reached"
    return f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"


def render_readme() -> str:
    """The README's sentence on the default predictor model, from the quality results."""
    path, archived = result_path("predictor_quality_cpu.json")
    q = json.loads(path.read_text())
    if archived or "default_model" not in q:
        return (f"The default predictor model (`{DEFAULT_MODEL}`) has no current held-out measurement; "
                f"`python benchmarks/predictor.py` measures every model.")
    rows = {r["model"]: r for r in q["table"]}
    best, add = rows[q["default_model"]], rows.get("additive")
    against = ""
    if add is not None and q["default_model"] != "additive":
        figures = [add[k] for k in ("min_spearman_kind_out", "min_spearman", "mean_kendall") if k in add]
        listed = ", ".join(f"{v:.3f}" for v in figures)
        against = f" (the additive ridge baseline, in the same order: {listed})"
    agree = "" if q["default_model"] == DEFAULT_MODEL else \
        f" **The library's default is `{DEFAULT_MODEL}`: it differs from this measurement.**"
    return _quality_sentence(q, best, against, agree) + _ceiling_sentence() + _efficiency_sentence()


def _ceiling_sentence() -> str:
    """Whether the labels' own noise caps the weakest measured study (empty until measured), and
    what the model reaches there given that study's plans, less noisy labels, more studies."""
    path = RESULTS / "predictor_ceiling_cpu.json"
    if not path.is_file():
        return ""
    c = json.loads(path.read_text())
    model = c["default_model"]
    rows = [r for r in c["rows"] if deciding(r["target"])]
    if not rows:
        return ""
    worst = min(rows, key=lambda r: r[f"{model} vs label"])
    # The check is its own run (its studies, its default model then): say which, so that it is
    # not read as a statement on the quality result above when the two differ.
    scope = f"In the label-noise check of the `{model}` model on {len(c['rows'])} studies"
    if worst["ceiling"] < 0.9:
        return (f" {scope}, the labels' own noise caps {worst['study']} near "
                f"{worst['ceiling']:.2f} (`benchmarks/predictor_ceiling.py`).")
    text = (f" {scope}, on the weakest 60-75% study ({worst['study']}) the "
            f"labels' noise is not what caps it: "
            f"re-measured on disjoint tokens, the plans rank like their labels at "
            f"{worst['label vs second']:.3f}, a ceiling near {worst['ceiling']:.2f} against the model's "
            f"{worst[model + ' vs label']:.3f}")
    more, reached = [], []
    if (ins := worst.get(f"{model} in-sample vs label")) is not None:
        more.append(f"trained with that study's own plans among its data it ranks them at {ins:.3f}")
        reached.append(ins)
    if (both := worst.get(f"{model} trained on both vs both")) is not None:
        more.append(f"trained and scored on labels of twice the tokens, at {both:.3f}")
        reached.append(both)
    curve = [p for p in c.get("learning_curve", []) if p["study"] == worst["study"]]
    if len(curve) > 1:
        more.append("trained on " + ", ".join(str(p["studies trained on"]) for p in curve[:-1])
                    + f" or all {curve[-1]['studies trained on']} other studies, at "
                    + ", ".join(f"{p['mean']:.3f}" for p in curve) + " (means over random choices)")
        reached += [p["mean"] for p in curve]
    verdict = (": neither its own plans, less noisy labels nor more studies of these kinds bring it to 0.9"
               if reached and max(reached) < 0.9 else "")
    return (text + ("; " + "; ".join(more) if more else "") + verdict
            + " (`benchmarks/predictor_ceiling.py`).")


def _quality_sentence(q: dict[str, Any], best: dict[str, Any], against: str, agree: str) -> str:
    def met(ok: bool | None) -> str:
        return "met" if ok else "not met"

    bars = [f"Spearman >= 0.9 on every such study {met(best['min_spearman'] >= 0.9)}",
            f"top-10% recall >= 0.6 at 70% {met((best['recall_70'] or 0) >= 0.6)} "
            f"({_fmt(best['recall_70'], 2)})"]
    if best.get("kendall_above_additive") is not None:
        bars.append(f"Kendall above the additive model's within each target "
                    f"{met(best['kendall_above_additive'])}")
    kind_out = best.get("min_spearman_kind_out")
    why = (f"ranked held-out studies best among the models that extrapolate: each of "
           f"{len(q['studies'])} studies predicted by a model trained on the others' plans, its lowest "
           f"Spearman over the 60-75% studies was {kind_out:.3f} with the other seeds of the study's "
           f"kind held out too and {best['min_spearman']:.3f} without," if kind_out is not None else
           f"ranked held-out studies best: each of {len(q['studies'])} studies predicted by a model "
           f"trained on the others, its lowest Spearman over the 60-75% studies was "
           f"{best['min_spearman']:.3f},")
    return (f"Short-listing uses the `{q['default_model']}` predictor model by default, because it "
            f"{why} and its mean Kendall {best['mean_kendall']:.3f}{against}. "
            f"Against the bar: {'; '.join(bars)}.{agree} Every model's figures: "
            f"[results.md](docs/results.md#the-accuracy-predictor).")


def _efficiency_sentence() -> str:
    """Evaluations to the ramp's fitness and verified perplexity, TPE alone against TPE with a
    pretrained short-list, from the current efficiency results (empty without them)."""
    path, archived = result_path("predictor_efficiency_cpu.json")
    if archived or not path.is_file():
        return ""
    e = json.loads(path.read_text())
    stats = {(s["arm"], s["metric"]): s for s in e["summary"]}
    if ("pretrained", "evals_to_ramp") not in stats or ("tpe", "evals_to_ramp") not in stats:
        return ""

    def part(arm: str) -> str:
        reach, ppl = stats[(arm, "evals_to_ramp")], stats[(arm, "best_wanda_ppl")]
        return (f"reached the ramp prior's fitness in {reach['reached']} of {reach['runs']} seeds "
                f"(median {_fmt(reach['median'], 0)} real evaluations), verified median "
                f"{_fmt(ppl['median'], 1)}")

    tokens = e["settings"]["max_tokens"]
    additive = (f" (the same with the additive model: {part('pretrained_additive')})"
                if ("pretrained_additive", "evals_to_ramp") in stats else "")
    evo = stats.get(("evopress", "best_wanda_ppl"))
    versus = (f"; the EvoPress-style sampler with {e['settings']['evopress_tokens']:,} tokens verified "
              f"median {_fmt(evo['median'], 1)} ({evo['runs']} seed{'s' if evo['runs'] > 1 else ''})"
              if evo else "")
    return (f" At 70% with {tokens:,} search tokens (`benchmarks/predictor_efficiency.py`, one "
            f"calibration draw; the noise floor at 70% is in BENCHMARKS.md), TPE with a short-list "
            f"(`{e['default_model']}`, the default when measured) pretrained on 50/60/75% studies "
            f"{part('pretrained')}{additive}; TPE alone {part('tpe')}{versus}.")


def _kept_note(e: dict[str, Any]) -> list[str]:
    """Which arms the efficiency result took from an earlier run (``--keep``), if any."""
    kept = sorted({(r["arm"], r["kept_from"]) for r in e["runs"] if r.get("kept_from")})
    if not kept:
        return []
    arms = ", ".join(dict.fromkeys(a for a, _ in kept))
    commits = ", ".join(sorted({c[:10] for _, c in kept}))
    return ["", f"Arms {arms}: kept from the committed result of an earlier run with the same settings, "
            f"verification and library code (measured at commit {commits}); they use no predictor, and "
            f"only the default predictor model changed (`--keep`). The other arms ran at this result's "
            f"commit."]


def render_results() -> str:
    """The predictor section of docs/results.md, from the results JSON files only."""
    q_path, archived = result_path("predictor_quality_cpu.json")
    q = json.loads(q_path.read_text())
    if archived or "default_model" not in q:
        lines = [f"*{ARCHIVED_NOTE}.* Held-out quality: `{q_path.relative_to(RESULTS.parent.parent)}`."]
    else:
        lines = [f"**Held-out quality** (`{q['manifest']['command']}`; {q['records']} plans of SmolLM2-135M "
                 f"from {len(q['studies'])} studies at 50-75% with TPE, CMA-ES, random and EvoPress-style "
                 f"samplers, `benchmarks/predictor_data.py`; fitness = perplexity on the first "
                 f"{q['fidelity_tokens']} search tokens; each study predicted by a predictor trained on "
                 f"the other studies; {q['members']} members, seed {q['seed']}). Coverage: share of "
                 f"held-out plans inside the ensemble's mean +- 1 std.", "",
                 "| model | plans | n | Spearman | Kendall | MAE (log) | top-10% recall | coverage |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in q["rows"]:
            if r["group"] != "study":
                lines.append(f"| {r['model']} | {r['plans']} | {r['n']} | {_fmt(r['spearman'])} | "
                             f"{_fmt(r['kendall'])} | {_fmt(r['mae_log'])} | "
                             f"{_fmt(r['top10_recall'], 2)} | {_fmt(r['coverage'], 2)} |")
        lines += ["", "Spearman on each held-out study (every other figure per study is in the JSON):", ""]
        lines += _study_lines(q)
        if all("kind_held_out" in m for m in q["models"].values()):
            lines += ["", "The same with each study held out together with the other seeds of its kind "
                      "(target and sampler):", ""]
            lines += _study_lines(q, kind_out=True)
        lines += ["", f"Default model: **{q['default_model']}** ({q['rule']}; deciding studies: "
                  f"{', '.join(q['deciding_studies'])}).", "",
                  "| model | min Spearman (60-75%) | same, kind held out | mean Kendall | "
                  "70% top-10% recall | Kendall above additive in every target | extrapolates | "
                  "meets the bar |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in q["table"]:
            lines.append(f"| {r['model']} | {_fmt(r['min_spearman'])} | "
                         f"{_fmt(r.get('min_spearman_kind_out'))} | {_fmt(r['mean_kendall'])} | "
                         f"{_fmt(r['recall_70'], 2)} | {r['kendall_above_additive']} | "
                         f"{r.get('extrapolates', 'not measured')} | {r['meets_bar']} |")
        lines += ["", f"Parity plot of the default model: `benchmarks/results/{q['parity_plot']}`."]
    e_path, e_archived = result_path("predictor_efficiency_cpu.json")
    if e_path.is_file() and not e_archived:
        e = json.loads(e_path.read_text())
        lines += ["", f"**Sample efficiency at {e['target']:.0%}** (`{e['manifest']['command']}`; see the "
                  f"script's docstring for the arms). Ramp prior (slope 0.3) in the same run: fitness "
                  f"{e['ramp']['fitness']:.2f}, verified {e['ramp']['wanda_ppl']:.2f}.", "",
                  "| arm | metric | runs reaching it | median | min | max |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for s in e["summary"]:
            lines.append(f"| {s['arm']} | {s['metric']} | {s['reached']} of {s['runs']} | "
                         f"{_fmt(s['median'], 2)} | {_fmt(s['min'], 2)} | {_fmt(s['max'], 2)} |")
        lines += _kept_note(e)
    elif e_path.is_file():
        lines += ["", f"*Sample efficiency: {ARCHIVED_NOTE}* (`benchmarks/predictor_efficiency.py` "
                  f"measures it again)."]
    return "\n".join(lines + _ceiling_lines())


def _study_lines(q: dict[str, Any], kind_out: bool = False) -> list[str]:
    """One row per held-out study, one Spearman column per model (``kind_out``: each study
    held out with its kind's other seeds)."""
    models = list(dict.fromkeys(r["model"] for r in q["rows"]))
    if kind_out:
        spear = {(m, s): v["spearman"] for m in models
                 for s, v in q["models"][m]["kind_held_out"]["per_study"].items()}
    else:
        spear = {(r["model"], r["plans"]): r["spearman"] for r in q["rows"] if r["group"] == "study"}
    lines = ["| study | " + " | ".join(models) + " |", "| --- |" + " --- |" * len(models)]
    for study in q["studies"]:
        lines.append(f"| {study} | " + " | ".join(_fmt(spear.get((m, study))) for m in models) + " |")
    return lines


def _ceiling_lines() -> list[str]:
    """The labels' own noise (benchmarks/predictor_ceiling.py), when measured."""
    path = RESULTS / "predictor_ceiling_cpu.json"
    if not path.is_file():
        return []
    c = json.loads(path.read_text())
    model = c["default_model"]
    cols = ["label vs second", "ceiling", f"{model} vs label", f"{model} vs second", f"{model} vs both",
            "additive vs label", "additive vs second", "additive vs both"]
    # Later runs add these: the default model fitted with the study in its data, and trained
    # and scored on both halves (when every study was measured again).
    cols += [k for k in (f"{model} in-sample vs label", f"{model} trained on both vs both")
             if all(k in r for r in c["rows"])]
    lines = ["", f"**The labels' own noise** (`{c['manifest']['command']}`): every plan measured again on "
             f"the next {c['label_tokens']} search tokens (disjoint from its label's; the label itself "
             f"reproduced to {c['label_reproduced_rel']:.1e} relative). Spearman per study: the two "
             f"measurements against each other (r), the ceiling sqrt(r) that a predictor of the "
             f"noise-free fitness would reach against one measurement, and the held-out predictions "
             f"against each and against both halves together (a label with half the noise). Only "
             f"studies whose plans are all measured have a row.", "",
             "| study | plans | " + " | ".join(cols) + " |",
             "| --- | --- | " + " | ".join("---" for _ in cols) + " |"]
    for r in c["rows"]:
        lines.append(f"| {r['study']} | {r['n']} | " + " | ".join(_fmt(r[k]) for k in cols) + " |")
    m = c["min_over_deciding"]
    lines += ["", "Minimum over the measured 60-75% studies: "
              + ", ".join(f"{k} {_fmt(m[k])}" for k in cols if k in m) + "."]
    return lines + _curve_lines(c)


def _curve_lines(c: dict[str, Any]) -> list[str]:
    """The learning curve of the ceiling result, one row per 60-75% study (empty without it)."""
    curve = c.get("learning_curve") or []
    if not curve:
        return []
    sizes = sorted({p["studies trained on"] for p in curve})
    cell = {(p["study"], p["studies trained on"]): p for p in curve}
    lines = ["", f"**More studies of these kinds** (same run): the `{c['default_model']}` model's held-out "
             f"Spearman against each 60-75% study's labels when trained on k of the other studies, the "
             f"mean [min, max] over {c['curve_subsets']} random choices of them (all of them: one).", "",
             "| study | " + " | ".join(f"k = {k}" for k in sizes) + " |",
             "| --- | " + " | ".join("---" for _ in sizes) + " |"]
    for study in dict.fromkeys(p["study"] for p in curve):
        lines.append(f"| {study} | " + " | ".join(
            f"{_fmt(p['mean'])} [{_fmt(p['min'])}, {_fmt(p['max'])}]" if (p := cell.get((study, k))) else ""
            for k in sizes) + " |")
    return lines


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
