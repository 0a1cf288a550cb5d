"""Text sources and windows: disjoint embedded parts, determinism, clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from allocsearch.data import (
    PARTS,
    EmbeddedSource,
    FileSource,
    calibration_windows,
    evaluation_windows,
    get_source,
)
from allocsearch.data.sources import split_paragraphs


class CharTokenizer:
    """One token per character: enough to test window arithmetic without a hub."""

    def __call__(self, text: str, return_tensors: str = "pt", **_: Any) -> Any:
        class Out:
            input_ids = torch.tensor([[min(ord(c), 255) for c in text]])

        return Out()


def test_embedded_parts_are_disjoint_and_cover_everything() -> None:
    src = EmbeddedSource()
    texts = {p: src.text(p) for p in PARTS}
    paras = {p: set(t.split("\n\n")) for p, t in texts.items()}
    total = sum(len(t) for t in texts.values())
    assert total > 350_000
    for a in PARTS:
        for b in PARTS:
            if a < b:
                # pydoc repeats whole paragraphs across topics; each is kept once.
                assert not paras[a] & paras[b], (a, b)
    shares = [len(texts[p]) / total for p in PARTS]
    assert shares == pytest.approx([0.3, 0.25, 0.45], abs=0.02)


def test_split_paragraphs_is_contiguous() -> None:
    paras = [f"p{i:02d}" * 5 for i in range(20)]  # equal lengths
    assert split_paragraphs(paras, "calibration").split("\n\n") == paras[:6]
    assert split_paragraphs(paras, "search").split("\n\n") == paras[6:11]
    assert split_paragraphs(paras, "evaluation").split("\n\n") == paras[11:]


def test_calibration_windows_are_seeded() -> None:
    tok = CharTokenizer()
    a = calibration_windows(tok, "embedded", 4, 32, seed=1)
    b = calibration_windows(tok, "embedded", 4, 32, seed=1)
    c = calibration_windows(tok, "embedded", 4, 32, seed=2)
    assert a.shape == (4, 32) and torch.equal(a, b) and not torch.equal(a, c)
    cal = EmbeddedSource().text("calibration")
    for row in a:
        assert "".join(map(chr, row.tolist())) in cal


def test_evaluation_windows_are_consecutive(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("\n\n".join(["a" * 50, "b" * 50, "c" * 50, "d" * 50, "e" * 50,
                              "f" * 50, "g" * 50, "h" * 50, "i" * 50, "j" * 100]))
    tok = CharTokenizer()
    w = evaluation_windows(tok, str(f), "evaluation", 10)
    text = FileSource(f).text("evaluation")
    assert w.shape == (len(text) // 10, 10)
    assert "".join(map(chr, w.reshape(-1).tolist())) == text[: w.numel()]
    with pytest.raises(ValueError, match="asked for 99"):
        evaluation_windows(tok, str(f), "evaluation", 10, nsamples=99)


def test_too_little_text_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "tiny.txt"
    f.write_text("one\n\ntwo\n\nthree")
    with pytest.raises(ValueError, match="too few for one window of 64"):
        calibration_windows(CharTokenizer(), f"file:{f}", 2, 64, seed=0)
    with pytest.raises(ValueError, match="0 windows of 64"):
        evaluation_windows(CharTokenizer(), str(f), "evaluation", 64)


def test_unknown_source_and_part() -> None:
    with pytest.raises(ValueError, match="embedded, wikitext2, c4"):
        get_source("pile")
    with pytest.raises(ValueError, match="calibration, search, evaluation"):
        EmbeddedSource().text("train")
    with pytest.raises(FileNotFoundError):
        get_source("file:/no/such/file.txt")


def test_hub_sources_use_the_papers_splits(monkeypatch: pytest.MonkeyPatch) -> None:
    # No dataset hub here: check the calls and the joining protocol with a stand-in.
    from allocsearch.data import sources

    calls: list[tuple[Any, ...]] = []

    def fake_load(*args: Any, **kwargs: Any) -> dict[str, list[str]]:
        calls.append((args, kwargs))
        return {"text": ["first", "second", "third"]}

    monkeypatch.setattr(sources, "_load_dataset", fake_load)
    assert get_source("wikitext2").text("evaluation") == "first\n\nsecond\n\nthird"
    assert calls[-1][0] == ("wikitext", "wikitext-2-raw-v1")
    assert calls[-1][1] == {"split": "test"}
    get_source("wikitext2").text("calibration")
    assert calls[-1][1] == {"split": "train"}
    c4 = get_source("c4")
    assert c4.text("evaluation") == "first second third"
    assert calls[-1][0] == ("allenai/c4",)
    assert "validation" in calls[-1][1]["data_files"]
    assert c4.calibration_documents() == ["first", "second", "third"]
