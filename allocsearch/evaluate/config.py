"""How the Evaluator scores candidates (:class:`EvaluatorConfig`, validated when made) and
what it reports per fidelity (:class:`FitnessStep`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from allocsearch.data.windows import DataConfig
from allocsearch.database.grid import DEFAULT_LEVELS, LevelGrid
from allocsearch.evaluate.backends import BACKENDS, backend_class
from allocsearch.evaluate.fitness import FITNESSES
from allocsearch.evaluate.reference import NO_REFERENCE, canonical_reference

#: The reference plan each backend anchors at unless a config names one (``none``: one-shot).
DEFAULT_REFERENCE: dict[str, str] = {"database": "uniform"}


@dataclass(frozen=True)
class EvaluatorConfig:
    """How candidates are scored. ``masks`` names the backend that writes plans (``ranks``:
    cached scores of a ranking pruner; ``database``: a level database of ``pruner``'s weights
    at ``levels``); ``pruner`` is whose weights the fitness sees. ``fidelities`` are prefixes
    of the search part, in tokens; the last one is the full fidelity. ``profile`` is the
    calibration data of the scores (and of the database). ``reference`` (an allocator, with
    its parameters if any, as the label ``"ramp slope=0.1"``; a study config may also write the
    mapping ``{method: ramp, slope: 0.1}``; or ``none``): the plan at the study's target
    whose sequential prune calibrates the scores
    (:meth:`Evaluator.use_reference`): a database is built on the activations a sequential
    prune near that plan sees, instead of the dense model's (one-shot). Unset, it is
    ``uniform`` for the database backend (it ranks sequential SparseGPT plans better, see
    docs/evaluator.md) and ``none`` for cached ranks. It is stored as the canonical label
    (:class:`~allocsearch.evaluate.reference.ReferencePlan`), so two spellings compare equal."""

    fitness: str = "ppl"
    masks: str = "ranks"
    pruner: str = "wanda"
    levels: tuple[float, ...] = DEFAULT_LEVELS
    source: str = "embedded"
    seqlen: int = 512
    fidelities: tuple[int, ...] = (2048, 8192, 20480)
    topk: int = 32
    batch_size: int = 1
    profile: DataConfig = field(default_factory=DataConfig)
    reference: str | None = None

    def __post_init__(self) -> None:
        if self.reference is None:
            object.__setattr__(self, "reference", DEFAULT_REFERENCE.get(self.masks, NO_REFERENCE))
        if self.fitness not in FITNESSES:
            raise ValueError(f"unknown fitness {self.fitness!r}; known: {', '.join(FITNESSES)}")
        if self.masks not in BACKENDS:
            raise ValueError(f"unknown masks {self.masks!r}; known: {', '.join(BACKENDS)}")
        backend_class(self.masks).check_pruner(self.pruner)
        object.__setattr__(self, "levels", LevelGrid.parse(self.levels).levels)
        fids = tuple(int(f) for f in self.fidelities)
        if not fids or any(f < 1 for f in fids) or list(fids) != sorted(set(fids)):
            raise ValueError(f"fidelities must be increasing positive token counts, got {fids}")
        object.__setattr__(self, "fidelities", fids)
        if self.seqlen < 2 or self.topk < 1 or self.batch_size < 1:
            raise ValueError("seqlen must be >= 2, topk and batch_size >= 1")
        try:
            object.__setattr__(self, "reference", canonical_reference(self.reference or NO_REFERENCE))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"evaluator reference: {exc}") from exc

    @property
    def windows_needed(self) -> int:
        return math.ceil(self.fidelities[-1] / self.seqlen)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FitnessStep:
    """The running fitness after ``tokens`` search tokens (``windows`` windows)."""

    fidelity: int  # the fidelity this step answers (tokens asked for)
    tokens: int  # tokens actually scored (whole windows)
    windows: int
    value: float
