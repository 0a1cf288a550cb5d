"""The predictor's blocks of README.md and docs/results.md, rendered from the JSON files
benchmarks/predictor.py (held-out quality) and benchmarks/predictor_ceiling.py (the labels' own
noise) wrote; the efficiency and measured-damage parts come from :mod:`_efficiency_render` and
:mod:`_damage_render`, the window probe's from :mod:`_probe_render`, the fresh studies' from
:mod:`_fresh_render`."""

from __future__ import annotations

import json
from typing import Any

import _damage_render
import _efficiency_render
import _fresh_render
import _probe_render
from _common import ARCHIVED_NOTE, RESULTS, records_result, result_path
from _render_text import fmt, records_note
from predictor import deciding

from allocsearch.predictor.base import DEFAULT_MODEL


def _ceiling_result() -> tuple[dict[str, Any] | None, str]:
    """The label-noise result, and why it is not current (see :func:`records_result`)."""
    return records_result("predictor_ceiling_cpu.json")


def render_readme() -> str:
    """The README's paragraph on the default predictor model, from the quality results, and a
    bullet for each further check with a result (label noise, measured damage, efficiency)."""
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
    # The default model's sentence, then one bullet per further check that has a result.
    more = [t.strip() for t in (_ceiling_sentence(), _damage_render.render_sentence(),
                                _probe_render.render_sentence(),
                                _fresh_render.render_sentence(), _efficiency_render.render_sentence())
            if t.strip()]
    head = _quality_sentence(q, best, against, agree) + records_note(q)
    return "\n".join([head, "", *(f"- {t}" for t in more)] if more else [head])


def _ceiling_sentence() -> str:
    """Whether the labels' own noise caps the weakest measured study (empty until measured), and
    what the model reaches there given that study's plans, less noisy labels, more studies."""
    c, stale = _ceiling_result()
    if c is None:
        return ""
    if stale:
        return (f" The label-noise check (`benchmarks/predictor_ceiling.py`) has no result on the "
                f"current records: {stale}.")
    model = c["default_model"]
    rows = [r for r in c["rows"] if deciding(r["target"])]
    if not rows:
        return ""
    worst = min(rows, key=lambda r: r[f"{model} vs label"])
    # The check is its own run (its studies, its default model then): say which, so that it is
    # not read as a statement on the quality result above when the two differ.
    then = "" if model == DEFAULT_MODEL else " (the default when measured)"
    scope = f"In the label-noise check of the `{model}` model{then} on {len(c['rows'])} studies"
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
    elif (scored := worst.get(f"{model} vs both")) is not None:
        # Only the re-measured studies have the second half: the model trained on one-half labels.
        more.append(f"scored against labels of twice the tokens, at {scored:.3f}")
        reached.append(scored)
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
            f"({fmt(best['recall_70'], 2)})"]
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
                 f"held-out plans inside the ensemble's mean +- 1 std.{records_note(q)}", "",
                 "| model | plans | n | Spearman | Kendall | MAE (log) | top-10% recall | coverage |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in q["rows"]:
            if r["group"] != "study":
                lines.append(f"| {r['model']} | {r['plans']} | {r['n']} | {fmt(r['spearman'])} | "
                             f"{fmt(r['kendall'])} | {fmt(r['mae_log'])} | "
                             f"{fmt(r['top10_recall'], 2)} | {fmt(r['coverage'], 2)} |")
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
            lines.append(f"| {r['model']} | {fmt(r['min_spearman'])} | "
                         f"{fmt(r.get('min_spearman_kind_out'))} | {fmt(r['mean_kendall'])} | "
                         f"{fmt(r['recall_70'], 2)} | {r['kendall_above_additive']} | "
                         f"{r.get('extrapolates', 'not measured')} | {r['meets_bar']} |")
        lines += ["", f"Parity plot of the default model: `benchmarks/results/{q['parity_plot']}`."]
    return "\n".join(lines + _efficiency_render.render_lines() + _ceiling_lines()
                     + _damage_render.render_lines() + _probe_render.render_lines()
                     + _fresh_render.render_lines())


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
        lines.append(f"| {study} | " + " | ".join(fmt(spear.get((m, study))) for m in models) + " |")
    return lines


def _ceiling_lines() -> list[str]:
    """The labels' own noise (benchmarks/predictor_ceiling.py), when measured."""
    c, stale = _ceiling_result()
    if c is None:
        return []
    model = c["default_model"]
    cols = ["label vs second", "ceiling", f"{model} vs label", f"{model} vs second", f"{model} vs both",
            "additive vs label", "additive vs second", "additive vs both"]
    # Later runs add these: the default model fitted with the study in its data, and trained
    # and scored on both halves (when every study was measured again).
    cols += [k for k in (f"{model} in-sample vs label", f"{model} trained on both vs both")
             if all(k in r for r in c["rows"])]
    note = f" *Not current: {stale}.*" if stale else ""
    lines = ["", f"**The labels' own noise** (`{c['manifest']['command']}`).{note} Every plan measured "
             f"again on the next {c['label_tokens']} search tokens (disjoint from its label's; the label "
             f"itself reproduced to {c['label_reproduced_rel']:.1e} relative). Spearman per study: the two "
             f"measurements against each other (r), the ceiling sqrt(r) that a predictor of the "
             f"noise-free fitness would reach against one measurement, and the held-out predictions "
             f"against each and against both halves together (a label with half the noise). Only "
             f"studies whose plans are all measured have a row.", "",
             "| study | plans | " + " | ".join(cols) + " |",
             "| --- | --- | " + " | ".join("---" for _ in cols) + " |"]
    for r in c["rows"]:
        lines.append(f"| {r['study']} | {r['n']} | " + " | ".join(fmt(r[k]) for k in cols) + " |")
    m = c["min_over_deciding"]
    lines += ["", "Minimum over the measured 60-75% studies: "
              + ", ".join(f"{k} {fmt(m[k])}" for k in cols if k in m) + "."]
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
            f"{fmt(p['mean'])} [{fmt(p['min'])}, {fmt(p['max'])}]" if (p := cell.get((study, k))) else ""
            for k in sizes) + " |")
    return lines
