"""A multiple-choice task of our own making, from the evaluation part of a text source.

Each paragraph is cut into consecutive segments of ``context_words + continuation_words``
words (a remainder shorter than that is dropped). In each segment, the first
``context_words`` words are the question and the rest is the true answer. The
``choices - 1`` wrong answers are the continuations of segments drawn at random from other
paragraphs, so every choice has the same length in words and the register of the corpus
(prose, grammar rules, code), and only the text before decides which one follows. Choices
are shuffled; chance is ``1 / choices`` (25% with four). A continuation that occurs twice
is left out (an ambiguous answer).

Built only from the evaluation part, which nothing is tuned on (see
:mod:`allocsearch.data.sources`); deterministic for a given source and seed.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from allocsearch.data.sources import TextSource, get_source

#: The name the task has in lm-evaluation-harness.
CONTINUATION_TASK = "allocsearch_continuation"


@dataclass(frozen=True)
class ContinuationConfig:
    """What the task is built from; every field enters its cache key."""

    source: str = "embedded"
    part: str = "evaluation"
    context_words: int = 32
    continuation_words: int = 12
    choices: int = 4
    examples: int | None = None  # None: every segment
    seed: int = 0

    def __post_init__(self) -> None:
        if self.context_words < 1 or self.continuation_words < 1:
            raise ValueError("context_words and continuation_words must be at least 1")
        if self.choices < 2:
            raise ValueError(f"a multiple-choice task needs at least 2 choices, got {self.choices}")
        if self.examples is not None and self.examples < 1:
            raise ValueError(f"examples must be at least 1, got {self.examples}")

    @property
    def chance(self) -> float:
        return 1.0 / self.choices

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ContinuationExample:
    context: str
    choices: list[str]
    label: int  # index of the true continuation in ``choices``


@dataclass(frozen=True)
class _Segment:
    paragraph: int
    context: str
    continuation: str


def _segments(text: str, config: ContinuationConfig) -> list[_Segment]:
    """Every segment of every paragraph, ambiguous continuations left out."""
    need = config.context_words + config.continuation_words
    out: list[_Segment] = []
    for p, paragraph in enumerate(text.split("\n\n")):
        words = paragraph.split()
        for start in range(0, len(words) - need + 1, need):
            cut = start + config.context_words
            out.append(_Segment(p, " ".join(words[start:cut]), " ".join(words[cut : start + need])))
    counts: dict[str, int] = {}
    for seg in out:
        counts[seg.continuation] = counts.get(seg.continuation, 0) + 1
    return [seg for seg in out if counts[seg.continuation] == 1]


def build_examples(
    config: ContinuationConfig, source: TextSource | None = None
) -> list[ContinuationExample]:
    """The task's examples; ``source`` overrides ``config.source`` (tests pass their own)."""
    text = (source or get_source(config.source)).text(config.part)
    segments = _segments(text, config)
    if len({seg.paragraph for seg in segments}) < config.choices:
        raise ValueError(f"{config.source} {config.part}: too few paragraphs of at least "
                         f"{config.context_words + config.continuation_words} words for "
                         f"{config.choices} choices")
    rng = random.Random(config.seed)
    order = list(range(len(segments)))
    rng.shuffle(order)
    if config.examples is not None:
        order = order[: config.examples]
    examples = []
    for i in order:
        seg = segments[i]
        pool = [j for j, other in enumerate(segments) if other.paragraph != seg.paragraph]
        label = rng.randrange(config.choices)
        choices = [segments[j].continuation for j in rng.sample(pool, config.choices - 1)]
        choices.insert(label, seg.continuation)
        examples.append(ContinuationExample(seg.context, choices, label))
    return examples
