"""How good is a predictor: rank metrics on held-out studies, parity plots, importances.

Held-out means whole studies, not random rows: :func:`leave_one_study_out` trains on every
study but one and predicts that one, for each study in turn, so no plan is scored by a model
that saw its neighbours from the same search trajectory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from allocsearch.plan import ModuleChoice, Plan
from allocsearch.plan_codec import plan_from_sparsities
from allocsearch.predictor.additive import AdditiveRegressor
from allocsearch.predictor.base import DEFAULT_MODEL
from allocsearch.predictor.features import FeatureTable
from allocsearch.predictor.model import Predictor
from allocsearch.predictor.records import PlanRecord


@dataclass(frozen=True)
class Scores:
    """Agreement of predicted and measured log-fitness on ``n`` plans; ``coverage`` is the
    share of plans whose measurement falls inside the predicted mean +- 1 std (about 0.68
    if the spread were a calibrated Gaussian uncertainty; NaN without a spread)."""

    n: int
    spearman: float
    kendall: float
    mae_log: float
    top10_recall: float
    coverage: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "spearman": self.spearman, "kendall": self.kendall,
                "mae_log": self.mae_log, "top10_recall": self.top10_recall, "coverage": self.coverage}


def top_recall(pred: NDArray[np.float64], true: NDArray[np.float64], share: float = 0.1) -> float:
    """Share of the truly best ``share`` of plans (lowest fitness) that the prediction also
    puts in its best ``share`` (at least one plan)."""
    k = max(1, round(share * len(true)))
    best_true = set(np.argsort(true, kind="stable")[:k].tolist())
    best_pred = set(np.argsort(pred, kind="stable")[:k].tolist())
    return len(best_true & best_pred) / k


def score(pred: NDArray[np.float64], true: NDArray[np.float64],
          std: NDArray[np.float64] | None = None) -> Scores:
    """Spearman, Kendall, MAE (in log space), top-10% recall and, given the ensemble's
    ``std``, the +-1 std coverage of ``pred`` against ``true``."""
    if len(true) < 3:
        return Scores(len(true), float("nan"), float("nan"), float("nan"), float("nan"))
    coverage = float(np.mean(np.abs(pred - true) <= std)) if std is not None else float("nan")
    return Scores(len(true), float(stats.spearmanr(pred, true).statistic),
                  float(stats.kendalltau(pred, true).statistic),
                  float(np.mean(np.abs(pred - true))), top_recall(pred, true), coverage)


@dataclass(frozen=True)
class HeldOut:
    """Out-of-study predictions for every record (same order as the records)."""

    records: list[PlanRecord]
    mean: NDArray[np.float64]
    std: NDArray[np.float64]

    @property
    def true(self) -> NDArray[np.float64]:
        return np.log(np.array([r.fitness for r in self.records], dtype=np.float64))

    def scores(self) -> dict[str, Any]:
        """Overall, per target and per study."""
        true = self.true
        out: dict[str, Any] = {"overall": score(self.mean, true, self.std).to_dict(), "per_target": {},
                               "per_study": {}}
        for key, group in (("per_target", lambda r: f"{r.target:.4g}"), ("per_study", lambda r: r.study)):
            for name in sorted({group(r) for r in self.records}):
                rows = np.array([group(r) == name for r in self.records])
                out[key][name] = score(self.mean[rows], true[rows], self.std[rows]).to_dict()
        return out


def leave_one_study_out(table: FeatureTable, records: Sequence[PlanRecord], *, model: str = DEFAULT_MODEL,
                        members: int = 5, seed: int = 0,
                        group: Callable[[PlanRecord], str] | None = None) -> HeldOut:
    """Predict each study's plans with a predictor trained on all the other studies; with
    ``group`` (record -> name), on the records of every other group: a study is then held out
    together with the studies of its group (its other seeds, say)."""
    key = group or (lambda r: r.study)
    groups = sorted({key(r) for r in records})
    if len(groups) < 2:
        raise ValueError(f"held-out evaluation needs records from at least 2 studies, got {groups}")
    mean = np.zeros(len(records))
    std = np.zeros(len(records))
    for name in groups:
        train = [r for r in records if key(r) != name]
        test = [i for i, r in enumerate(records) if key(r) == name]
        pred = Predictor.train(table, train, model=model, members=members, seed=seed)
        m, s = pred.predict([records[i].plan for i in test])
        mean[test], std[test] = m, s
    return HeldOut(list(records), mean, std)


def lighter_plan(plan: Plan, step: float = 0.05) -> Plan:
    """``plan`` with every module ``step`` less sparse (not below 0), at the budget that gives;
    unstructured, without the plan's block actions (a lighter dropped block is no drop)."""
    lower = {n: max(0.0, v - step) for n, v in plan.sparsities().items()}
    modules = {n: ModuleChoice(v) for n, v in lower.items()}
    budget = Plan(plan.model, 0.0, modules).budget()  # Plan.budget: the parameter-weighted mean
    return plan_from_sparsities(plan.model, budget, [lower[n] for n in plan.model.shapes])


