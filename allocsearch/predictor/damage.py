"""Measured damage: a plan's cost read from block curves measured around a few centre plans.

The feature table says how much Wanda-score mass a plan removes per module, and a model must
learn from studies what each removed share costs; with a few hundred plans it learns that too
coarsely to rank the plans of a converged study, which differ by small moves between blocks.
Here the cost is measured instead. Around a centre plan at a target ``t`` (the uniform plan, a
ramp), each block alone is moved to a few absolute levels, every other block staying at the
centre, and the rise of the search fitness over the centre's is recorded (log-perplexity for
``ppl``): :func:`allocsearch.evaluate.sensitivity.cached_block_curves`, 30 blocks x 6 levels =
180 evaluations per centre and target for SmolLM2-135M, a one-off per model and Evaluator.

A plan's damage around one centre is the sum over blocks of each block's rise at its sparsity
(linear between the measured levels and the centre's own sparsity, where the rise is 0; the
end levels' rises beyond them): the additive estimate that :mod:`allocsearch.allocation.curves`
minimises, here used to rank plans. Each centre's estimate is best near it, so a plan's damage
blends the centres' sums with weights inverse to its mean squared distance from each centre,
at the measured target nearest the plan's.

:func:`blend_scale` turns the damage into a term beside a model's prediction: scaled so that
its spread within a study matches the prediction's (both pooled over the training studies), the
two rank a study's plans with equal say; the damage alone knows nothing of how fitness differs
between targets, and the model alone too little of the small moves inside one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from allocsearch.allocation.curves import BlockCurves
from allocsearch.evaluate.evaluator import Evaluator
from allocsearch.evaluate.sensitivity import Around, cached_block_curves
from allocsearch.io import atomic_write_text
from allocsearch.plan import Plan

DAMAGE_FORMAT = "allocsearch-damage"
DAMAGE_SCHEMA_VERSION = 1

#: Offsets from the target at which each block is measured: the blocks space moves a block by
#: -0.3..+0.25 around the target before the budget projection.
OFFSETS = (-0.3, -0.2, -0.1, 0.1, 0.2, 0.3)
TOP = 0.95  # the highest level measured (the spaces' upper bound)
#: The centres measured by default: the uniform plan, where random and early plans lie, and
#: a steep ramp (sparser late blocks), where converged searches go.
CENTRES = ("uniform", "ramp slope=0.3")


def damage_levels(target: float) -> tuple[float, ...]:
    """The levels measured around ``target``: its :data:`OFFSETS`, within (0, :data:`TOP`]."""
    return tuple(sorted({round(min(max(target + o, 0.01), TOP), 4) for o in OFFSETS} - {round(target, 4)}))


@dataclass(frozen=True)
class CentredCurves:
    """Block curves measured around one centre plan at ``target``: ``centre``, its (blocks,)
    block sparsities; ``curves.delta[b][j]``, the rise when block ``b`` alone is at
    ``curves.levels[j]``."""

    target: float
    label: str
    centre: tuple[float, ...]
    curves: BlockCurves

    def __post_init__(self) -> None:
        if len(self.centre) != self.curves.num_blocks:
            raise ValueError(f"a centre of {len(self.centre)} blocks for curves of {self.curves.num_blocks}")

    def rise(self, blocks: NDArray[np.float64]) -> NDArray[np.float64]:
        """(plans, blocks) each block's rise at its sparsity (``blocks``: (plans, blocks))."""
        out = np.empty_like(blocks, dtype=np.float64)
        for b, row in enumerate(self.curves.delta):
            x = np.array([*self.curves.levels, self.centre[b]])
            v = np.array([*row, 0.0])
            order = np.argsort(x, kind="stable")
            out[:, b] = np.interp(blocks[:, b], x[order], v[order])
        return out

    def distance(self, blocks: NDArray[np.float64]) -> NDArray[np.float64]:
        """(plans,) mean squared distance of each plan's block sparsities from the centre."""
        return np.asarray(((blocks - np.array(self.centre)) ** 2).mean(axis=1), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "label": self.label, "centre": list(self.centre),
                "curves": self.curves.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CentredCurves:
        return cls(float(data["target"]), str(data["label"]), tuple(float(v) for v in data["centre"]),
                   BlockCurves.from_dict(data["curves"]))


@dataclass(frozen=True)
class DamageCurves:
    """Every measured (target, centre); at least one, all of one model."""

    entries: tuple[CentredCurves, ...]

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError("no block curves")
        if len({(e.curves.num_blocks, e.curves.model) for e in self.entries}) != 1:
            raise ValueError("every centre's curves must be of one model")
        keys = [(e.target, e.label) for e in self.entries]
        if len(set(keys)) != len(keys):
            raise ValueError("one set of curves per target and centre")

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the model the curves were measured on."""
        return self.entries[0].curves.model

    @property
    def targets(self) -> tuple[float, ...]:
        return tuple(sorted({e.target for e in self.entries}))

    @property
    def tokens_read(self) -> int:
        """Search tokens their measurement read (each centre's curves and the centre itself)."""
        return sum(e.curves.tokens_read for e in self.entries)

    def nearest(self, target: float) -> float:
        """The measured target nearest ``target`` (the lower one on a tie)."""
        return min(self.targets, key=lambda t: (abs(t - target), t))

    def damage(self, blocks: NDArray[np.float64], targets: NDArray[np.float64]) -> NDArray[np.float64]:
        """(plans,) each plan's blended damage (``blocks``: (plans, blocks) block sparsities;
        ``targets``: (plans,) their budgets), read at the measured target nearest its own."""
        out = np.empty(len(blocks), dtype=np.float64)
        nearest = np.array([self.nearest(float(t)) for t in targets])
        for t in set(nearest.tolist()):
            rows = nearest == t
            here = [e for e in self.entries if e.target == t]
            sums = np.stack([e.rise(blocks[rows]).sum(axis=1) for e in here])  # (centres, plans)
            # Inverse-distance weights; a plan on a centre takes that centre's sum alone.
            dist = np.stack([e.distance(blocks[rows]) for e in here]) + 1e-12  # (centres, plans)
            w = (1.0 / dist) / (1.0 / dist).sum(axis=0)
            out[rows] = (w * sums).sum(axis=0)
        return out

    def of_plans(self, plans: Sequence[Plan]) -> NDArray[np.float64]:
        """:meth:`damage` of ``plans``."""
        blocks = np.array([p.block_sparsity() for p in plans], dtype=np.float64)
        return self.damage(blocks, np.array([p.target for p in plans], dtype=np.float64))

    def to_dict(self) -> dict[str, Any]:
        return {"entries": [e.to_dict() for e in self.entries]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DamageCurves:
        return cls(tuple(CentredCurves.from_dict(e) for e in data["entries"]))

    def save(self, path: str | Path) -> Path:
        """One JSON file (atomically), versioned."""
        payload = {"format": DAMAGE_FORMAT, "schema_version": DAMAGE_SCHEMA_VERSION} | self.to_dict()
        return atomic_write_text(Path(path), json.dumps(payload) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> DamageCurves:
        """What :meth:`save` wrote; a ValueError naming the file for anything else."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{p}: cannot read damage curves ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != DAMAGE_FORMAT:
            raise ValueError(f"{p}: not an allocsearch damage file")
        if data.get("schema_version") != DAMAGE_SCHEMA_VERSION:
            raise ValueError(f"{p}: unsupported schema_version {data.get('schema_version')!r}")
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{p}: {exc}") from None


def pooled_within_std(values: NDArray[np.float64], groups: Sequence[str]) -> float:
    """The root of the mean over ``groups`` of each group's variance of ``values``: the
    spread within a study, whatever the studies' levels."""
    keys = np.array(list(groups))
    if len(keys) != len(values):
        raise ValueError(f"{len(values)} values for {len(keys)} group labels")
    return float(np.sqrt(np.mean([np.var(values[keys == g]) for g in dict.fromkeys(keys.tolist())])))


def blend_scale(model_mean: NDArray[np.float64], damage: NDArray[np.float64], groups: Sequence[str]) -> float:
    """The factor on the damage term beside a model's prediction (``model_mean``, ``damage``:
    (plans,) over the training plans; ``groups``: their studies) that gives both the same
    spread within a study."""
    spread = pooled_within_std(damage, groups)
    if spread <= 0.0:
        raise ValueError("the damage does not vary within any study")
    return pooled_within_std(model_mean, groups) / spread


def measure_damage(ev: Evaluator, target: float, centre: str = "uniform", *,
                   tokens: int | None = None, progress: bool = True) -> CentredCurves:
    """Block curves around ``centre`` (a reference spelling: ``"uniform"``, ``"ramp
    slope=0.3"``) at ``target`` with ``tokens`` search tokens (the Evaluator's first fidelity by
    default), from the cache where measured before."""
    around = Around.reference(centre, ev, target)
    curves = cached_block_curves(ev, damage_levels(target), tokens=tokens, progress=progress, around=around)
    return CentredCurves(float(target), around.label, tuple(around.plan.block_sparsity()), curves)
