"""An EvoPress-style evolutionary search as an Optuna sampler and pruner.

EvoPress (Sieberling et al., 2024) evolves per-layer compression levels from one parent:
each offspring applies a few **level switches** (one layer one level up, another one level
down, so the budget holds) and offspring go through **multi-step selection**: scored on few
tokens first, only the promising ones on more. Here:

- :class:`EvoPressSampler` proposes offspring of the best finished trial. Per-block,
  per-module or per-type float parameters of one name (``offset_0 .. offset_29``,
  ``offset_0.self_attn.q_proj .. offset_29.mlp.down_proj``, or ``offset_self_attn.q_proj ..
  offset_mlp.down_proj``) are levels on a grid of ``step``;
  a level switch moves one block (module) up a step and another down one (for equal-sized
  ones the budget is unchanged; the space's projection absorbs any rest). Other parameters
  are perturbed rarely (categoricals resampled, scalars jittered).
- :class:`EvoPressPruner` is the multi-step selection: at each fidelity an offspring is
  stopped when it is worse than its parent was at the same fidelity (by ``slack``).
Until a trial has finished (the enqueued priors usually), the sampler samples at random.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.search_space import IntersectionSearchSpace
from optuna.trial import FrozenTrial, TrialState

from allocsearch.search.mutation import Level, level_switch

#: ``offset_3`` (a block's value) or ``offset_3.self_attn.q_proj`` (a module's): the group is
#: the name before the block index, and switches happen inside a group
_LEVEL = re.compile(r"^(.*)_(\d+)(\.[A-Za-z_][\w.]*)?$")
#: ``offset_self_attn.q_proj`` (a projection kind's value: a dotted module path, no block)
_TYPE = re.compile(r"^(.*?)_([A-Za-z_]\w*\.[\w.]+)$")


def _group(name: str) -> str | None:
    """The switch group of a per-block, per-module or per-type parameter name, else None."""
    m = _LEVEL.match(name) or _TYPE.match(name)
    return m.group(1) if m else None


def _parent(study: optuna.Study) -> FrozenTrial | None:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None]
    return min(done, key=lambda t: float(t.value)) if done else None  # type: ignore[arg-type]


class EvoPressSampler(optuna.samplers.BaseSampler):
    """Offspring of the best trial by level-switch mutations (see the module docstring)."""

    def __init__(
        self,
        *,
        seed: int | None = None,
        step: float = 0.025,
        max_switches: int = 3,
        other_rate: float = 0.1,
    ) -> None:
        if step <= 0 or max_switches < 1 or not 0.0 <= other_rate <= 1.0:
            raise ValueError("need step > 0, max_switches >= 1 and 0 <= other_rate <= 1")
        self.step = step
        self.max_switches = max_switches
        self.other_rate = other_rate
        self._rng = np.random.default_rng(seed)
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._space = IntersectionSearchSpace(include_pruned=True)

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._space.calculate(study)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        parent = _parent(study)
        if parent is None or not search_space:
            return {}
        params = {k: parent.params[k] for k in search_space if k in parent.params}
        groups: dict[str, list[str]] = defaultdict(list)
        others: list[str] = []
        for name, dist in search_space.items():
            group = _group(name)
            if group is not None and isinstance(dist, FloatDistribution) and not dist.log:
                groups[group].append(name)
            else:
                others.append(name)
        switchable = [g for g in groups.values() if len(g) >= 2]
        for _ in range(int(self._rng.integers(1, self.max_switches + 1)) if switchable else 0):
            self._switch(params, switchable, search_space)
        for name in others:
            if self._rng.random() < self.other_rate or not switchable:
                params[name] = self._perturb(params.get(name), search_space[name])
        return params

    def _switch(
        self, params: dict[str, Any], groups: Sequence[list[str]], space: dict[str, BaseDistribution]
    ) -> None:
        """One block (module) up a level, another down one, both inside their bounds."""
        names = groups[int(self._rng.integers(len(groups)))]
        levels = {}
        for name in names:
            dist = space[name]
            assert isinstance(dist, FloatDistribution)
            levels[name] = Level(dist.low, dist.high, dist.step or self.step)
        level_switch(params, names, levels, self._rng)

    def _perturb(self, value: Any, dist: BaseDistribution) -> Any:
        if isinstance(dist, CategoricalDistribution):
            return dist.choices[int(self._rng.integers(len(dist.choices)))]
        if isinstance(dist, FloatDistribution) and value is not None:
            width = dist.high - dist.low
            v = float(np.clip(value + self._rng.normal(0.0, 0.1 * width), dist.low, dist.high))
            if dist.step:
                v = dist.low + round((v - dist.low) / dist.step) * dist.step
            return min(max(v, dist.low), dist.high)
        return dist.to_external_repr(dist.to_internal_repr(value)) if value is not None else None

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)


class EvoPressPruner(optuna.pruners.BasePruner):
    """Multi-step selection: stop an offspring at a fidelity where it trails its parent."""

    def __init__(self, slack: float = 0.0) -> None:
        if slack < 0:
            raise ValueError("slack must be >= 0")
        self.slack = slack

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        parent = _parent(study)
        if step is None or parent is None:
            return False
        ref = parent.intermediate_values.get(step)
        if ref is None:
            return False
        return float(trial.intermediate_values[step]) > float(ref) * (1.0 + self.slack)