def extrapolation_margin(table: FeatureTable, records: Sequence[PlanRecord], *, model: str = DEFAULT_MODEL,
                         members: int = 5, seed: int = 0, quantile: float = 0.3,
                         step: float = 0.05) -> float:
    """Can ``model`` rank a plan ahead of every plan it was trained on? Trained only on the
    records no better than the ``quantile`` of their fitness, how far (log-fitness) it predicts
    the best of them made ``step`` lighter in every module below all of them (negative: above).
    A linear part extrapolates; plain trees cannot (they predict no lower than their lowest leaf)."""
    cut = float(np.quantile([r.fitness for r in records], quantile))
    train = [r for r in records if r.fitness >= cut]
    pred = Predictor.train(table, train, model=model, members=members, seed=seed)
    mean, _ = pred.predict([r.plan for r in train])
    (light,), _ = pred.predict([lighter_plan(min(train, key=lambda r: r.fitness).plan, step)])
    return float(mean.min() - light)


def hold_out(table: FeatureTable, records: Sequence[PlanRecord], *, model: str = DEFAULT_MODEL,
             members: int = 5, seed: int = 0, share: float = 0.3,
             group: Callable[[PlanRecord], str] | None = None) -> HeldOut:
    """Leave-one-study-out when the records come from several studies (``group``: see
    :func:`leave_one_study_out`); from a single study, its last ``share`` of trials (by trial
    number) predicted by a model of the earlier ones."""
    if len({r.study for r in records}) > 1:
        return leave_one_study_out(table, records, model=model, members=members, seed=seed, group=group)
    order = sorted(records, key=lambda r: r.trial)
    cut = max(4, round(len(order) * (1.0 - share)))
    if cut >= len(order):
        raise ValueError(f"too few records ({len(order)}) to hold any out")
    pred = Predictor.train(table, order[:cut], model=model, members=members, seed=seed)
    mean, std = pred.predict([r.plan for r in order[cut:]])
    return HeldOut(order[cut:], mean, std)


def importances(pred: Predictor, top: int = 15) -> list[tuple[str, float]]:
    """The ``top`` features by mean total gain over the ensemble (XGBoost), or by absolute
    coefficient (the additive baseline); empty for models without either."""
    names = pred.table.names
    total = np.zeros(len(names))
    for m in pred.members:
        booster: Any = getattr(m, "booster", None)
        if hasattr(booster, "get_score"):  # XGBoost
            for key, gain in booster.get_score(importance_type="total_gain").items():
                total[int(key[1:])] += float(gain)  # keys are f<column>
        elif hasattr(booster, "feature_importance"):  # LightGBM
            total += np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64)
        elif isinstance(m, AdditiveRegressor) and m.coef is not None:
            total[m.columns] += np.abs(m.coef)
    if not total.any():
        return []
    order = np.argsort(-total, kind="stable")[:top]
    share = total / total.sum()
    return [(names[i], float(share[i])) for i in order]


def parity_plot(held: HeldOut, path: Path, title: str = "") -> Path:
    """Predicted against measured fitness (log axes), one colour per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from allocsearch.io import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(5.5, 5))
    true = held.true
    for target in sorted({r.target for r in held.records}):
        rows = np.array([abs(r.target - target) < 1e-9 for r in held.records])
        ax.errorbar(np.exp(true[rows]), np.exp(held.mean[rows]), yerr=None, fmt="o", ms=3,
                    alpha=0.6, label=f"{target:.0%}")
    lo, hi = float(np.exp(min(true.min(), held.mean.min()))), float(np.exp(max(true.max(), held.mean.max())))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured fitness")
    ax.set_ylabel("predicted fitness (held-out study)")
    ax.set_title(title or "predictor parity")
    ax.legend(title="target")
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
