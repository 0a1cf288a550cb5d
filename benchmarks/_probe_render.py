"""The window-probe sentence of README.md and its table in docs/results.md, rendered from the
JSON benchmarks/predictor_probe.py wrote (nothing until it has)."""

from __future__ import annotations

from typing import Any

from _common import records_result
from _damage_render import by_ranking, study_table
from predictor import deciding

NAME = "predictor_probe_cpu.json"
INSIDE = "predictor_probe_cpu_w0.json"  # the probe on the first window of each label's own tokens
FRESH = "predictor_probe_cpu_w0_fresh.json"  # the same on the fresh studies, weights from the committed


def _cost(d: dict[str, Any]) -> str:
    """A probe's tokens and seconds against a label evaluation's, measured in the same run."""
    c, first = d["cost"], d["fitnesses"][0]
    share = c["probe_seconds"][first] / c["label_seconds"]
    return (f"{d['probe_tokens']} tokens and {c['probe_seconds'][first]:.2f} s of one core per plan, "
            f"{share:.0%} of a {d['label_tokens']}-token label evaluation's {c['label_seconds']:.2f} s")


def _spread(s: dict[str, dict[str, Any]], col: str) -> str:
    """A ranking's median and count below 0.9 over the 60-75% studies (``s``: by_ranking)."""
    return f"median {s[col]['median']:.3f}, {s[col]['below_0.9']} below 0.9"


def _figures(s: dict[str, dict[str, Any]], col: str, extra: str = "") -> str:
    """A ranking's lowest, then its :func:`_spread` (and ``extra``) in parentheses."""
    return f"{s[col]['min']:.3f} ({_spread(s, col)}{extra})"


def _below(d: dict[str, Any], col: str) -> str:
    """The 60-75% studies ``col`` ranks below 0.9, worst first (4 decimals: 0.8998 is below)."""
    low = sorted((r for r in d["studies"] if deciding(r["target"]) and r[col] < 0.9), key=lambda r: r[col])
    return ", ".join(f"{r['study']} {r[col]:.4f}" for r in low)


def render_sentence() -> str:
    """One sentence for the README's predictor paragraph (empty until measured)."""
    d, stale = records_result(NAME)
    if d is None:
        return ""
    if stale:
        return f" The window-probe check (`benchmarks/predictor_probe.py`) has no current result: {stale}."
    s = by_ranking(d)
    n = sum(1 for r in d["studies"] if deciding(r["target"]))

    def listed(col: str) -> str:  # the studies below 0.9 named too
        return _figures(s, col, f": {_below(d, col)}" if s[col]["below_0.9"] else "")

    stacks = " and ".join(f"{listed(f'stack ({f})')} with the {f} probe" for f in d["fitnesses"])
    alone = ", ".join(f"{f} {s[f'probe ({f})']['min']:.3f} ({s[f'probe ({f})']['below_0.9']} below)"
                      for f in d["fitnesses"])
    met = any(s[f"stack ({f})"]["below_0.9"] == 0 for f in d["fitnesses"])
    verdict = ("That meets the 0.9 bar on every study, with a measurement of each plan" if met
               else "The 0.9 bar is not met with it either")
    return (f" A measured window (`benchmarks/predictor_probe.py`): each plan's fitness on search window "
            f"{d['window']}, none of the labels' tokens ({_cost(d)}), stacked with the damage blend (two "
            f"weights fitted on the other kinds' plans, nested), ranks the {n} studies at 60-75% with each "
            f"kind held out at a lowest Spearman of {stacks}, against the blend's {_figures(s, 'blend')} and "
            f"the default model's {_figures(s, 'default')}; each probe alone: {alone}. {verdict}: the probe "
            f"is a forward pass per candidate, not a model (a study probes its short list with "
            f"`predictor.probe`).{_inside()}")


def _inside() -> str:
    """The clause on the probe of window 0, the first quarter of each label's own tokens (empty
    until measured): how a search's first rung would be ordered by a prefix of what it measures."""
    d, stale = records_result(INSIDE)
    if d is None or stale:
        return ""
    s = by_ranking(d)
    each = " and ".join(f"{s[f'stack ({f})']['min']:.3f} with the {f} probe ({_spread(s, f'stack ({f})')})"
                        for f in d["fitnesses"])
    return (f" Probed on window {d['window']} instead, the first quarter of each label's own tokens (so a "
            f"probe and its label share them, as a search's first rung and a prefix of it would), the "
            f"stack's lowest is {each} (`{d['manifest']['command']}`).{_fresh()}")


