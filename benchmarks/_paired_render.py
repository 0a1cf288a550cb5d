"""One sentence of docs/results.md per pair of a per-module suite's variants that differ in one
choice, measured alike: the searched plans with it against without it (issue 24's "one
SparseGPT-database study with and without the pretrained predictor"). Rendered from the
variants' JSON files, like the rest of the block."""

from __future__ import annotations

import statistics
from typing import Any

from _common import library_changed
from _sparsegpt_render import lower_on, searched

#: (variant with the choice, variant without it, what the choice is).
PAIRS = (("pretrained_wanda", "unscreened", "the short-list pretrained on the Wanda records"),)
METRICS = (("ppl", "pydoc"), ("ppl_other", "licenses"))


def _alike(rows: list[dict[str, Any]]) -> str:
    """Why searched rows are not measured alike ("" when they are): their builds (``numerics``)
    differ, or the library code of their commits (docstrings aside: ``library_changed``)."""
    if len({repr(r.get("numerics")) for r in rows}) > 1:
        return "other builds"
    commits = sorted({str(r.get("commit")) for r in rows})
    if any(library_changed(c, commits[0]) for c in commits[1:]):
        return "other library code"
    return ""


def _metric(with_rows: list[dict[str, Any]], without_rows: list[dict[str, Any]], metric: str,
            label: str) -> str:
    mine = statistics.median(r[metric] for r in with_rows)
    theirs = statistics.median(r[metric] for r in without_rows)
    below = [lower_on(a, b, metric) for a in with_rows for b in without_rows]
    return (f"{label} {mine:.2f} against {theirs:.2f} (x{mine / theirs:.3f}), lower on "
            f"{sum(n for n, _ in below)} of {sum(d for _, d in below)} pairs of seeds and draws")


def paired_note(tagged: list[tuple[str, dict[str, Any]]]) -> str:
    """The sentences of the PAIRS whose two variants both ran (every target they share), or ""."""
    by_tag = dict(tagged)
    out = []
    for with_tag, without_tag, what in PAIRS:
        if with_tag not in by_tag or without_tag not in by_tag:
            continue
        a, b = by_tag[with_tag]["runs"], by_tag[without_tag]["runs"]
        for pct in sorted(set(a) & set(b)):
            with_rows, without_rows = searched(a[pct]), searched(b[pct])
            if not with_rows or not without_rows:
                continue
            why = _alike(with_rows + without_rows)
            caveat = f" (not measured alike: {why})" if why else " (same build, verification and draws)"
            out.append(f"With and without {what} at {pct}%, `{with_tag}` ({len(with_rows)} seeds) against "
                       f"`{without_tag}` ({len(without_rows)}){caveat}: searched median "
                       + "; ".join(_metric(with_rows, without_rows, m, label) for m, label in METRICS)
                       + ".")
    return " ".join(out)
