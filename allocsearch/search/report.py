"""``allocsearch study report DIR``: the best plans against the priors, the best plan as JSON,
and plots (optimization history, per-layer sparsity of the best plan vs. the priors, and the
Pareto front of two-objective studies).

A searched plan is called better than the best prior only when its verified perplexity is
lower on every calibration draw the two share (paired); otherwise the report says "within
noise" (:class:`Verdict`)."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from allocsearch.evaluate import Verification
from allocsearch.io import atomic_write_json
from allocsearch.plan import Plan
from allocsearch.search import store
from allocsearch.search.pareto import pareto_front, second_objective
from allocsearch.search.plots import plot_history, plot_pareto
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
            "verified_also": {p: v.also_ppl for p, v in self.verified.items() if v.draws[0].also},
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
    #: The text compared: "" for the study's evaluation part, else one of ``verify.also``.
    source: str = ""

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
        where = f" on {self.source}" if self.source else ""
        return (f"{self.pruner}{where}: searched trial {self.searched} {self.ppl:.3f} vs best prior "
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
        best = best_plan(study, done)  # the finalists' choice where they ran
        number = int(best.provenance["trial"])
        best.provenance["verified_ppl"] = {p: v.ppl for p, v in verified.get(number, {}).items()}
        report.files.append(best.save(folder / "best_plan.json"))
        if plots:
            report.files.append(plot_history(study, folder / "history.png"))
            compare = {f"{m} (#{t.number})": store.trial_plan(study, t) for m, t in best_prior.items()}
            from allocsearch.plan_view import plot_plan

            report.files.append(plot_plan(best, folder / "best_vs_priors.png", compare=compare))
    return _write(report, folder)


def verdicts(done: list[StoredTrial], verified: dict[int, dict[str, Verification]]) -> list[Verdict]:
    """Per pruner: the searched trial and the prior trial with the lowest verified mean, paired
    on their common calibration draws; the same two trials again on each more source both were
    scored on (``verify.also``: text of another domain)."""
    out = []
    for pruner in sorted({p for v in verified.values() for p in v}):
        def best(priors: bool, pruner: str = pruner) -> StoredTrial | None:
            mine = [t for t in done
                    if (t.prior is not None) == priors and pruner in verified.get(t.number, {})]
            return min(mine, key=lambda t: verified[t.number][pruner].ppl, default=None)

        searched, prior = best(False), best(True)
        if searched is None or prior is None:
            continue
        mine, theirs = verified[searched.number][pruner], verified[prior.number][pruner]
        for source in ["", *(src for src in mine.draws[0].also if src in theirs.draws[0].also)]:
            a, b = _by_seed(mine, source), _by_seed(theirs, source)
            seeds = sorted(set(a) & set(b))
            out.append(Verdict(pruner, searched.number, prior.number, prior.prior or "",
                               statistics.fmean(a.values()), statistics.fmean(b.values()),
                               sum(a[s] < b[s] for s in seeds), len(seeds), source))
    return out


def _by_seed(v: Verification, source: str) -> dict[int, float]:
    """Perplexity per calibration seed on the evaluation part (``source`` "") or on an extra
    source."""
    return v.by_seed if not source else {d.seed: d.also[source].ppl for d in v.draws}


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


def best_plan(study: optuna.Study, done: list[StoredTrial] | None = None) -> Plan:
    """The study's best plan: the finalists' choice where they ran (search/finalists.py),
    else the trial of lowest search fitness (``done``: :func:`store.ranked`, when read already)."""
    done = store.ranked(study) if done is None else done
    if not done:
        raise ValueError(f"study {study.study_name} has no complete trial")
    return store.trial_plan(study, store.finalist_choice(study, done) or done[0])


__all__ = ["ReportRow", "StudyReport", "Verdict", "best_plan", "build_report", "format_report",
           "pareto_front", "plot_history", "plot_pareto", "second_objective", "verdicts"]
