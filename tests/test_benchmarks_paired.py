"""The with/without sentence of the per-module block: medians of the searched seeds and the
draws on which the variant with the choice measured lower, paired by calibration seed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _paired_render import paired_note  # noqa: E402

HEAD = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def _row(ppl: list[float], build: str = "a") -> dict[str, Any]:
    """A searched seed's entry: one ppl per calibration draw (the other domain at ten times)."""
    draws = [{"seed": s, "ppl": p, "ppl_other": 10 * p} for s, p in enumerate(ppl)]
    return {"ppl": sum(ppl) / len(ppl), "ppl_other": 10 * sum(ppl) / len(ppl), "draws": draws,
            "commit": HEAD, "numerics": {"build": build}}


def _variant(*rows: dict[str, Any], windows: int = 40) -> dict[str, Any]:
    return {"runs": {"70": {f"searched:s{i}": r for i, r in enumerate(rows)}},
            "study": {"verify": {"pruner": "sparsegpt", "eval_windows": windows}}}


def test_the_pair_gives_medians_and_paired_draws() -> None:
    with_ = _variant(_row([60.0, 62.0]), _row([70.0, 66.0]), _row([64.0, 64.0]))
    without = _variant(_row([65.0, 63.0]), _row([61.0, 69.0]))
    with_["pretrained"] = {"model": "additive"}
    note = paired_note([("pretrained_wanda", with_), ("unscreened", without), ("other", without)],
                       {(0.7, "sparsegpt"): 0.005})
    assert note.startswith("With and without the short-list pretrained on the Wanda records (`additive`) "
                           "at 70%, `pretrained_wanda` (3 seeds) against `unscreened` (2) (same build, "
                           "library code")
    # Medians 64.00 (of 61, 68, 64) and 64.50 (of 64, 65); 12 seed pairs x draws, of which lower:
    # draw 0: 60 < 65, 60 < 61, 64 < 65 (3); draw 1: 62 < 63, 62 < 69, 66 < 69, 64 < 69 (4).
    assert ("pydoc 64.00 against 64.50 (x0.992, beyond the noise floor (0.5%)), lower on 7 of 12 pairs "
            "of seeds and draws") in note
    assert "licenses 640.00 against 645.00 (x0.992, beyond the noise floor (0.5%)), lower on 7 of 12" in note
    assert "(x0.992), lower on" in paired_note([("pretrained_wanda", with_), ("unscreened", without)])


def test_the_pair_says_when_it_is_not_measured_alike_and_needs_both_variants() -> None:
    with_ = _variant(_row([60.0]))
    without = _variant(_row([65.0], build="b"))
    assert "(not measured alike: other builds)" in paired_note([("pretrained_wanda", with_),
                                                                 ("unscreened", without)])
    assert paired_note([("pretrained_wanda", with_)]) == ""
    fewer = _variant(_row([65.0]), windows=20)
    assert "(not measured alike: other verification settings)" in paired_note(
        [("pretrained_wanda", with_), ("unscreened", fewer)])


def test_the_pair_ignores_predictor_model_code_only_when_the_plain_variant_runs_none(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A new default model is what the variant with the short-list runs, not what the plain one
    ran: across the two, a change of the predictor's model files alone is named, not a reason to
    call them unalike; within one variant, and against a plain variant that ran a predictor, it is."""
    import _paired_render

    def changed(a: str, b: str, unused: tuple[str, ...] = ()) -> bool:
        # "old" and "new" differ in predictor model files only; "search" in the search too.
        pair = {a, b}
        if pair == {"old", "new"}:
            return not unused
        return len(pair) > 1

    monkeypatch.setattr(_paired_render, "library_changed", changed)
    monkeypatch.setattr(_paired_render, "predictor_code", lambda: ("allocsearch/predictor/base.py",))

    def at(commit: str, ppl: float) -> dict[str, Any]:
        return _row([ppl]) | {"commit": commit}

    with_ = _variant(at("new", 60.0), at("new", 61.0))
    with_["pretrained"] = {"model": "m"}
    plain = _variant(at("old", 65.0)) | {"command": "python benchmarks/quality.py --tag unscreened"}
    note = paired_note([("pretrained_wanda", with_), ("unscreened", plain)])
    assert "(same build, library code but the predictor's models (run only with it), verification" in note
    screened = plain | {"command": "python benchmarks/quality.py --set 'predictor={model: typed}'"}
    assert "(not measured alike: other library code)" in paired_note(
        [("pretrained_wanda", with_), ("unscreened", screened)])
    mixed = _variant(at("new", 60.0), at("old", 61.0)) | {"pretrained": {"model": "m"}}
    assert "(not measured alike: other library code)" in paired_note(
        [("pretrained_wanda", mixed), ("unscreened", plain)])
    searched_elsewhere = _variant(at("search", 65.0))
    assert "(not measured alike: other library code)" in paired_note(
        [("pretrained_wanda", with_), ("unscreened", searched_elsewhere)])
    alike = _variant(at("new", 65.0))
    assert "(same build, library code, verification" in paired_note(
        [("pretrained_wanda", with_), ("unscreened", alike)])
