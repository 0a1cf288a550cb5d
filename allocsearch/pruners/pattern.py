"""Sparsity patterns: unstructured, or N:M (N weights kept in every M consecutive inputs)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NM_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class Pattern:
    """How the pruned weights of one matrix are laid out.

    ``n == m == 0`` means unstructured. Otherwise N:M follows the hardware convention
    (NVIDIA sparse tensor cores): in every group of ``m`` consecutive weights along the
    input dimension of a row, ``n`` are kept and ``m - n`` are zeroed, so the sparsity is
    ``1 - n / m`` (2:4 and 4:8 are 50%).
    """

    n: int = 0
    m: int = 0

    def __post_init__(self) -> None:
        if (self.n, self.m) == (0, 0):
            return
        if not (0 < self.n < self.m):
            raise ValueError(
                f"invalid N:M pattern {self.n}:{self.m}: need 0 < N < M "
                "(N weights kept in every group of M)"
            )

    @property
    def is_nm(self) -> bool:
        return self.m > 0

    @property
    def sparsity(self) -> float | None:
        """The sparsity the pattern implies, or None when unstructured."""
        return 1.0 - self.n / self.m if self.is_nm else None

    @classmethod
    def parse(cls, text: str | Pattern | None) -> Pattern:
        """Parse ``"unstructured"`` (or ``None`` / ``""``) and ``"N:M"``."""
        if isinstance(text, Pattern):
            return text
        if text is None or text.strip().lower() in ("", "unstructured", "none"):
            return cls()
        match = _NM_RE.match(text)
        if match is None:
            raise ValueError(f"invalid pattern {text!r}: expected 'unstructured' or 'N:M' like '2:4'")
        return cls(int(match.group(1)), int(match.group(2)))

    def resolve_sparsity(self, sparsity: float | None) -> float:
        """The sparsity to apply: the pattern's own for N:M, else ``sparsity`` checked."""
        implied = self.sparsity
        if implied is not None:
            if sparsity is not None and not math.isclose(sparsity, implied, abs_tol=1e-9):
                raise ValueError(
                    f"pattern {self} implies sparsity {implied:g}, but {sparsity:g} was asked for"
                )
            return implied
        if sparsity is None:
            raise ValueError("an unstructured pattern needs a sparsity")
        if not (0.0 <= sparsity < 1.0):
            raise ValueError(f"sparsity must lie in [0, 1), got {sparsity!r}")
        return float(sparsity)

    def __str__(self) -> str:
        return f"{self.n}:{self.m}" if self.is_nm else "unstructured"


UNSTRUCTURED = Pattern()
