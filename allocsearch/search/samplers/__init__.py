"""Samplers and pruners by name, for study configs. ``SAMPLERS`` and ``PRUNERS`` are the
registries: plain dicts from name to a factory ``(seed, **params) -> optuna object``."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import optuna

from allocsearch._registry import lookup
from allocsearch.search.samplers.evopress import EvoPressPruner, EvoPressSampler


def _tpe(seed: int, **params: Any) -> optuna.samplers.BaseSampler:
    # multivariate + group: per-block offsets are modelled jointly, as the budget couples them.
    opts: dict[str, Any] = {"multivariate": True, "group": True, "n_startup_trials": 10}
    with warnings.catch_warnings():  # both options are still "experimental" in Optuna 5.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, **(opts | params))


def _cmaes(seed: int, **params: Any) -> optuna.samplers.BaseSampler:
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False, **params)


def _gp(seed: int, **params: Any) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, **params)


def _nsga2(seed: int, **params: Any) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed, **params)


def _random(seed: int, **params: Any) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed, **params)


def _evopress(seed: int, **params: Any) -> optuna.samplers.BaseSampler:
    return EvoPressSampler(seed=seed, **params)


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "cmaes": _cmaes,
    "gp": _gp,
    "nsga2": _nsga2,
    "random": _random,
    "evopress": _evopress,
}


def _none(**_: Any) -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


def _median(**params: Any) -> optuna.pruners.BasePruner:
    opts: dict[str, Any] = {"n_startup_trials": 5, "n_warmup_steps": 0}
    return optuna.pruners.MedianPruner(**(opts | params))


def _halving(**params: Any) -> optuna.pruners.BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner(**params)


def _hyperband(**params: Any) -> optuna.pruners.BasePruner:
    return optuna.pruners.HyperbandPruner(**params)


def _evopress_pruner(**params: Any) -> optuna.pruners.BasePruner:
    return EvoPressPruner(**params)


PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "none": _none,
    "median": _median,
    "halving": _halving,
    "hyperband": _hyperband,
    "evopress": _evopress_pruner,
}


def make_sampler(name: str, seed: int, params: dict[str, Any]) -> optuna.samplers.BaseSampler:
    if "seed" in params:
        raise ValueError(f"sampler.params.seed: the study's seed seeds the sampler; "
                         f"set seed={params['seed']}")
    factory = lookup(SAMPLERS, name, "sampler")
    try:
        return factory(seed, **params)
    except TypeError as exc:  # an unknown keyword: a user's mistake, in one line
        raise ValueError(f"sampler {name!r}: {exc}") from None


def make_pruner(name: str, params: dict[str, Any]) -> optuna.pruners.BasePruner:
    factory = lookup(PRUNERS, name, "pruner")
    try:
        return factory(**params)
    except TypeError as exc:
        raise ValueError(f"pruner {name!r}: {exc}") from None


__all__ = ["PRUNERS", "SAMPLERS", "EvoPressPruner", "EvoPressSampler", "make_pruner",
           "make_sampler"]