def _fresh() -> str:
    """The clause on the fresh studies (empty until measured): the window-0 stack, its weights
    fitted on the committed plans, ranking studies at seeds no model or weight was chosen on."""
    d, stale = records_result(FRESH)
    if d is None or stale:
        return ""
    s = by_ranking(d)
    n = sum(1 for r in d["studies"] if deciding(r["target"]))

    stacks = " and ".join(f"{_figures(s, f'stack ({f})')} with the {f} probe" for f in d["fitnesses"])
    low = _below(d, f"stack ({d['fitnesses'][0]})")
    listed = f" ({low})" if low else ""
    return (f" On the {n} fresh studies at 60-75% (other seeds, which no model or weight was chosen on; "
            f"models and weights from every committed plan), it ranks at a lowest {stacks}{listed}, "
            f"against the blend's {_figures(s, 'blend')} (`{d['manifest']['command']}`).{_retested(d)}")


def _retested(d: dict[str, Any]) -> str:
    """The clause on the retested fresh studies (empty without them): each ranking's lowest
    Spearman against a second measurement that shares no token with the probe or the label."""
    rows = d.get("retested") or []
    if not rows:
        return ""
    cols = [c.removesuffix(" vs second") for c in rows[0]
            if c.endswith(" vs second") and c != "label vs second"]
    low = {c: min(r[f"{c} vs second"] for r in rows) for c in cols}
    worst = min(rows, key=lambda r: r["label vs second"])
    each = ", ".join(f"{c} {low[c]:.3f}" for c in cols)
    return (f" Against a second measurement of the plans of {len(rows)} of them (the next "
            f"{d['label_tokens']} search tokens, none a probe's or a label's), the lowest Spearman is "
            f"{each}; the labels themselves match it at a lowest {worst['label vs second']:.3f} "
            f"({worst['study']}). A ranking that agrees with a label better than a second measurement "
            f"does shares that label's noise, as a window-0 probe (it reads the label's first tokens) can.")


def render_lines() -> list[str]:
    """Its per-study table for docs/results.md (empty until measured)."""
    d, stale = records_result(NAME)
    if d is None:
        return []
    note = f" *Not current: {stale}.*" if stale else ""
    weights = "; ".join(f"{kind} " + ", ".join(f"{f} ({w['model']:.3f}, {w['probe']:.3f})"
                                               for f, w in per.items()) for kind, per in d["weights"].items())
    lines = ["", f"**Measured window** (`{d['manifest']['command']}`).{note} Each plan probed on search "
             f"window {d['window']} ({_cost(d)}). Spearman per study, its kind held out: `default`, the "
             f"`{d['default_model']}` model; `blend`, plus the measured damage; `probe (F)`, the probe's "
             f"fitness F alone; `stack (F)`, the blend's prediction and the log-probe weighted "
             f"as fitted on the other kinds' plans (each predicted without its own kind and the held-out "
             f"one). Weights (model, probe) per held-out kind: {weights}."]
    return lines + study_table(d, list(by_ranking(d))) + _retest_lines()


def _retest_lines() -> list[str]:
    """The fresh result's retested studies, one row each (empty without them)."""
    d, stale = records_result(FRESH)
    rows = (d or {}).get("retested") or []
    if d is None or stale or not rows:
        return []
    cols = [c for c in rows[0] if c not in ("study", "target", "n")]
    return ["", f"**Against a second measurement** (`{d['manifest']['command']}`). The fresh studies "
            f"whose plans were measured again on the next {d['label_tokens']} search tokens: the labels' "
            "reliability "
            "(`label vs second`, and its `ceiling`) and each ranking's Spearman against the second "
            "measurement, which shares no token with the probe (window 0) or the label.", "",
            "| study | plans | " + " | ".join(cols) + " |", "|" + " --- |" * (len(cols) + 2),
            *(f"| {r['study']} | {r['n']} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |" for r in rows)]
