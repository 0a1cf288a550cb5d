"""Block-wise offloading: same results as a resident model, one block moved at a time.

This machine has one device, so the moves are observed through each block's ``to``; the
GPU script (benchmarks/gpu.py) runs the same path across CPU and CUDA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from allocsearch.cli import main
from allocsearch.data import DataConfig
from allocsearch.engine import prune_sequential, uniform_targets
from allocsearch.evaluate import Evaluator, EvaluatorConfig
from allocsearch.evaluate.perplexity import perplexity
from allocsearch.models import LoadedModel, ModelAdapter
from allocsearch.profile import compute_profile
from allocsearch.pruners import get_pruner
from tests.helpers import save_tiny_model, tiny_loaded

CPU = torch.device("cpu")
WINDOWS = torch.randint(0, 128, (6, 16), generator=torch.Generator().manual_seed(1))


def _offloaded(blocks: int = 3) -> tuple[LoadedModel, list[int]]:
    """The tiny llama, offloaded to the CPU, with the index of every block move recorded."""
    lm = tiny_loaded(blocks=blocks)
    moves: list[int] = []
    for i in range(lm.adapter.num_blocks):
        block = lm.adapter.block(i)

        def spy(*args: Any, _i: int = i, _to: Any = block.to, **kwargs: Any) -> Any:
            moves.append(_i)
            return _to(*args, **kwargs)

        block.to = spy  # type: ignore[method-assign]
    lm.adapter.enable_offload(CPU)
    moves.clear()
    return lm, moves


def test_prune_offloaded_matches_resident_exactly() -> None:
    resident = tiny_loaded(blocks=3)
    offloaded, _ = _offloaded(blocks=3)
    for lm in (resident, offloaded):
        targets = uniform_targets(lm.adapter, 0.5)
        prune_sequential(lm.model, lm.adapter, get_pruner("sparsegpt"), targets, WINDOWS,
                         batch_size=2, progress=False)
    a, b = resident.model.state_dict(), offloaded.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_prune_moves_each_block_in_and_out_once() -> None:
    # 6 windows in batches of 2: streaming per batch would move each block 3 times each way.
    lm, moves = _offloaded(blocks=3)
    targets = uniform_targets(lm.adapter, 0.5)
    prune_sequential(lm.model, lm.adapter, get_pruner("wanda"), targets, WINDOWS,
                     batch_size=2, progress=False)
    assert moves == [0, 0, 1, 1, 2, 2]
    assert lm.adapter.offload is not None and lm.adapter.offload.blocks_home()


def test_profile_offloaded_matches_resident() -> None:
    resident = compute_profile(tiny_loaded(blocks=3), WINDOWS, progress=False)
    lm, moves = _offloaded(blocks=3)
    offloaded = compute_profile(lm, WINDOWS, progress=False)
    assert moves == [0, 0, 1, 1, 2, 2]
    for name, norm in resident.sq_norm.items():
        assert torch.equal(norm, offloaded.sq_norm[name]), name
    assert resident.alpha == offloaded.alpha
    assert resident.influence == offloaded.influence


def test_full_forward_streams_every_block_per_batch() -> None:
    resident = tiny_loaded(blocks=2)
    lm, moves = _offloaded(blocks=2)
    want = perplexity(resident.model, WINDOWS, batch_size=3, progress=False)
    got = perplexity(lm.model, WINDOWS, batch_size=3, progress=False)
    assert got == want
    # Two batches: each block in before it runs and out after, every batch.
    assert moves == [0, 0, 1, 1] * 2
    assert lm.adapter.offload is not None and lm.adapter.offload.blocks_home()


def test_resident_nests_and_is_a_no_op_without_offload() -> None:
    lm, moves = _offloaded(blocks=2)
    with lm.adapter.resident(1), lm.adapter.resident(1):
        lm.model(input_ids=WINDOWS[:1])  # block 1 is held: only block 0 streams
    assert moves == [1, 0, 0, 1]
    plain = ModelAdapter(tiny_loaded().model)
    with plain.resident(0):
        pass
    assert plain.offload is None


def test_offloaded_model_refuses_what_needs_it_resident() -> None:
    lm, _ = _offloaded()
    with pytest.raises(ValueError, match="cannot be copied"):
        lm.clone()
    with pytest.raises(ValueError, match="cannot be removed"):
        lm.adapter.refresh()
    profile = compute_profile(lm, WINDOWS, progress=False)
    profile.data = DataConfig("embedded", 6, 16, 0)
    with pytest.raises(ValueError, match="without offloading to search"):
        Evaluator(lm, profile, EvaluatorConfig(), progress=False)


def test_cli_prune_and_eval_with_offload_match_resident(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = save_tiny_model(tmp_path / "tiny", blocks=3)
    weights: dict[int, dict[str, torch.Tensor]] = {}
    ppl: dict[int, str] = {}
    for flag in ([], ["--offload"]):
        out = tmp_path / f"pruned{len(flag)}"
        argv = ["prune", "--model", str(model), "--device", "cpu", "--method", "sparsegpt",
                "--sparsity", "0.6", "--nsamples", "4", "--seqlen", "32", "--out", str(out),
                "--quiet", *flag]
        assert main(argv) == 0
        weights[len(flag)] = load_file(str(out / "model.safetensors"))
        capsys.readouterr()
        assert main(["eval", "--model", str(out), "--device", "cpu", "--nsamples", "2",
                     "--seqlen", "32", "--quiet", *flag]) == 0
        ppl[len(flag)] = capsys.readouterr().out.split("perplexity ")[1].split()[0]
    assert len(ppl) == 2 and ppl[0] == ppl[1]
    assert weights[0].keys() == weights[1].keys()
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key
