"""Small text helpers the predictor renderers share: figures, and the note on a result measured
on other predictor records than the committed ones."""

from __future__ import annotations

from typing import Any

from _common import committed_records_digest, other_records


def fmt(v: Any, digits: int = 3) -> str:
    """A figure with thousands separators (``digits`` decimals for a float); None: not reached."""
    if v is None:
        return "not reached"
    return f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"


def records_note(result: dict[str, Any]) -> str:
    """A warning, before a result's figures, when it measured other records than the committed
    ones (empty when it measured them)."""
    if not other_records(result):
        return ""
    return (f" *Measured on another records file (digest {result['records_digest']}; the committed one "
            f"is {committed_records_digest()}): not what the shipped command gives on today's records.*")
