"""``allocsearch study report DIR``: the best plans against the priors, the best plan as JSON,
and plots (optimization history, per-layer sparsity of the best plan vs. the priors, and the
Pareto front of two-objective studies).

A searched plan is called better than the best prior only when its verified perplexity is
lower on every calibration draw the two share (paired); otherwise the report says "within
noise" (:class:`Verdict`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from allocsearch.evaluate import Verification
from allocsearch.io import atomic_write_figure, atomic_write_json
from allocsearch.plan import Plan
from allocsearch.search import store
from allocsearch.search.runner import tokens_read
from allocsearch.search.store import StoredTrial


@dataclass(frozen=True)
class ReportRow:
    """One trial of the report: ``kind`` is best, prior (the best trial of a prior family) or
    front (a Pareto-front point); ``verified`` holds its verifications under the report's
    settings, by pruner."""

    kind: str
    trial: int
    fitness: float
    prior: str
    second: tuple[str, float] | None = None  # a two-objective study's second value
    accuracy: float | None = None  # task accuracy on the cached-mask model (search part)
    verified: dict[str, Verification] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind, "trial": self.trial, "fitness": self.fitness, "prior": self.prior,
            "verified_ppl": {p: v.ppl for p, v in self.verified.items()},
            "verified_draws": {p: v.by_seed for p, v in self.verified.items()},
            "verified_acc": {p: {t: s.acc for t, s in v.tasks.items()}
                             for p, v in self.verified.items() if v.tasks}}
        if self.accuracy is not None:
            out["accuracy"] = self.accuracy
        return out | ({self.second[0]: self.second[1]} if self.second else {})


@dataclass(frozen=True)
class Verdict:
    """The best verified searched plan against the best verified prior, paired draw by draw
    (same verification settings): ``better`` only when it is lower on every draw."""

    pruner: str
    searched: int
    prior: int
    prior_label: str
    ppl: float
    prior_ppl: float
    lower_on: int
    draws: int

    @property
    def ratio(self) -> float:
        return self.ppl / self.prior_ppl

    @property
    def better(self) -> bool:
        return self.lower_on == self.draws

    @property
    def label(self) -> str:
        """'better', 'worse on every draw' or 'within noise'."""
        if self.better:
            return "better"
        return "worse on every draw" if self.lower_on == 0 and self.draws else "within noise"

    def describe(self) -> str:
        verdict = self.label
        note = " (one draw: no spread measured)" if self.draws == 1 else ""
        return (f"{self.pruner}: searched trial {self.searched} {self.ppl:.3f} vs best prior "
                f"{self.prior_label} (trial {self.prior}) {self.prior_ppl:.3f} = {self.ratio:.3f}x; "
                f"lower on {self.lower_on} of {self.draws} calibration draws: {verdict}{note}")


@dataclass
class StudyReport:
    name: str
    counts: dict[str, Any]
    rows: list[ReportRow]  # best trials, then the best trial of each prior
    verdicts: list[Verdict] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.name, "counts": self.counts, "rows": [r.to_dict() for r in self.rows],
                "verdicts": [asdict(v) | {"ratio": v.ratio, "better": v.better} for v in self.verdicts],
                "files": [str(f) for f in self.files]}


def _report_verifications(stored: list[store.VerifiedTrial]) -> dict[int, dict[str, Verification]]:
    """Each trial's verifications by pruner, under the settings most trials were verified with
    (per pruner), so every number in the report was measured the same way."""
    chosen: dict[str, str] = {}
    for pruner in sorted({v.result.pruner for v in stored}):
        keys = Counter(v.result.settings_key for v in stored if v.result.pruner == pruner)
        chosen[pruner] = max(sorted(keys), key=lambda k: keys[k])
    out: dict[int, dict[str, Verification]] = {}
    for v in stored:
        if chosen[v.result.pruner] == v.result.settings_key:
            out.setdefault(v.trial, {})[v.result.pruner] = v.result
    return out


def build_report(study: optuna.Study, folder: Path, *, top: int = 5, plots: bool = True) -> StudyReport:
    all_trials = store.trials(study)
    counts: dict[str, Any] = {s.name.lower(): sum(t.state == s for t in all_trials)
                              for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    counts["fitness_evaluations"] = sum(1 for t in all_trials if t.plan is not None)
    counts["search_tokens"] = tokens_read(study)
    stored = store.verifications(study)  # read once: counted, then chosen from
    counts["verifications"] = len(stored)
    dense = store.dense_accuracies(study)
    if dense:
        counts["dense_accuracy"] = dense[-1]
    verified = _report_verifications(stored)
    done = store.ranked(study)
    second = second_objective(study) if len(study.directions) > 1 else None

    def row(t: StoredTrial, kind: str) -> ReportRow:
        return ReportRow(kind, t.number, t.values[0], t.prior or "",
                         (second, t.values[1]) if second is not None else None, t.accuracy,
                         verified.get(t.number, {}))

    folder.mkdir(parents=True, exist_ok=True)
    if second is not None:
        # Two objectives have no single best: the report is the Pareto front, one plan per point.
        front = pareto_front(study)
        report = StudyReport(study.study_name, counts, [row(t, "front") for t in front])
        (folder / "front").mkdir(exist_ok=True)
        for stale in (folder / "front").glob("trial_*.json"):  # an earlier report's front
            stale.unlink()
        report.files += [store.trial_plan(study, t).save(folder / "front" / f"trial_{t.number}.json")
                         for t in front]
        if plots:
            report.files.append(plot_history(study, folder / "history.png"))
            report.files.append(plot_pareto(study, folder / "pareto.png"))
        return _write(report, folder)
    rows = [row(t, "best") for t in done[:top]]
    best_prior: dict[str, StoredTrial] = {}
    for t in done:
        method = (t.prior or "").split(" ")[0]
        if method and method not in best_prior:
            best_prior[method] = t
    rows += [row(t, "prior") for t in best_prior.values()]
    report = StudyReport(study.study_name, counts, rows, verdicts(done, verified))
    if done:
        best = store.trial_plan(study, done[0])
        best.provenance["verified_ppl"] = {p: v.ppl for p, v in verified.get(done[0].number, {}).items()}
        report.files.append(best.save(folder / "best_plan.json"))
        if plots:
            report.files.append(plot_history(study, folder / "history.png"))
            compare = {f"{m} (#{t.number})": store.trial_plan(study, t) for m, t in best_prior.items()}
            from allocsearch.plan_view import plot_plan

            report.files.append(plot_plan(best, folder / "best_vs_priors.png", compare=compare))
    return _write(report, folder)


def verdicts(done: list[StoredTrial], verified: dict[int, dict[str, Verification]]) -> list[Verdict]:
    """Per pruner: the searched trial and the prior trial with the lowest verified mean, paired
    on their common calibration draws."""
    out = []
    for pruner in sorted({p for v in verified.values() for p in v}):
        def best(priors: bool, pruner: str = pruner) -> StoredTrial | None:
            mine = [t for t in done
                    if (t.prior is not None) == priors and pruner in verified.get(t.number, {})]
            return min(mine, key=lambda t: verified[t.number][pruner].ppl, default=None)

        searched, prior = best(False), best(True)
        if searched is None or prior is None:
            continue
        a, b = verified[searched.number][pruner].by_seed, verified[prior.number][pruner].by_seed
        seeds = sorted(set(a) & set(b))
        lower = sum(a[s] < b[s] for s in seeds)
        out.append(Verdict(pruner, searched.number, prior.number, prior.prior or "",
                           verified[searched.number][pruner].ppl, verified[prior.number][pruner].ppl,
                           lower, len(seeds)))
    return out


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
    lines.append(f"{'kind':6s} {'trial':>6s} {'fitness':>12s} {'2nd obj.':>9s} {'verified ppl':>22s} "
                 f"{'verified acc':>14s}  prior")
    for r in report.rows:
        ver = ", ".join(f"{p} {v.ppl:.3f}" + (f" ±{v.ppl_spread / 2:.2f}" if len(v.draws) > 1 else "")
                        for p, v in r.verified.items()) or "-"
        acc = "; ".join(", ".join(f"{s.acc:.3f}" for s in v.tasks.values())
                        for v in r.verified.values() if v.tasks) or "-"
        value = r.second[1] if r.second else r.accuracy
        sp = f"{value:.4f}" if value is not None else "-"
        lines.append(f"{r.kind:6s} {r.trial:>6d} {r.fitness:>12.4f} {sp:>9s} {ver:>22s} "
                     f"{acc:>14s}  {r.prior}")
    lines += [""] + [v.describe() for v in report.verdicts]
    lines += ["", "files: " + ", ".join(str(f) for f in report.files)]
    return "\n".join(lines)


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


def second_objective(study: optuna.Study) -> str:
    """The name of a two-objective study's second objective (sparsity, latency or accuracy)."""
    names = store.facts(study)["objectives"]
    return str(names[1]) if len(names) > 1 else "sparsity"


def pareto_front(study: optuna.Study) -> list[StoredTrial]:
    """The complete trials no other trial beats on (fitness down; sparsity up or latency
    down), in ascending order of the second objective.

    The second value is compared at 1e-6 (the budget's tolerance), so of two plans projected
    to the same target the one with the lower fitness is the front's, whatever their last
    float bits.
    """
    done = store.ranked(study)
    sign = -1.0 if study.directions[1] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    # Best second value first, then lower fitness: a trial is on the front when its fitness
    # beats that of every trial at least as good on the second objective.
    done.sort(key=lambda t: (sign * round(t.values[1], 6), t.values[0]))
    front: list[StoredTrial] = []
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
    done = store.ranked(study)
    if not done:
        raise ValueError(f"study {study.study_name} has no complete trial")
    return store.trial_plan(study, done[0])
