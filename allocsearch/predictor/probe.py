"""A probe beside the predictor: each plan's fitness on one search window, measured.

A predictor ranks a study's plans from their features and the measured block curves, all
fitted on other plans; on a converged study, whose plans differ by small moves between blocks,
that ranking stays below what a second measurement of the same plans gives
(``benchmarks/predictor_ceiling.py``). A probe measures each plan instead, on a single window of
the Evaluator's search tokens (one forward pass of ``seqlen`` tokens with the plan applied, the
Evaluator's fitness on that window), and :class:`ProbeStack` adds the probe's log to the
predicted log-fitness, so the model orders what one window cannot resolve (plans whose fitness
differs by less than a window's noise) and the window what the model cannot (plans that break
the model in ways no additive curve foresees).

The probe's window is any of the Evaluator's; a window past a study's first fidelity shares no
token with the fitness that rung measures, which is how ``benchmarks/predictor_probe.py`` ranks
the predictor studies' 2048-token labels without scoring their own tokens twice.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm.auto import tqdm

from allocsearch.evaluate.evaluator import Evaluator
from allocsearch.evaluate.fitness import FITNESSES, DenseReference, dense_reference, make_fitness
from allocsearch.plan import Plan

PROBE_FORMAT = "allocsearch-probe-stack"
PROBE_SCHEMA_VERSION = 1


@dataclass
class WindowProbe:
    """``fitness`` (the Evaluator's when None) of a plan on the Evaluator's search window
    ``window`` (0-based, ``seqlen`` tokens). The dense top-k reference a KL probe compares
    with is computed for that window alone, on first use."""

    ev: Evaluator
    window: int
    fitness: str | None = None
    _reference: DenseReference | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.ev.windows)
        if not 0 <= self.window < n:
            raise ValueError(f"window {self.window} is not one of the evaluator's {n} search windows "
                             f"(0..{n - 1}); raise its largest fidelity to reach it")
        name = self.fitness or self.ev.config.fitness
        if name not in FITNESSES:
            raise ValueError(f"unknown fitness {name!r}; known: {', '.join(FITNESSES)}")
        self.fitness = name

    @property
    def tokens(self) -> int:
        """Search tokens one probe reads."""
        return int(self.ev.windows.shape[1])

    def _dense(self) -> DenseReference:
        if self._reference is None:
            self.ev.restore()
            ids = self.ev.windows[self.window : self.window + 1]  # (1, seqlen)
            self._reference = dense_reference(self.ev.loaded.model, ids, self.ev.config.topk)
        return self._reference

    @torch.no_grad()
    def __call__(self, plan: Plan | None) -> float:
        """The probe of ``plan`` (None: the dense model)."""
        assert self.fitness is not None
        fn = make_fitness(self.fitness, self._dense)
        if plan is None:
            self.ev.restore()
        else:
            self.ev.apply(plan)
        device = next(self.ev.loaded.model.parameters()).device
        ids = self.ev.windows[self.window : self.window + 1].to(device)  # (1, seqlen)
        logits = self.ev.loaded.model(input_ids=ids, use_cache=False).logits  # (1, seqlen, V)
        fn.update(logits, ids, 0)  # the reference holds this one window, at index 0
        return fn.value()

    def log_many(self, plans: Sequence[Plan], progress: bool = False) -> NDArray[np.float64]:
        """(plans,) the log of each plan's probe: the scale :class:`ProbeStack` adds."""
        values = [self(p) for p in tqdm(plans, desc=f"probe ({self.fitness})", disable=not progress,
                                        unit="plan", leave=False)]
        return log_probes(values)


def log_probes(values: Sequence[float]) -> NDArray[np.float64]:
    """(plans,) the log of probe values (a KL of 0, the dense model's, floored at 1e-12)."""
    return np.log(np.maximum(np.asarray(values, dtype=np.float64), 1e-12))


@dataclass(frozen=True)
class ProbeStack:
    """``model * predicted + probe * log(probe value)``: a ranking score in log-fitness units.

    :meth:`fit` takes the two weights from studies' records by least squares within each study
    (each study's plans centred, each study weighted by the inverse variance of its labels): only
    the order inside a study is asked of a short-lister, and a study of small moves then counts
    as much as one of wild random plans."""

    model: float
    probe: float

    def score(self, predicted: NDArray[np.float64], log_probe: NDArray[np.float64]) -> NDArray[np.float64]:
        """(plans,) the stacked score of predicted log-fitness and log-probe, both (plans,)."""
        return np.asarray(self.model * predicted + self.probe * log_probe, dtype=np.float64)

    @classmethod
    def fit(cls, predicted: NDArray[np.float64], log_probe: NDArray[np.float64],
            log_label: NDArray[np.float64], groups: Sequence[Hashable]) -> ProbeStack:
        """The weights that best give ``log_label`` from ``predicted`` and ``log_probe`` (all
        (plans,)) within each of ``groups`` (a study per plan); groups of fewer than 3 plans or
        of one label are left out."""
        if not len(predicted) == len(log_probe) == len(log_label) == len(groups):
            raise ValueError("predicted, log_probe, log_label and groups must have one entry per plan")
        rows: list[NDArray[np.float64]] = []
        ys: list[NDArray[np.float64]] = []
        g = np.array([str(k) for k in groups])
        for name in sorted(set(g.tolist())):
            m = g == name
            y = log_label[m] - log_label[m].mean()
            if m.sum() < 3 or y.var() <= 0:
                continue
            w = 1.0 / np.sqrt(y.var())  # rows scaled by sqrt(1/var): least squares weighs 1/var
            x = np.c_[predicted[m] - predicted[m].mean(), log_probe[m] - log_probe[m].mean()]
            rows.append(x * w)
            ys.append(y * w)
        if not rows:
            raise ValueError("no study with 3 or more plans of differing labels to fit the stack on")
        coef, *_ = np.linalg.lstsq(np.vstack(rows), np.concatenate(ys), rcond=None)
        return cls(float(coef[0]), float(coef[1]))

    def to_dict(self) -> dict[str, Any]:
        return {"format": PROBE_FORMAT, "schema_version": PROBE_SCHEMA_VERSION,
                "model": self.model, "probe": self.probe}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeStack:
        if data.get("format") != PROBE_FORMAT or data.get("schema_version") != PROBE_SCHEMA_VERSION:
            raise ValueError(f"not a probe stack of schema {PROBE_SCHEMA_VERSION}: "
                             f"{data.get('format')!r} v{data.get('schema_version')!r}")
        return cls(float(data["model"]), float(data["probe"]))
