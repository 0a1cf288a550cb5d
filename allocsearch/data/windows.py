"""Token windows: random calibration windows, and non-overlapping evaluation windows."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from allocsearch.data.sources import TextSource, check_part, get_source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataConfig:
    """Which tokens to use. ``nsamples`` windows of ``seqlen`` tokens; ``seed`` picks the
    random calibration windows (evaluation windows are the first ones, in order)."""

    source: str = "embedded"
    nsamples: int = 64
    seqlen: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        if self.nsamples < 1:
            raise ValueError(f"nsamples must be at least 1, got {self.nsamples}")
        if self.seqlen < 2:
            raise ValueError(f"seqlen must be at least 2, got {self.seqlen}")


def tokenize(tokenizer: Any, text: str) -> torch.Tensor:
    """A 1-D LongTensor of token ids for ``text`` (no length limit warning)."""
    ids: torch.Tensor = tokenizer(text, return_tensors="pt", verbose=False).input_ids
    return ids.reshape(-1).long()


def _source(source: str | TextSource) -> TextSource:
    return source if isinstance(source, TextSource) else get_source(source)


def calibration_windows(
    tokenizer: Any, source: str | TextSource, nsamples: int, seqlen: int, seed: int
) -> torch.Tensor:
    """(nsamples, seqlen) random windows of the calibration part, reproducible by seed."""
    src = _source(source)
    gen = torch.Generator().manual_seed(seed)
    docs = src.calibration_documents()
    if docs is not None:
        return _windows_from_documents(tokenizer, docs, nsamples, seqlen, gen, src.name)
    stream = tokenize(tokenizer, src.text("calibration"))
    if stream.numel() <= seqlen:
        raise ValueError(
            f"the calibration part of {src.name!r} has {stream.numel()} tokens, "
            f"too few for one window of {seqlen}"
        )
    if nsamples * seqlen > stream.numel():
        # Random windows may overlap (as in the papers' C4 protocol); worth knowing, not fatal.
        log.info(
            "%d x %d calibration tokens requested from %d available: windows overlap",
            nsamples,
            seqlen,
            stream.numel(),
        )
    starts = torch.randint(0, stream.numel() - seqlen + 1, (nsamples,), generator=gen)
    return torch.stack([stream[s : s + seqlen] for s in starts.tolist()])


def _windows_from_documents(
    tokenizer: Any,
    docs: list[str],
    nsamples: int,
    seqlen: int,
    gen: torch.Generator,
    name: str,
) -> torch.Tensor:
    """One random window from each of ``nsamples`` random documents longer than ``seqlen``."""
    out: list[torch.Tensor] = []
    for _ in range(50 * nsamples):
        if len(out) == nsamples:
            break
        doc = docs[int(torch.randint(0, len(docs), (1,), generator=gen))]
        ids = tokenize(tokenizer, doc)
        if ids.numel() <= seqlen:
            continue
        s = int(torch.randint(0, ids.numel() - seqlen, (1,), generator=gen))
        out.append(ids[s : s + seqlen])
    if len(out) < nsamples:
        raise ValueError(f"{name}: found only {len(out)} documents longer than {seqlen} tokens")
    return torch.stack(out)


def evaluation_windows(
    tokenizer: Any,
    source: str | TextSource,
    part: str,
    seqlen: int,
    nsamples: int | None = None,
) -> torch.Tensor:
    """(n, seqlen) consecutive non-overlapping windows of ``part``; all of them when
    ``nsamples`` is None. Asking for more windows than the part holds is an error."""
    check_part(part)
    src = _source(source)
    stream = tokenize(tokenizer, src.text(part))
    available = stream.numel() // seqlen
    if available == 0 or (nsamples is not None and nsamples > available):
        raise ValueError(
            f"the {part} part of {src.name!r} holds {stream.numel()} tokens = {available} "
            f"windows of {seqlen}; asked for {nsamples if nsamples is not None else 'at least 1'}"
        )
    n = available if nsamples is None else nsamples
    return stream[: n * seqlen].reshape(n, seqlen)
