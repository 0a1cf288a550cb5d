"""Text sources: where calibration, search and evaluation tokens come from.

Every source serves three disjoint *parts*: ``calibration`` (statistics for pruning),
``search`` (the fitness a search optimises) and ``evaluation`` (the number a plan is
finally judged by). Nothing is ever tuned on the evaluation part.

- ``embedded``: the standard library's ``pydoc_data.topics`` (~465k characters of English
  prose), offline. Topics in sorted order are cut into paragraphs and the paragraph stream
  is split contiguously at 30% / 60% of its characters.
- ``wikitext2``: wikitext-2-raw-v1 train / validation / test, documents joined with
  "\\n\\n" (the protocol of the SparseGPT and Wanda papers).
- ``c4``: allenai/c4 first train shard for calibration (random documents longer than a
  window, one random window each), first validation shard for search and evaluation.
- ``file``: a local UTF-8 text file, split like ``embedded``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

PARTS = ("calibration", "search", "evaluation")
#: Cumulative character fractions at which the embedded and file sources are cut.
SPLIT_POINTS = (0.3, 0.55)


def check_part(part: str) -> None:
    if part not in PARTS:
        raise ValueError(f"unknown data part {part!r}; choose one of: {', '.join(PARTS)}")


def split_paragraphs(paragraphs: list[str], part: str) -> str:
    """The ``part`` share of a paragraph stream, cut at paragraph boundaries."""
    check_part(part)
    total = sum(len(p) for p in paragraphs)
    bounds = (0.0, *SPLIT_POINTS, 1.0)
    index = PARTS.index(part)
    lo, hi = bounds[index] * total, bounds[index + 1] * total
    chosen: list[str] = []
    seen = 0
    for p in paragraphs:
        # A paragraph belongs to the part that holds its first character.
        if lo <= seen < hi:
            chosen.append(p)
        seen += len(p)
    return "\n\n".join(chosen)


def _paragraphs(text: str) -> list[str]:
    return [p.strip("\n") for p in text.split("\n\n") if p.strip()]


def _unique(paragraphs: list[str]) -> list[str]:
    """First occurrence of each paragraph, in order."""
    return list(dict.fromkeys(paragraphs))


class TextSource(ABC):
    """A named corpus that serves the text of each part."""

    name: str

    @abstractmethod
    def text(self, part: str) -> str:
        """All text of one part, as one string."""

    def calibration_documents(self) -> list[str] | None:
        """Documents to draw one calibration window each from (the C4 protocol), or None
        to draw random windows from the calibration part's token stream."""
        return None


class EmbeddedSource(TextSource):
    name = "embedded"

    def text(self, part: str) -> str:
        from pydoc_data import topics

        stream: list[str] = []
        for key in sorted(topics.topics):
            stream.extend(_paragraphs(topics.topics[key]))
        return split_paragraphs(_unique(stream), part)


class FileSource(TextSource):
    name = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = str(self.path)  # messages name the file
        if not self.path.is_file():
            raise FileNotFoundError(f"text file not found: {self.path}")

    def text(self, part: str) -> str:
        text = self.path.read_text(encoding="utf-8")
        return split_paragraphs(_unique(_paragraphs(text)), part)


def _load_dataset(*args: Any, **kwargs: Any) -> Any:
    try:
        from datasets import load_dataset
    except ImportError as exc:  # pragma: no cover - datasets is a dependency
        raise ImportError("the wikitext2 and c4 sources need the 'datasets' package") from exc
    return load_dataset(*args, **kwargs)


class WikiText2Source(TextSource):
    name = "wikitext2"
    _SPLITS: ClassVar[dict[str, str]] = {"calibration": "train", "search": "validation", "evaluation": "test"}

    def text(self, part: str) -> str:
        check_part(part)
        ds = _load_dataset("wikitext", "wikitext-2-raw-v1", split=self._SPLITS[part])
        return "\n\n".join(ds["text"])


class C4Source(TextSource):
    name = "c4"
    _TRAIN = "en/c4-train.00000-of-01024.json.gz"
    _VALID = "en/c4-validation.00000-of-00008.json.gz"
    #: Validation documents used for search / evaluation (the papers take the first 1100).
    EVAL_DOCS = 1100

    def _validation(self) -> list[str]:
        ds = _load_dataset(
            "allenai/c4", data_files={"validation": self._VALID}, split="validation"
        )
        return list(ds["text"][: 2 * self.EVAL_DOCS])

    def text(self, part: str) -> str:
        check_part(part)
        if part == "calibration":
            return "\n\n".join(self.calibration_documents())
        docs = self._validation()
        # Search and evaluation take disjoint halves of the first 2 x 1100 validation docs.
        chosen = docs[self.EVAL_DOCS :] if part == "search" else docs[: self.EVAL_DOCS]
        return " ".join(chosen)

    def calibration_documents(self) -> list[str]:
        ds = _load_dataset("allenai/c4", data_files={"train": self._TRAIN}, split="train")
        return list(ds["text"])


SOURCES: dict[str, type[TextSource]] = {
    EmbeddedSource.name: EmbeddedSource,
    WikiText2Source.name: WikiText2Source,
    C4Source.name: C4Source,
    FileSource.name: FileSource,
}


def get_source(name: str) -> TextSource:
    """A source by name; a path to an existing file means the ``file`` source."""
    if name in SOURCES and name != FileSource.name:
        return SOURCES[name]()
    if name.startswith("file:"):
        return FileSource(name[len("file:") :])
    if Path(name).is_file():
        return FileSource(name)
    raise ValueError(
        f"unknown data source {name!r}; choose one of: embedded, wikitext2, c4, "
        "or a path to a text file"
    )
