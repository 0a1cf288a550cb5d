"""``allocsearch study report DIR``: the best plans against the priors, the best plan as JSON,
and plots (optimization history, per-layer sparsity of the best plan vs. the priors, and the
Pareto front of two-objective studies)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from allocsearch.io import atomic_write_figure, atomic_write_json
from allocsearch.plan import Plan
from allocsearch.search.runner import tokens_read
from allocsearch.search.trials import trial_plan


@dataclass
class StudyReport:
    name: str
    counts: dict[str, int]
    rows: list[dict[str, Any]]  # best trials, then the best trial of each prior
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.name, "counts": self.counts, "rows": self.rows,
                "files": [str(f) for f in self.files]}


def _verifications(study: optuna.Study, number: int) -> dict[str, dict[str, Any]]:
    """A trial's stored verifications, by pruner."""
    return {key.rsplit("_", 1)[1]: value for key, value in study.user_attrs.items()
            if key.startswith(f"verified_{number}_")}


def _verified(study: optuna.Study, number: int) -> dict[str, Any]:
    return {pruner: v["ppl"] for pruner, v in _verifications(study, number).items()}


def _verified_tasks(study: optuna.Study, number: int) -> dict[str, dict[str, float]]:
    """{pruner: {task: acc}} of a trial's verifications that measured tasks."""
    return {pruner: {task: score["acc"] for task, score in v["tasks"].items()}
            for pruner, v in _verifications(study, number).items() if v.get("tasks")}


def build_report(study: optuna.Study, folder: Path, *, top: int = 5, plots: bool = True) -> StudyReport:
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials)
              for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    counts["fitness_evaluations"] = sum(1 for t in trials if "sparsities" in t.user_attrs)
    counts["search_tokens"] = tokens_read(study)
    counts["verifications"] = sum(1 for k in study.user_attrs if k.startswith("verified_"))
    if "dense_accuracy" in study.user_attrs:
        counts["dense_accuracy"] = study.user_attrs["dense_accuracy"]
    done = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.values[0])
    rows: list[dict[str, Any]] = []

    def row(t: FrozenTrial, kind: str) -> dict[str, Any]:
        out = {"kind": kind, "trial": t.number, "fitness": t.values[0],
               "prior": t.user_attrs.get("prior", ""), "verified_ppl": _verified(study, t.number),
               "verified_acc": _verified_tasks(study, t.number)}
        if "accuracy" in t.user_attrs:  # measured on the cached-mask model during the search
            out["accuracy"] = t.user_attrs["accuracy"]
        return out | ({second_objective(study): t.values[1]} if len(t.values) > 1 else {})

    folder.mkdir(parents=True, exist_ok=True)
    if len(study.directions) > 1:
        # Two objectives have no single best: the report is the Pareto front, one plan per point.
        front = pareto_front(study)
        report = StudyReport(study.study_name, counts, [row(t, "front") for t in front])
        (folder / "front").mkdir(exist_ok=True)
        for stale in (folder / "front").glob("trial_*.json"):  # an earlier report's front
            stale.unlink()
        report.files += [trial_plan(study, t).save(folder / "front" / f"trial_{t.number}.json")
                         for t in front]
        if plots:
            report.files.append(plot_history(study, folder / "history.png"))
            report.files.append(plot_pareto(study, folder / "pareto.png"))
        return _write(report, folder)
    for t in done[:top]:
        rows.append(row(t, "best"))
    best_prior: dict[str, FrozenTrial] = {}
    for t in done:
        method = str(t.user_attrs.get("prior", "")).split(" ")[0]
        if method and method not in best_prior:
            best_prior[method] = t
    rows += [row(t, "prior") for t in best_prior.values()]
    report = StudyReport(study.study_name, counts, rows)
    if done:
        best = trial_plan(study, done[0])
        best.provenance["verified_ppl"] = _verified(study, done[0].number)
        report.files.append(best.save(folder / "best_plan.json"))
        if plots:
            report.files.append(plot_history(study, folder / "history.png"))
            compare = {f"{m} (#{t.number})": trial_plan(study, t) for m, t in best_prior.items()}
            from allocsearch.plan_view import plot_plan

            report.files.append(plot_plan(best, folder / "best_vs_priors.png", compare=compare))
    return _write(report, folder)


def _write(report: StudyReport, folder: Path) -> StudyReport:
    report.files.append(atomic_write_json(folder / "report.json", report.to_dict()))
    return report


def format_report(report: StudyReport) -> str:
    c = report.counts
    lines = [
        f"study {report.name}: {c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed; "
        f"{c['fitness_evaluations']} cached-mask evaluations ({c['search_tokens']} search tokens), "
        f"{c['verifications']} exact verifications",
        "",
    ]
    if "dense_accuracy" in c:
        lines.insert(1, f"dense model's task accuracy (cached-mask search): {c['dense_accuracy']:.4f}")
    lines.append(f"{'kind':6s} {'trial':>6s} {'fitness':>12s} {'2nd obj.':>9s} {'verified ppl':>14s} "
                 f"{'verified acc':>14s}  prior")
    for r in report.rows:
        ver = ", ".join(f"{k} {v:.3f}" for k, v in r["verified_ppl"].items()) or "-"
        acc = "; ".join(", ".join(f"{v:.3f}" for v in tasks.values())
                        for tasks in r.get("verified_acc", {}).values()) or "-"
        second = [v for k, v in r.items() if k in ("sparsity", "latency", "accuracy")]
        sp = f"{second[0]:.4f}" if second else "-"
        lines.append(f"{r['kind']:6s} {r['trial']:>6d} {r['fitness']:>12.4f} {sp:>9s} {ver:>14s} "
                     f"{acc:>14s}  {r['prior']}")
    lines += ["", "files: " + ", ".join(str(f) for f in report.files)]
    return "\n".join(lines)


def plot_history(study: optuna.Study, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = [t.number for t in done]
    ys = [t.values[0] for t in done]
    prior = ["prior" in t.user_attrs for t in done]
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

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
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


def second_objective(study: optuna.Study) -> str:
    """The name of a two-objective study's second objective (sparsity, latency or accuracy)."""
    names = study.user_attrs.get("objectives") or ["fitness", "sparsity"]
    return str(names[1]) if len(names) > 1 else "sparsity"


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The complete trials no other trial beats on (fitness down; sparsity up or latency
    down), in ascending order of the second objective.

    The second value is compared at 1e-6 (the budget's tolerance), so of two plans projected
    to the same target the one with the lower fitness is the front's, whatever their last
    float bits.
    """
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    sign = -1.0 if study.directions[1] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    # Best second value first, then lower fitness: a trial is on the front when its fitness
    # beats that of every trial at least as good on the second objective.
    done.sort(key=lambda t: (sign * round(t.values[1], 6), t.values[0]))
    front: list[FrozenTrial] = []
    for t in done:
        if not front or t.values[0] < front[-1].values[0]:
            front.append(t)
    return sorted(front, key=lambda t: t.values[1])


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


def best_plan(study: optuna.Study) -> Plan:
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not done:
        raise ValueError(f"study {study.study_name} has no complete trial")
    return trial_plan(study, min(done, key=lambda t: t.values[0]))
