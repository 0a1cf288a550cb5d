"""Perplexity against a hand computation on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from allocsearch.evaluate import perplexity
from tests.conftest import make_tiny


def test_perplexity_matches_manual_nll() -> None:
    model = make_tiny("llama")
    windows = torch.randint(0, 128, (5, 9), generator=torch.Generator().manual_seed(3))
    res = perplexity(model, windows, batch_size=2, progress=False)
    with torch.no_grad():
        logp = F.log_softmax(model(windows).logits[:, :-1].float(), -1)
    nll = -logp.gather(-1, windows[:, 1:, None]).mean().item()
    assert res.tokens == 5 * 8 and res.windows == 5 and res.seqlen == 9
    assert res.nll == pytest.approx(nll, rel=1e-5)
    assert res.ppl == pytest.approx(math.exp(nll), rel=1e-5)
    # A random 128-token model is close to uniform: perplexity near the vocabulary size.
    assert 60 < res.ppl < 260


def test_perplexity_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="seqlen >= 2"):
        perplexity(make_tiny("gpt2"), torch.zeros(3, 1, dtype=torch.long), progress=False)
