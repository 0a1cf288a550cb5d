"""One sentence of docs/results.md per pair of a per-module suite's variants that differ in one
choice, measured alike: the searched plans with it against without it (issue 24's "one
SparseGPT-database study with and without the pretrained predictor"). Rendered from the
variants' JSON files, like the rest of the block."""

from __future__ import annotations

import statistics
from typing import Any

from _code_state import library_changed, predictor_code
from _sparsegpt_render import lower_on, searched
from _suite_state import same_verify

#: (variant with the choice, variant without it, what the choice is).
PAIRS = (("pretrained_wanda", "unscreened", "the short-list pretrained on the Wanda records"),)
METRICS = (("ppl", "pydoc"), ("ppl_other", "licenses"))


def _uses_no_predictor(variant: dict[str, Any]) -> bool:
    """Whether a variant's studies ran without a short-list: no ``--pretrain`` and no
    ``predictor`` override in its command."""
    return variant.get("pretrained") is None and "predictor" not in str(variant.get("command", ""))


def _code_differs(rows: list[dict[str, Any]], unused: tuple[str, ...] = ()) -> bool:
    """Whether the library code (less ``unused``) of the commits ``rows`` were measured at differs."""
    commits = sorted({str(r.get("commit")) for r in rows})
    return any(library_changed(c, commits[0], unused=unused) for c in commits[1:])


def _caveat(with_: dict[str, Any], without: dict[str, Any], mine: list[dict[str, Any]],
            theirs: list[dict[str, Any]]) -> str:
    """How two variants' searched rows (``mine``: with the choice, ``theirs``: without) were
    measured: alike, or why not (their builds, the library code of their commits, docstrings
    aside, or their verification settings). Each variant's own rows must share all the library
    code; across the two, the predictor's model code counts only when the variant without the
    choice ran a predictor too (:func:`_code_state.predictor_code`): a new default model changes
    what the variant with it runs, which is the choice compared, and nothing the other ran."""
    exempt = predictor_code() if _uses_no_predictor(without) else ()
    if len({repr(r.get("numerics")) for r in mine + theirs}) > 1:
        why = "other builds"
    elif _code_differs(mine) or _code_differs(theirs) or _code_differs(mine[:1] + theirs[:1], exempt):
        why = "other library code"
    elif not same_verify(with_["study"]["verify"], without["study"]["verify"]):
        why = "other verification settings"
    else:
        code = "library code" if not exempt or not _code_differs(mine[:1] + theirs[:1]) else \
            "library code but the predictor's models (run only with it)"
        return f"same build, {code}, verification settings and calibration draws"
    return f"not measured alike: {why}"


def _metric(with_rows: list[dict[str, Any]], without_rows: list[dict[str, Any]], metric: str,
            label: str, floor: float | None) -> str:
    """One domain's medians, their ratio (judged against the noise ``floor`` of the target and
    pruner, None: not measured) and the seed-and-draw pairs on which ``with_rows`` measured lower."""
    mine = statistics.median(r[metric] for r in with_rows)
    theirs = statistics.median(r[metric] for r in without_rows)
    ratio = mine / theirs
    side = "" if floor is None else \
        f", {'beyond' if abs(1 - ratio) > floor else 'within'} the noise floor ({floor:.1%})"
    below = [lower_on(a, b, metric) for a in with_rows for b in without_rows]
    return (f"{label} {mine:.2f} against {theirs:.2f} (x{ratio:.3f}{side}), lower on "
            f"{sum(n for n, _ in below)} of {sum(d for _, d in below)} pairs of seeds and draws")


def paired_note(tagged: list[tuple[str, dict[str, Any]]],
                floors: dict[tuple[float, str], float] | None = None) -> str:
    """The sentences of the PAIRS whose two variants both ran (every target they share), or "".
    ``floors``: (target, pruner) -> the noise floor of verification (report.noise_floors)."""
    by_tag = dict(tagged)
    out = []
    for with_tag, without_tag, what in PAIRS:
        if with_tag not in by_tag or without_tag not in by_tag:
            continue
        with_, without = by_tag[with_tag], by_tag[without_tag]
        model = (with_.get("pretrained") or {}).get("model")
        name = f"{what} (`{model}`)" if model else what
        for pct in sorted(set(with_["runs"]) & set(without["runs"])):
            mine, theirs = searched(with_["runs"][pct]), searched(without["runs"][pct])
            if not mine or not theirs:
                continue
            floor = (floors or {}).get((round(int(pct) / 100, 4), with_["study"]["verify"]["pruner"]))
            out.append(f"With and without {name} at {pct}%, `{with_tag}` ({len(mine)} seeds) against "
                       f"`{without_tag}` ({len(theirs)}) ({_caveat(with_, without, mine, theirs)}): "
                       "searched median "
                       + "; ".join(_metric(mine, theirs, m, label, floor) for m, label in METRICS) + ".")
    return " ".join(out)
