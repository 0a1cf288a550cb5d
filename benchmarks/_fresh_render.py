"""The fresh-studies sentence of README.md and its table in docs/results.md, rendered from the
JSON benchmarks/predictor_fresh.py wrote (nothing until it has)."""

from __future__ import annotations

from statistics import median
from typing import Any

from _common import records_result
from _damage_render import by_ranking
from predictor import deciding

NAME = "predictor_fresh_cpu.json"
COLUMNS = ("default", "blend", "additive", "damage")
RETEST = ("label vs second", "ceiling")  # the columns of studies measured again (--retest)


def _result() -> tuple[dict[str, Any] | None, str]:
    """The fresh result, and why it is not current (see :func:`records_result`)."""
    return records_result(NAME)


def _lowest(d: dict[str, Any], col: str, k: int = 3) -> list[dict[str, Any]]:
    """The ``k`` 60-75% studies ranked worst by ``col``."""
    return sorted((r for r in d["studies"] if deciding(r["target"])), key=lambda r: r[col])[:k]


def _traits(r: dict[str, Any]) -> str:
    """A study's spread, and its labels' ceiling where its plans were measured again."""
    ceiling = f", ceiling {r['ceiling']:.3f}" if "ceiling" in r else ""
    return f"spread {r['spread']:.3f}{ceiling}"


def _ceilings(d: dict[str, Any]) -> str:
    """The clause on the studies measured again (empty without any)."""
    tested = [r for r in d["studies"] if "ceiling" in r]
    if not tested:
        return ""
    under = [r for r in tested if r["ceiling"] < 0.9]
    listed = "".join(f"; {r['study']} {r['ceiling']:.3f} (blend {r['blend']:.3f})" for r in under)
    return (f" Of the {len(tested)} studies whose plans were measured again on the next {d['tokens']} "
            f"tokens, the ceiling is below 0.9 for {len(under)} (the root of the two measurements' Spearman: "
            f"about what a predictor that knew each plan's noise-free fitness would reach against these "
            f"labels){listed}.{_above(under, d['tokens'])}")


def _above(under: list[dict[str, Any]], tokens: int) -> str:
    """Where the blend ranks a study above its ceiling, why it can (empty elsewhere)."""
    above = [r["study"] for r in under if r["blend"] > r["ceiling"]]
    if not above:
        return ""
    return (f" The blend ranks {' and '.join(above)} above the ceiling: its damage curves are measured on "
            f"the same {tokens} tokens as the labels, so it can share their noise, which the ceiling "
            f"assumes no predictor does.")


def render_sentence() -> str:
    """One sentence for the README's predictor paragraph (empty until measured)."""
    d, stale = _result()
    if d is None:
        return ""
    if stale:
        return f" The fresh-studies check (`benchmarks/predictor_fresh.py`) has no current result: {stale}."
    s = by_ranking(d)
    n = sum(1 for r in d["studies"] if deciding(r["target"]))
    spread = median(r["spread"] for r in d["studies"] if deciding(r["target"]))

    def part(k: str) -> str:
        low = ", ".join(f"{r['study']} {r[k]:.3f} ({_traits(r)})" for r in _lowest(d, k, 2))
        return (f"{s[k]['min']:.3f} (median {s[k]['median']:.3f}, {s[k]['below_0.9']} below 0.9; lowest "
                f"{low})")

    return (f" On fresh studies (`benchmarks/predictor_fresh.py`): trained on all {d['records']:,} "
            f"committed records, the `{d['default_model']}` model ranks the plans of {len(d['studies'])} "
            f"studies of the same kinds at other seeds, which no model was trained or chosen on, at a "
            f"lowest Spearman of {part('default')} over the {n} at 60-75%; with measured damage "
            f"{part('blend')}; the additive baseline {s['additive']['min']:.3f} (median "
            f"{s['additive']['median']:.3f}). Spread: the interquartile range of a study's log-fitness, "
            f"median {spread:.3f} over these {n}.{_ceilings(d)} The held-out figures above are measured on "
            f"the studies the models were chosen on; these on plans of studies none of them saw.")


def render_lines() -> list[str]:
    """Its per-study table for docs/results.md (empty until measured)."""
    d, stale = _result()
    if d is None:
        return []
    note = f" *Not current: {stale}.*" if stale else ""
    s = by_ranking(d)
    cols = [k for k in COLUMNS if k in s]
    retest = [k for k in RETEST if any(k in r for r in d["studies"])]
    lines = ["", f"**Fresh studies** (`{d['manifest']['command']}`).{note} The `{d['default_model']}` model "
             f"and the additive baseline trained on every committed record ({d['records']:,}), ranking the "
             f"{d['fresh_records']:,} plans of studies of the same kinds at other seeds "
             f"(`benchmarks/predictor_data.py --fresh`). Spearman per study: `default`; `blend`, with the "
             f"measured damage of the {d['tokens']}-token curves; `additive`; `damage` alone. `spread`: the "
             f"interquartile range of the study's log-fitness"
             + (f"; `label vs second`, `ceiling`: for the studies measured again on the next {d['tokens']} "
                f"tokens, the two measurements' Spearman and its root." if retest else "."), "",
             "| study | " + " | ".join(extra := [*cols, "spread", *retest]) + " |",
             "| --- |" + " --- |" * len(extra)]
    for r in d["studies"]:
        cells = [f"{r[k]:.3f}" if k in r else "" for k in extra]
        lines.append(f"| {r['study']} | " + " | ".join(cells) + " |")
    each = [f"{k} min {s[k]['min']:.3f}, median {s[k]['median']:.3f}, {s[k]['below_0.9']} below 0.9"
            for k in cols]
    lines += ["", "Over the 60-75% studies: " + "; ".join(each) + "."]
    return lines
