"""Finalists: the study's best plan chosen by the prune users apply, on the search split.

A surrogate fitness (a SparseGPT level database, cached Wanda ranks) ranks plans close to
the best one only roughly (``benchmarks/correlation.py`` measures how closely).
With ``finalists: {top: K}`` the K best distinct plans by search fitness are pruned
sequentially with ``verify.pruner`` on ``verify``'s calibration windows and measured on the
search windows of the top fidelity (:meth:`StudyConfig.finalist_config`); the lowest mean
over the calibration draws is the study's best plan (:func:`allocsearch.search.report.best_plan`).
The evaluation split stays unread until verification. The measurements are stored in the
study, so a resumed or re-reported study reads them back, and their tokens count as the
study's search tokens.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

import optuna
from tqdm.auto import tqdm

from allocsearch.evaluate import Evaluator, verify
from allocsearch.evaluate.verification import settings_key
from allocsearch.search import store
from allocsearch.search.config import StudyConfig
from allocsearch.search.screening import plan_key


@dataclass(frozen=True)
class Finalist:
    """One finalist: its trial, search (surrogate) fitness and real perplexity per draw."""

    trial: int
    search_fitness: float
    prior: str | None
    draws: tuple[float, ...]

    @property
    def ppl(self) -> float:
        return statistics.fmean(self.draws)


def pick_finalists(study: optuna.Study, top: int) -> list[store.StoredTrial]:
    """The ``top`` best complete trials whose plans differ (a repeated plan is skipped)."""
    out: list[store.StoredTrial] = []
    seen: set[str] = set()
    for t in store.ranked(study):
        if len(out) == top:
            break
        k = plan_key(store.trial_plan(study, t))
        if k not in seen:
            seen.add(k)
            out.append(t)
    return out


def run_finalists(study: optuna.Study, ev: Evaluator, config: StudyConfig,
                  progress: bool = False) -> list[Finalist]:
    """Measure the finalists for real (or read them back) and store the choice."""
    fc = config.finalist_config()
    skey = settings_key(fc)
    stored = store.finalists(study)
    # A finalist measured before with the same settings is read back (a resumed study that
    # gained trials measures only the plans new to its short list).
    known = {int(r["trial"]): r for r in stored["rows"]} \
        if stored is not None and stored["settings_key"] == skey else {}
    rows, tokens = [], 0
    for t in pick_finalists(study, config.finalists.top):
        assert t.value is not None
        if t.number in known:
            rows.append(Finalist(t.number, t.value, t.prior, tuple(known[t.number]["draws"])))
            continue
        result = verify(ev, store.trial_plan(study, t), fc)
        rows.append(Finalist(t.number, t.value, t.prior, tuple(d.ppl for d in result.draws)))
        # Counted as a fidelity counts them (windows x seqlen), per draw.
        tokens += len(result.draws) * (fc.nsamples or 0) * fc.seqlen
        if progress:
            tqdm.write(f"finalist trial {t.number} (search fitness {t.value:.4g}): {fc.pruner} "
                       f"prune, search-split perplexity {rows[-1].ppl:.4g}")
    if stored is not None and not tokens and stored["top"] == config.finalists.top \
            and [r.trial for r in rows] == [int(r["trial"]) for r in stored["rows"]]:
        return rows  # nothing new: the stored choice stands
    chosen = min(rows, key=lambda f: f.ppl)
    data: dict[str, Any] = {"settings_key": skey, "settings": fc.settings(), "top": config.finalists.top,
                            "chosen": chosen.trial, "rows": [asdict(f) for f in rows]}
    store.save_finalists(study, data, tokens)
    return rows
