"""Argument groups shared by several commands."""

from __future__ import annotations

import argparse
from typing import Any


def add_model_args(p: argparse.ArgumentParser, default: str | None = "smollm2-135m") -> None:
    p.add_argument(
        "--model", default=default,
        help="hub id, model directory, .gguf file, or the alias smollm2-135m"
        + (f" (default {default})" if default else ""),
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument(
        "--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
        help="weights and activations dtype (default float32)",
    )
    p.add_argument(
        "--offload", action="store_true",
        help="keep the decoder blocks in CPU memory and move each to --device in its turn "
             "(models larger than the GPU's memory; profile, prune and eval only)",
    )
    p.add_argument(
        "--threads", type=int, default=None,
        help="CPU threads (default torch's setting). The count changes the order of float "
             "sums, and so masks at high sparsity: fix it to reproduce a number",
    )
    add_quiet(p)


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars or info logs")


def add_data_args(p: argparse.ArgumentParser, nsamples: int | None) -> None:
    p.add_argument(
        "--data", default="embedded",
        help="embedded (default, offline), wikitext2, c4, or a path to a text file",
    )
    p.add_argument(
        "--nsamples", type=int, default=nsamples,
        help=f"number of windows (default {nsamples if nsamples else 'all'})",
    )
    p.add_argument("--seqlen", type=int, default=512, help="tokens per window (default 512)")
    p.add_argument("--seed", type=int, default=0, help="seed for the calibration windows")


def load(args: argparse.Namespace, model: str | None = None) -> Any:
    import torch

    from allocsearch.models import load_model

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)

    return load_model(model or args.model, device=args.device, dtype=args.dtype,
                      offload=args.offload)


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``--param key=value`` pairs; values parsed as YAML scalars (numbers, booleans)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param needs key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def add_task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tasks", default=None,
        help="also measure zero-shot task accuracy (lm-evaluation-harness), comma-separated: "
             "allocsearch_continuation (offline, our own), lm-eval task names (boolq, arc_easy, "
             "...; need the hub), or task YAML files",
    )
    p.add_argument("--tasks-limit", type=int, default=None, help="examples per task (default all)")
    p.add_argument("--tasks-batch-size", type=int, default=8, help="requests per forward (default 8)")


def task_config(args: argparse.Namespace) -> Any:
    """The TaskConfig of --tasks, or None without it (parsed before any model is loaded)."""
    if args.tasks is None:
        return None
    from allocsearch.evaluate.tasks import TaskConfig, check_tasks

    config = TaskConfig(TaskConfig.parse_names(args.tasks), limit=args.tasks_limit,
                        batch_size=args.tasks_batch_size)
    check_tasks(config)
    return config


def registered(kind: str) -> list[str]:
    """The names a registry holds, for ``choices=`` and help texts (argparse then refuses an
    unknown name before anything loads): allocators, pruners, samplers or predictor models."""
    if kind == "allocators":
        from allocsearch.allocation import ALLOCATORS

        return sorted(ALLOCATORS)
    if kind == "pruners":
        from allocsearch.pruners import PRUNERS

        return sorted(PRUNERS)
    if kind == "samplers":
        from allocsearch.search.samplers import SAMPLERS

        return sorted(SAMPLERS)
    if kind == "predictors":
        from allocsearch.predictor.base import regressor_names

        return sorted(regressor_names())
    raise KeyError(kind)
