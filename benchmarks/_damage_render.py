"""The measured-damage sentence of README.md and its table in docs/results.md, rendered from
the JSON benchmarks/predictor_damage.py wrote (nothing until it has)."""

from __future__ import annotations

from typing import Any

from _common import records_result
from predictor import deciding

NAME = "predictor_damage_cpu.json"
COLUMNS = ("default", "blend", "default kind out", "blend kind out", "blend kind out other target", "damage",
           "damage other target")


def _result() -> tuple[dict[str, Any] | None, str]:
    """The damage result, and why it is not current (see :func:`records_result`)."""
    return records_result(NAME)


def by_ranking(d: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Ranking name -> its min, median and count below 0.9 over the 60-75% studies."""
    return {r["ranking"]: r for r in d["rows"]}


def _cost(d: dict[str, Any], tokens: int | None = None) -> str:
    """What the curves on ``tokens`` search tokens (the main ones by default) cost."""
    c = d["cost"][str(tokens or d["tokens"][0])]
    return (f"{c['evaluations']} evaluations, {c['tokens']:,} search tokens, "
            f"{c['tokens'] / c['study_tokens']:.1f} times a 40-plan predictor study's, "
            f"{c['seconds'] / 60:.0f} min of one CPU core")


def render_sentence() -> str:
    """One sentence for the README's predictor paragraph (empty until measured)."""
    d, stale = _result()
    if d is None:
        return ""
    if stale:
        return (f" The measured-damage check (`benchmarks/predictor_damage.py`) has no current "
                f"result: {stale}.")
    s = by_ranking(d)
    kind, blend = s["default kind out"], s["blend kind out"]
    n = sum(1 for r in d["studies"] if deciding(r["target"]))
    meets = blend["min"] >= 0.9 and s["blend"]["min"] >= 0.9
    centres = " and ".join(f"`{c}`" for c in d["centres"])
    targets = "/".join(f"{t:.0%}".rstrip("%") for t in d["targets"]) + "%"
    return (f" Measured damage (`benchmarks/predictor_damage.py`): block curves around {centres} at "
            f"{targets} ({_cost(d)}), blended by distance and added to the `{d['default_model']}` model's "
            f"prediction, move its lowest Spearman over the {n} studies at 60-75% from "
            f"{kind['min']:.3f} to {blend['min']:.3f} with each study's kind held "
            f"out ({kind['below_0.9']} and {blend['below_0.9']} studies below "
            f"0.9) and from {s['default']['min']:.3f} to {s['blend']['min']:.3f} with the study alone held "
            f"out; the damage alone, with nothing learned from any study, reaches a lowest "
            f"{s['damage']['min']:.3f} (median {s['damage']['median']:.3f}){_elsewhere(s)}{_cheaper(d)}. "
            + _ceilings(d)
            + ("That meets the 0.9 bar; " if meets else "The 0.9 bar is not met with it either; ")
            + "it is opt-in (`allocsearch predictor damage`, then `predictor train --damage`), not the "
            "short-lister's default, for the cost of its curves.")


def _elsewhere(s: dict[str, Any]) -> str:
    """The clause on curves of other targets (empty when the run measured one target)."""
    other = s.get("blend kind out other target")
    if other is None:
        return ""
    return (f"; each study's plans reading the curves of the nearest other target instead, as a study at "
            f"a target without curves would, the blend's lowest is {other['min']:.3f} "
            f"({other['below_0.9']} below 0.9, kind held out)")


def _ceilings(d: dict[str, Any]) -> str:
    """How far the studies the blend leaves below 0.9 (kind held out) are from the ceiling the
    labels' own noise sets, where benchmarks/predictor_ceiling.py measured it (empty else)."""
    c, stale = records_result("predictor_ceiling_cpu.json")
    if c is None or stale:
        return ""
    ceiling = {r["study"]: r["ceiling"] for r in c["rows"]}
    low = [r for r in d["studies"] if r["blend kind out"] < 0.9 and deciding(r["target"])]
    known = [r for r in low if r["study"] in ceiling]
    if not known:
        return ""
    pairs = ", ".join(f"{r['study']} {r['blend kind out']:.3f} of {ceiling[r['study']]:.3f}" for r in known)
    return (f"Of the {len(low)} studies it leaves below 0.9, the label-noise check measured {len(known)}: "
            f"the blend against the ceiling their labels' noise sets (`benchmarks/predictor_ceiling.py`), "
            f"{pairs}. ")


def _cheaper(d: dict[str, Any]) -> str:
    """The clauses on curves measured on fewer tokens (empty without any)."""
    s = by_ranking(d)
    return "".join(f"; with curves on {t} tokens each ({_cost(d, t)}), the blend's lowest is "
                   f"{s[f'blend kind out, {t} tokens']['min']:.3f} "
                   f"({s[f'blend kind out, {t} tokens']['below_0.9']} below 0.9, kind held out)"
                   for t in d["tokens"][1:])


def render_lines() -> list[str]:
    """Its per-study table for docs/results.md (empty until measured)."""
    d, stale = _result()
    if d is None:
        return []
    note = f" *Not current: {stale}.*" if stale else ""
    s = by_ranking(d)
    cols = [k for k in COLUMNS if k in s] + [k for k in s if k not in COLUMNS]
    lines = ["", f"**Measured damage** (`{d['manifest']['command']}`).{note} Block curves around "
             f"{', '.join(d['centres'])} at {', '.join(f'{t:g}' for t in d['targets'])} ({_cost(d)}); a "
             f"plan's damage is each centre's summed block rises at its sparsities, blended with weights "
             f"inverse to its mean squared distance from each centre, at the nearest measured target. "
             f"Spearman per held-out study: `default`, the `{d['default_model']}` model trained on the "
             f"other studies; `blend`, its prediction plus the damage scaled to the same spread within a "
             f"study (over the training studies); `kind out`, the study's other seeds held out too; "
             f"`other target`, each study's plans reading the curves of the nearest other measured target; "
             f"`damage`, the damage alone."]
    return lines + study_table(d, cols)


def study_table(d: dict[str, Any], cols: list[str]) -> list[str]:
    """A result's per-study Spearman table (``d["studies"]``, columns ``cols``) and the line that
    sums each column up over the 60-75% studies (``d["rows"]``)."""
    s = by_ranking(d)
    lines = ["", "| study | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    lines += [f"| {r['study']} | " + " | ".join(f"{r[k]:.3f}" for k in cols) + " |" for r in d["studies"]]
    each = [f"{k} min {s[k]['min']:.3f}, median {s[k]['median']:.3f}, {s[k]['below_0.9']} below 0.9"
            for k in cols]
    return [*lines, "", "Over the 60-75% studies: " + "; ".join(each) + "."]
