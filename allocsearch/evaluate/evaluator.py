"""The Evaluator: score a plan in about the time of one forward pass, then verify it exactly.

    ev = Evaluator.build(loaded, EvaluatorConfig(fitness="kl"))
    for step in ev.iter_fitness(plan):      # one step per fidelity (2k, 8k, ... tokens)
        ...                                 # report to Optuna, stop early if poor
    ev.fitness(plan)                        # the value at the full fidelity
    ev.close()                              # dense weights back, bit-identical

The evaluator owns the model's prunable weights while it is open: it writes plans in place
through a backend (:mod:`allocsearch.evaluate.backends`: cached Wanda/magnitude ranks, or a
level database of SparseGPT-pruned modules) and :meth:`Evaluator.restore` puts the dense
weights back. A backend may only write some plans (the database: plans on its level grid);
:meth:`Evaluator.prepare` turns any plan into the nearest one it can write.

The Evaluator keeps one job, fitness over a backend. What else is measured of a plan takes an
Evaluator as an argument, each in its own module: exact verification
(:mod:`allocsearch.evaluate.verification`), task accuracy on the cached masks
(:mod:`allocsearch.evaluate.scoring`) and measured latency (:mod:`allocsearch.evaluate.latency`).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from pathlib import Path
from types import TracebackType

import torch
from tqdm.auto import tqdm

from allocsearch.actions import BlockAction
from allocsearch.apply import plan_targets
from allocsearch.budget import identity_from_adapter
from allocsearch.data.windows import DataConfig, evaluation_windows
from allocsearch.database.grid import LevelGrid
from allocsearch.evaluate.backends import Backend, BackendSettings, make_backend
from allocsearch.evaluate.config import EvaluatorConfig, FitnessStep
from allocsearch.evaluate.fitness import FITNESSES, DenseReference, dense_reference, make_fitness
from allocsearch.evaluate.reference import NO_REFERENCE, ReferencePlan, canonical_reference
from allocsearch.models.loading import LoadedModel, model_nbytes
from allocsearch.plan import Plan
from allocsearch.profile import Profile, build_profile
from allocsearch.structure import StructureMasks, select_structure


def check_dense(loaded: LoadedModel) -> None:
    """Raise ValueError when ``loaded`` holds a plan someone wrote and did not restore: an
    Evaluator takes the weights it is given for the dense ones."""
    if loaded.written_by is not None:
        raise ValueError(f"this model holds a plan written by {type(loaded.written_by).__name__} "
                         f"and not restored; call its restore() before building an Evaluator "
                         f"on the model, which takes the weights it is given for the dense ones")


class Evaluator:
    """Cached-mask fitness of plans for one loaded model (see the module docstring)."""

    def __init__(
        self, loaded: LoadedModel, profile: Profile, config: EvaluatorConfig, *,
        progress: bool = True, cache_dir: Path | None = None,
    ) -> None:
        check_dense(loaded)
        if loaded.offloaded:
            # Each candidate is a full forward: streaming every block per batch would cost
            # more than the search saves. Offloading serves profile, prune and evaluation.
            raise ValueError("the Evaluator needs the whole model on its device; load the "
                             "model without offloading to search")
        self.loaded = loaded
        self.config = config
        self.profile = profile
        self.cache_dir = cache_dir  # None: the default cache (profiles, databases, block curves)
        self.identity = identity_from_adapter(loaded.adapter, loaded.name)
        self.windows = evaluation_windows(
            loaded.tokenizer, config.source, "search", config.seqlen, config.windows_needed
        )
        settings = BackendSettings(config.pruner, LevelGrid(config.levels), config.batch_size,
                                   cache_dir, progress)
        self.backend: Backend = make_backend(config.masks, loaded, profile, settings)
        #: Hooks masking the structured actions of the plan applied last, and those actions.
        self._masks: StructureMasks | None = None
        self._masked: dict[int, BlockAction] = {}
        # Allocators (OWL reads weights) keep seeing the dense model while plans are applied.
        profile.dense = self.backend.dense
        self.reference: DenseReference | None = None
        if FITNESSES[config.fitness].needs_reference:
            self._reference()
        self.progress = progress
        #: The plan whose sequential-prune norms score the masks (None: the dense profile's).
        self.anchor_plan: Plan | None = None
        #: The target of the reference plan anchored at by :meth:`use_reference` (None: the
        #: anchor, if any, is a caller's own, such as an anchored round's).
        self.reference_target: float | None = None
        #: The allocator that plan came from (None with reference_target).
        self.reference_name: str | None = None

    def _reference(self) -> DenseReference:
        """The dense model's top-k log-probs on the search windows, computed once."""
        if self.reference is None:
            self.restore()
            c = self.config
            self.reference = dense_reference(self.loaded.model, self.windows, c.topk, c.batch_size)
        return self.reference

    @classmethod
    def build(
        cls,
        loaded: LoadedModel,
        config: EvaluatorConfig | None = None,
        *,
        cache_dir: Path | None = None,
        progress: bool = True,
    ) -> Evaluator:
        """Profile the dense model (or reuse the cached profile), then build the caches."""
        config = config or EvaluatorConfig()
        check_dense(loaded)  # before profiling: the profile's key hashes the weights
        profile = build_profile(loaded, config.profile, cache_dir=cache_dir, progress=progress)
        return cls(loaded, profile, config, progress=progress, cache_dir=cache_dir)

    # ----------------------------------------------------------------- fitness
    def prepare(self, plan: Plan) -> Plan:
        """The nearest plan the backend can write exactly, at the same target (the plan
        itself for cached ranks; for a level database, the plan snapped to its grid)."""
        plan.validate()
        plan.check_model(self.identity)
        return self.backend.snap(plan)

    def apply(self, plan: Plan) -> int:
        """Write ``plan`` into the model (only the layers that changed); returns their count."""
        plan.validate()
        plan.check_model(self.identity)
        self.backend.check(plan)
        self._check_writer()
        self.loaded.written_by = self
        self._mask_structure(plan.structured())
        return self.backend.apply(plan_targets(plan))

    def _mask_structure(self, actions: dict[int, BlockAction]) -> None:
        """Hook in the masked equivalent of ``actions`` (no copy of the model), replacing the
        previous plan's; selections come from the dense profile."""
        if actions == self._masked:
            return
        if self._masks is not None:
            self._masks.remove()
            self._masks = None
        self._masked = dict(actions)
        if actions:
            selection = select_structure(actions, self.profile, self.loaded.adapter)
            self._masks = StructureMasks(self.loaded.adapter, selection)

    @torch.no_grad()
    def iter_fitness(
        self, plan: Plan | None, upto: int | None = None, *, fitness: str | None = None
    ) -> Generator[FitnessStep, None, None]:
        """Apply ``plan`` (None = dense) and yield the running fitness at each fidelity up to
        ``upto`` tokens (the full fidelity by default). Stop iterating to stop early.
        ``fitness`` overrides the configured fitness for this call."""
        name = fitness or self.config.fitness
        fn = make_fitness(name, self._reference)
        if plan is None:
            self.restore()
        else:
            self.apply(plan)
        rungs = [f for f in self.config.fidelities if upto is None or f <= upto]
        if upto is not None and upto not in rungs:
            if upto > self.config.fidelities[-1]:
                raise ValueError(
                    f"fidelity {upto} is above this evaluator's largest, {self.config.fidelities[-1]}"
                )
            rungs.append(upto)
        device = next(self.loaded.model.parameters()).device
        seqlen = self.config.seqlen
        done = 0
        rung = 0
        n_windows = math.ceil(rungs[-1] / seqlen)
        bar = tqdm(total=n_windows, desc=f"fitness ({name})", disable=not self.progress,
                   unit="window", leave=False)
        try:
            while rung < len(rungs):
                # A batch never runs past the next rung, so a trial stopped there costs
                # only that rung's tokens whatever the batch size.
                b = min(self.config.batch_size, math.ceil(rungs[rung] / seqlen) - done)
                ids = self.windows[done : done + b].to(device)
                logits = self.loaded.model(input_ids=ids, use_cache=False).logits  # (B, T, V)
                fn.update(logits, ids, done)
                done += b
                bar.update(b)
                while rung < len(rungs) and done * seqlen >= rungs[rung]:
                    yield FitnessStep(rungs[rung], done * seqlen, done, fn.value())
                    rung += 1
        finally:
            bar.close()

    def fitness(
        self, plan: Plan | None, fidelity: int | None = None, *, fitness: str | None = None
    ) -> float:
        """The fitness of ``plan`` at one fidelity (tokens; the full one by default)."""
        steps = list(self.iter_fitness(plan, upto=fidelity, fitness=fitness))
        return steps[-1].value

    def anchor(self, plan: Plan | None, calibration: DataConfig | None = None) -> None:
        """Model a sequential prune near ``plan`` on the ``calibration`` windows (None goes
        back to the dense profile): cached ranks score with the input norms a sequential
        Wanda prune at ``plan`` sees (:mod:`allocsearch.evaluate.anchor`); a level database is
        rebuilt on the activations of a sequential prune at ``plan``. With the
        verification's calibration, the fitness of ``plan`` itself is then (close to) that of
        its exact sequential prune. A plan the backend cannot write is prepared first (see
        :meth:`prepare`); ``anchor_plan`` is the plan anchored at."""
        if plan is not None:
            plan = self.prepare(plan)
        self.restore()
        self.backend.anchor(plan, calibration or DataConfig())
        self.anchor_plan = plan
        self.reference_target = None  # set by use_reference when this is its reference
        self.reference_name = None

    def use_reference(self, target: float, reference: str | None = None) -> Plan | None:
        """Anchor at the config's ``reference`` plan (or ``reference``: an allocator, with its
        parameters as in ``"ramp slope=0.1"``) at ``target`` on the profile's calibration
        windows (built once per reference and target, then cached like any database), and
        return that plan; nothing (None) for ``reference: none``."""
        name = canonical_reference(reference or self.config.reference or NO_REFERENCE)
        if name == NO_REFERENCE:
            return None
        if (self.reference_target, self.reference_name) == (target, name) and self.anchor_plan is not None:
            return self.anchor_plan
        plan = ReferencePlan.parse(name).plan(self.profile, target)
        self.anchor(plan, self.config.profile)
        self.reference_target, self.reference_name = target, name
        return self.anchor_plan

    # --------------------------------------------------------------- plumbing
    def memory(self) -> dict[str, int]:
        """Bytes the evaluator holds beyond the model, and the model's own size."""
        out = self.backend.nbytes()
        out["reference"] = self.reference.nbytes() if self.reference is not None else 0
        out["windows"] = self.windows.numel() * self.windows.element_size()
        out["model"] = model_nbytes(self.loaded.model)
        return out

    def _check_writer(self) -> None:
        """Refuse a model that holds another Evaluator's plan: this one's backend rewrites only
        the layers it thinks changed, so over that plan it would leave some of its layers."""
        if self.loaded.written_by not in (None, self):
            raise RuntimeError("another Evaluator's plan is written into this model; call "
                               "that Evaluator's restore() first")

    def restore(self) -> None:
        """Dense weights back and no structure masked."""
        self._check_writer()
        self._mask_structure({})
        self.backend.restore()
        self.loaded.written_by = None

    def close(self) -> None:
        """Leave the model dense, as it was given."""
        self.restore()

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

