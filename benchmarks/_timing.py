"""Timing and memory helpers shared by the speed benchmarks (speed.py, gpu.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from allocsearch.evaluate import Evaluator

MiB = 1 << 20


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device: torch.device, fn: Callable[[], object]) -> float:
    """Seconds ``fn`` takes, the device's queued work included."""
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def rss_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux); atomic-exempt: not a file


def peak_mib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated() / MiB if device.type == "cuda" else rss_mib("VmHWM")


def now_mib(device: torch.device) -> float:
    return torch.cuda.memory_allocated() / MiB if device.type == "cuda" else rss_mib("VmRSS")


@torch.no_grad()
def forward_only(ev: Evaluator, n_windows: int) -> float:
    """The baseline: the model's forward over the same windows, nothing else."""
    device = ev.loaded.device
    sync(device)
    t = time.perf_counter()
    for i in range(0, n_windows, ev.config.batch_size):
        ids = ev.windows[i : i + ev.config.batch_size].to(device)
        ev.loaded.model(input_ids=ids, use_cache=False).logits  # noqa: B018
    sync(device)
    return time.perf_counter() - t
