"""The study's progress bar: best so far, the running trial's fidelity, the token budget and
the screening state, and one line per finished trial."""

from __future__ import annotations

import logging
import math

import optuna
from tqdm.auto import tqdm

from allocsearch.search import store
from allocsearch.search.config import StudyConfig
from allocsearch.search.trials import TrialRecord
from allocsearch.search.workers import StudyCount

log = logging.getLogger("allocsearch.search.runner")


class TrialProgress:
    """The progress bar (best so far, the running trial's fidelity, budget and screening
    state) and one line per finished trial."""

    def __init__(self, config: StudyConfig, study: optuna.Study, count: StudyCount, enabled: bool) -> None:
        self.config = config
        self.study = study
        self.enabled = enabled
        self.tokens = count.tokens
        self.screening: tuple[int, int, float | None] | None = None
        self.bar = tqdm(total=config.n_trials, initial=count.finished, desc=f"study {config.name}",
                        unit="trial", disable=not enabled)
        self.best = _best_text(study)  # refreshed once per finished trial (a storage query)
        self._waiting = False

    def counted(self, count: StudyCount) -> None:
        """The study's totals, all workers together."""
        self.tokens = count.tokens
        if count.finished != self.bar.n:
            self.bar.n = count.finished
            self.bar.refresh()

    def waiting(self, count: StudyCount) -> None:
        if not self._waiting:
            msg = (f"waiting: {count.running} trial(s) of other workers hold the last slots of "
                   f"{self.config.n_trials}")
            if self.enabled:
                self.bar.write(msg)
            else:
                log.info(msg)
        self._waiting = True

    def _status(self) -> str:
        text = f"best {self.best}"
        if self.config.max_tokens is not None:  # the bar counts trials; say how much budget is left
            text += f" | {self.tokens}/{self.config.max_tokens} tok"
        if self.screening is not None:
            rounds, pool, rho = self.screening
            text += f" | round {rounds}, pool {pool}, rho " + ("-" if rho is None else f"{rho:.2f}")
        return text

    def step(self, rec: TrialRecord) -> None:
        self.bar.set_postfix_str(f"{self._status()} | trial {rec.number} at {rec.tokens} tok")

    def finished(self, rec: TrialRecord) -> None:
        self._waiting = False
        if rec.state != "failed":
            self.bar.update(1)
            self.tokens += rec.tokens
        self.best = _best_text(self.study)
        self.bar.set_postfix_str(self._status())
        what = f" [{rec.provenance['prior']}]" if "prior" in rec.provenance else ""
        if "screened" in rec.provenance:
            sc = rec.provenance["screened"]
            what += f" [screened r{sc['round']}: predicted {math.exp(sc['mean']):.4g}]"
        if rec.state == "complete":
            vals = f"{rec.value:.4g}" + (f", {self.config.objectives[1]} {rec.second:.6g}"
                                         if rec.second is not None else "")
            msg = f"trial {rec.number} {self.config.evaluator.fitness} {vals}{what}"
        else:
            msg = f"trial {rec.number} {rec.state}"
            msg += f" at {rec.tokens} tokens" if rec.steps else ""
            msg += f" ({rec.reason})" if rec.state in ("infeasible", "failed") else ""
            msg += what
        if self.enabled:
            self.bar.write(f"{msg}  ({rec.seconds:.1f}s; {self._status()})")
        else:
            log.info(msg)

    def close(self) -> None:
        self.bar.close()


def _best_text(study: optuna.Study) -> str:
    done = store.ranked(study)
    return f"{done[0].values[0]:.4g} (#{done[0].number})" if done else "-"
