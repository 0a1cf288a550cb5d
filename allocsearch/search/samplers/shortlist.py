"""A sampler that takes a share of its trials from a short list and the rest from the
sampler it wraps.

    sampler = ShortlistSampler(TPESampler(...), propose=screener.propose, share=0.5)

For every trial that is not an enqueued one (a warm start), the wrapper first lets the wrapped
sampler do what it always does (``before_trial``, and ``sample_relative`` for the relative
search space), so a CMA-ES or NSGA-II sampler counts the trial in its generation and TPE sees
it like any other. When the trial is due for the short list (``share`` of them, spread
evenly) and ``propose`` hands back values, those values replace the wrapped sampler's: once
told, the trial's parameters are the proposed ones, and every sampler learns from them as from
its own. ``propose(study, trial)`` returns None when it has nothing (a predictor still
warming up): the wrapped sampler's values stand, and the share is not owed later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

Propose = Callable[[optuna.Study, FrozenTrial], "dict[str, Any] | None"]


class ShortlistSampler(optuna.samplers.BaseSampler):
    """``share`` of the searched trials from ``propose``, the rest from ``base``."""

    def __init__(self, base: optuna.samplers.BaseSampler, propose: Propose, share: float) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self.base = base
        self.propose = propose
        self.share = share
        self._credit = 0.0  # accumulated share; a trial is due when it reaches 1
        self._chosen: dict[int, dict[str, Any]] = {}  # trial number -> proposed values

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)
        if trial.system_attrs.get("fixed_params"):
            return  # an enqueued warm start: its values are fixed already
        self._credit += self.share
        if self._credit < 1.0 - 1e-9:
            return
        values = self.propose(study, trial)
        if values is None:  # nothing to propose yet: ask again at the next trial, owe nothing
            self._credit = 1.0 - self.share
            return
        self._credit -= 1.0
        self._chosen[trial.number] = values

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        # Always ask the wrapped sampler: CMA-ES and NSGA-II register the trial here.
        sampled = self.base.sample_relative(study, trial, search_space)
        chosen = self._chosen.get(trial.number)
        if chosen is None:
            return sampled
        return sampled | {name: chosen[name] for name in search_space if name in chosen}

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        chosen = self._chosen.get(trial.number)
        if chosen is not None and param_name in chosen:
            return chosen[param_name]
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._chosen.pop(trial.number, None)
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()
