"""Probed short-listing: a round's best candidates by the predictor, measured on one window.

With ``predictor.probe: N`` a screening round takes the ``N`` best distinct candidates by the
optimistic bound (as it would queue them), measures each on one search window of the study's
Evaluator (:class:`allocsearch.predictor.probe.WindowProbe`: one forward pass of ``seqlen``
tokens with the plan applied) and queues the ``k`` best by :class:`ProbeStack`'s score, the
predicted log-fitness and the log-probe weighted. The weights are fitted on the study's own
probed trials once :data:`STACK_MIN` of them have a measured fitness (prediction and probe
as recorded when the trial was proposed, label the fitness the predictor trains on); before
that, and whenever the fit is degenerate, the probe alone orders the short list. Probes read
search tokens: they count in the study's budget (``max_tokens``) as setup tokens.

Why: on held-out studies a window-0 probe stacked with the predictor agreed with the plans'
measured fitness better than any model of the plan alone (``benchmarks/predictor_probe.py``),
at about a quarter of a 2048-token evaluation each; part of that agreement is the noise of the
tokens the probe shares with the fitness, and at 70% the probed short list did not verify
better than the unprobed one at equal tokens (``benchmarks/predictor_efficiency.py --variant
probe``), so it is off by default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from allocsearch.evaluate import Evaluator
from allocsearch.plan import Plan
from allocsearch.predictor import PlanRecord
from allocsearch.predictor.probe import ProbeStack, WindowProbe, log_probes
from allocsearch.search import store

#: Probed trials with a measured fitness before the study's own stack weights replace the
#: probe alone: two weights fitted on fewer, all of them from the top of earlier short
#: lists, swing with a single plan.
STACK_MIN = 8
#: The ordering before the weights can be fitted: the probe alone.
PROBE_ALONE = ProbeStack(model=0.0, probe=1.0)


@dataclass(frozen=True)
class ShortlistProbe:
    """What a round needs to probe: ``measure`` a plan on the window (its fitness there) and
    the search tokens one measurement reads."""

    measure: Callable[[Plan], float]
    tokens: int

    @classmethod
    def on(cls, ev: Evaluator, window: int) -> ShortlistProbe:
        """The probe of search window ``window`` of ``ev`` with the study's fitness."""
        probe = WindowProbe(ev, window)
        return cls(probe, probe.tokens)


@dataclass(frozen=True)
class ProbedRound:
    """A round's probed short list: the weights it was ordered by, each candidate's probe
    (candidates,), the order (best first) and the search tokens the probes read."""

    stack: ProbeStack
    probes: NDArray[np.float64]
    order: NDArray[np.int64]
    tokens: int

    @classmethod
    def run(cls, prober: ShortlistProbe, plans: Sequence[Plan], predicted: Sequence[float],
            read: Sequence[store.StoredTrial], records: Sequence[PlanRecord]) -> ProbedRound:
        """Probe ``plans`` (their ``predicted`` log-fitness beside) and order them by the
        study's stack (:func:`study_stack` of ``read`` and ``records``)."""
        stack = study_stack(read, records)
        values = [prober.measure(p) for p in plans]
        scores = stack.score(np.asarray(predicted, dtype=np.float64), log_probes(values))
        order = np.argsort(scores, kind="stable").astype(np.int64)
        return cls(stack, np.asarray(values, dtype=np.float64), order, len(plans) * prober.tokens)


def study_stack(read: Sequence[store.StoredTrial], records: Sequence[PlanRecord],
                minimum: int = STACK_MIN) -> ProbeStack:
    """The stack's weights from the study's probed trials that ``records`` label (at least
    ``minimum`` of them), else :data:`PROBE_ALONE`."""
    label = {r.trial: float(np.log(r.fitness)) for r in records}
    probed = [t.screened | {"label": label[t.number]} for t in read
              if t.screened is not None and "probe" in t.screened and t.number in label]
    if len(probed) < minimum:
        return PROBE_ALONE
    predicted = np.array([p["mean"] for p in probed], dtype=np.float64)  # (trials,)
    log_label = np.array([p["label"] for p in probed], dtype=np.float64)
    try:
        stack = ProbeStack.fit(predicted, log_probes([p["probe"] for p in probed]), log_label,
                               [0] * len(probed))
    except ValueError:  # every label equal
        return PROBE_ALONE
    # A probe weight of zero or less would order the list against the measured window (the
    # model alone without its bound's optimism); keep the probe alone until the fit agrees.
    return stack if stack.probe > 0 else PROBE_ALONE
