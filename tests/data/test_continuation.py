"""The continuation task's construction, exactly, on a hand-made corpus."""

from __future__ import annotations

import pytest

from allocsearch.data.continuation import ContinuationConfig, build_examples
from allocsearch.data.sources import TextSource


class Corpus(TextSource):
    """Paragraph p is the words "p<p>w0 p<p>w1 ...": every word says where it comes from."""

    name = "hand"

    def __init__(self, lengths: list[int]) -> None:
        self.paragraphs = [" ".join(f"p{p}w{i}" for i in range(n)) for p, n in enumerate(lengths)]

    def text(self, part: str) -> str:
        return "\n\n".join(self.paragraphs)


def _words(text: str) -> list[tuple[int, int]]:
    """(paragraph, word index) of each word."""
    return [(int(w[1:].split("w")[0]), int(w.split("w")[1])) for w in text.split()]


def test_segments_true_continuation_and_distractors_from_other_paragraphs() -> None:
    # context 3 + continuation 2 = 5 words a segment: 11 words -> 2 segments, 4 -> none.
    corpus = Corpus([11, 5, 4, 10, 5])
    config = ContinuationConfig(context_words=3, continuation_words=2, choices=3, seed=1)
    examples = build_examples(config, corpus)
    assert len(examples) == 2 + 1 + 0 + 2 + 1
    segments = set()
    for ex in examples:
        context = _words(ex.context)
        p, start = context[0]
        assert start % 5 == 0 and context == [(p, start + i) for i in range(3)]
        assert len(ex.choices) == 3 and 0 <= ex.label < 3
        assert _words(ex.choices[ex.label]) == [(p, start + 3), (p, start + 4)]
        for i, choice in enumerate(ex.choices):
            words = _words(choice)
            assert len(words) == 2
            if i != ex.label:
                assert words[0][0] != p  # a wrong answer never comes from the same paragraph
                assert words[0][1] % 5 == 3  # and is another segment's continuation
        segments.add((p, start))
    assert len(segments) == 6
    assert build_examples(config, corpus) == examples  # deterministic
    other_seed = ContinuationConfig(context_words=3, continuation_words=2, choices=3, seed=2)
    assert build_examples(other_seed, corpus) != examples
    assert config.chance == pytest.approx(1 / 3)


def test_examples_cap_and_ambiguous_continuations() -> None:
    corpus = Corpus([10, 10, 10, 10])
    # Two paragraphs with the same words: their continuations repeat, so both are dropped.
    corpus.paragraphs.append(corpus.paragraphs[0])
    config = ContinuationConfig(context_words=3, continuation_words=2, choices=2, examples=3)
    examples = build_examples(config, corpus)
    assert len(examples) == 3
    assert all(_words(ex.context)[0][0] != 0 for ex in examples)


def test_too_small_a_corpus_is_refused() -> None:
    with pytest.raises(ValueError, match="too few paragraphs"):
        build_examples(ContinuationConfig(context_words=3, continuation_words=2), Corpus([5, 5, 3]))
    with pytest.raises(ValueError, match="at least 2 choices"):
        ContinuationConfig(choices=1)


def test_embedded_task_has_hundreds_of_examples_from_the_evaluation_part() -> None:
    examples = build_examples(ContinuationConfig())
    assert len(examples) >= 200
    labels = [ex.label for ex in examples]
    assert all(labels.count(k) > len(labels) / 8 for k in range(4))  # shuffled answers
