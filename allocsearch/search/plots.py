"""The study plots: optimisation history and Pareto front (PNG, written atomically)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from allocsearch.io import atomic_write_figure
from allocsearch.search import store
from allocsearch.search.pareto import pareto_front, second_objective


def plot_history(study: optuna.Study, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = sorted(store.ranked(study), key=lambda t: t.number)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = [t.number for t in done]
    ys = [t.values[0] for t in done]
    prior = [t.prior is not None for t in done]
    ax.scatter([x for x, p in zip(xs, prior, strict=True) if not p],
               [y for y, p in zip(ys, prior, strict=True) if not p], s=12, label="searched trial")
    ax.scatter([x for x, p in zip(xs, prior, strict=True) if p],
               [y for y, p in zip(ys, prior, strict=True) if p], s=30, marker="s", color="tab:red",
               label="prior (warm start)")
    best: list[float] = []
    for y in ys:
        best.append(min(y, best[-1]) if best else y)
    ax.step(xs, best, where="post", color="black", label="best so far")
    return _finish(fig, ax, path, "trial", f"{study.study_name}: optimization history")


def plot_pareto(study: optuna.Study, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = store.ranked(study)
    front = {t.number for t in pareto_front(study)}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for on, style in ((False, {"s": 10, "color": "tab:gray", "label": "trial"}),
                      (True, {"s": 30, "color": "tab:red", "label": "Pareto front"})):
        pts = [t for t in done if (t.number in front) == on]
        ax.scatter([t.values[1] for t in pts], [t.values[0] for t in pts], **style)  # type: ignore[arg-type]
    name = second_objective(study)
    label = {"latency": "latency (ms, measured)",
             "accuracy": "task accuracy (cached masks)"}.get(name, name)
    return _finish(fig, ax, path, label, f"{study.study_name}: fitness vs. {name}")


def _finish(fig: Any, ax: Any, path: Path, xlabel: str, title: str) -> Path:
    """Shared axes (log fitness), legend and PNG output of the study plots."""
    import matplotlib.pyplot as plt

    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fitness (search split)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    atomic_write_figure(path, fig, dpi=120)
    plt.close(fig)
    return path
