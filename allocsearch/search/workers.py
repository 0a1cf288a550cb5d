"""Study-wide budgets for many workers: each worker claims its next trial under the study lock.

A claim counts the study's trials in the storage, not this process's: finished trials
(complete or pruned) and running ones (other workers') hold the ``n_trials`` slots; failed
trials hold none (a trial failed for a dead worker is enqueued again by the storage's retry
callback, and its retry takes a slot when it runs). So with N workers the study ends with
exactly ``n_trials`` finished trials, and the trials that were enqueued once (priors, screened
proposals) are each asked once.
"""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass
from typing import Literal

import optuna
from optuna.trial import TrialState

from allocsearch.search import store

#: Trials that count towards ``n_trials`` (a failed or interrupted trial is run again).
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class StudyCount:
    """What the storage holds of one study, counted in one read."""

    finished: int
    running: int
    waiting: int
    tokens: int  # search tokens the finished trials' fitness read, and any setup (block curves)

    @property
    def occupied(self) -> int:
        """The ``n_trials`` slots taken: finished trials and running ones."""
        return self.finished + self.running

    def end(self, n_trials: int, max_tokens: int | None) -> Literal["done", "spent"] | None:
        """Which of a study's two ends it reached: ``done`` (``n_trials`` finished), ``spent``
        (``max_tokens`` search tokens read), or neither."""
        if self.finished >= n_trials:
            return "done"
        if max_tokens is not None and self.tokens >= max_tokens:
            return "spent"
        return None

    @staticmethod
    def of(study: optuna.Study) -> StudyCount:
        trials = store.trials(study)
        done = [t for t in trials if t.state in FINISHED]
        return StudyCount(
            finished=len(done),
            running=sum(t.state == TrialState.RUNNING for t in trials),
            waiting=sum(t.state == TrialState.WAITING for t in trials),
            tokens=sum(t.tokens for t in done) + store.setup_tokens(study),
        )


@dataclass(frozen=True)
class Claim:
    """A worker's next step: ``run`` the asked ``trial``; ``wait`` for other workers' running
    trials (they hold the last slots, and one may belong to a dead worker and be retried);
    or stop, the study being ``done`` (``n_trials`` finished) or ``spent`` (``max_tokens``)."""

    action: Literal["run", "wait", "done", "spent"]
    count: StudyCount
    trial: optuna.Trial | None = None


def claim_trial(study: optuna.Study, n_trials: int, max_tokens: int | None) -> Claim:
    """Fail stale trials (their retries are enqueued), then ask for a trial if a slot is free.
    Call it with the study lock held: the count and the ask must be one step."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    count = StudyCount.of(study)
    end = count.end(n_trials, max_tokens)
    if end is not None:
        return Claim(end, count)
    if count.occupied >= n_trials:
        return Claim("wait", count)
    with warnings.catch_warnings():  # "heartbeat ... supposed to be used with Study.optimize"
        warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
        trial = study.ask()
    # The first heartbeat now, not when the trial's thread starts: a worker killed in between
    # would leave a running trial that never goes stale, and the study would wait for it.
    study._storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
    store.write_trial(trial, worker=worker_id())
    return Claim("run", count, trial)


def worker_id() -> str:
    """Who ran a trial (its ``worker`` user attribute): host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"
