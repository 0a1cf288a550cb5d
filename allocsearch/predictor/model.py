"""The accuracy predictor: plan -> predicted log-fitness with an uncertainty, no forward pass.

    pred = Predictor.train(table, records)               # model=DEFAULT_MODEL
    mean, std = pred.predict(plans)        # natural log of the fitness, and its uncertainty
    pred.save("predictor.json"); Predictor.load("predictor.json")
    pred.retrain(more_records)             # the same model on its records plus more
    Predictor.train(table, records, damage=curves)   # plus measured damage (predictor.damage)

An ensemble of ``members`` regressors (seeds 0..members-1), each fitted on its own random
``subsample`` of the records; the mean of their predictions is the estimate, and the
uncertainty is their standard deviation combined with the members' out-of-bag error. The file
is JSON: metadata (feature version, the model's fingerprint, fitness name and tokens, training
studies), the feature table, each member as its backend serialises it (XGBoost JSON, skops,
coefficients), and the training records (the plan codec's compact lines), so a study can keep
training a saved predictor on its own trials (:meth:`Predictor.retrain`).

With measured ``damage`` (:class:`~allocsearch.predictor.damage.DamageCurves`), the mean is the
members' plus the plan's damage times a factor fitted on the training records (the same spread
within a study as the members' fit, :func:`~allocsearch.predictor.damage.blend_scale`); the
curves and the factor are saved with the predictor (schema version 3).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from allocsearch.data.windows import DataConfig
from allocsearch.io import atomic_write_text
from allocsearch.plan import Plan
from allocsearch.predictor.base import DEFAULT_MODEL, Regressor, load_regressor, make_regressor
from allocsearch.predictor.damage import DamageCurves, blend_scale
from allocsearch.predictor.feature_cache import build_feature_table
from allocsearch.predictor.features import FEATURE_VERSION, FeatureTable
from allocsearch.predictor.records import PlanRecord, RecordsError, record_from_line

PREDICTOR_FORMAT = "allocsearch-predictor"
#: 2: the file holds its training records (version 1 files load, and cannot be retrained);
#: 3: it may hold measured damage curves and their factor.
PREDICTOR_SCHEMA_VERSION = 3


class PredictorError(ValueError):
    """A predictor that cannot be trained, loaded or applied, with the reason."""


@dataclass(frozen=True)
class PredictorMeta:
    """What a predictor was trained on (saved with it)."""

    model: str
    fingerprint: str
    fitness_name: str
    tokens: int
    studies: tuple[str, ...]
    n_train: int
    members: int
    subsample: float
    feature_version: int = FEATURE_VERSION
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))
    #: Root mean square of the members' out-of-bag residuals (log-fitness; 0 without any),
    #: added in quadrature to the ensemble spread: the spread alone measures only how much
    #: the members disagree, not how wrong they all are (see the coverage in docs/results.md).
    residual_std: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"studies": list(self.studies)}


def check_records(records: Sequence[PlanRecord]) -> tuple[str, int]:
    """The one fitness all records measure, and the search tokens most of them read; a
    PredictorError for too few records or mixed fitnesses. Records of other targets and
    fidelities mix freely: the target is a feature, and a perplexity read on 2048 or 8192
    tokens estimates the same quantity."""
    if len(records) < 4:
        raise PredictorError(f"need at least 4 measured plans to train, got {len(records)}")
    names = sorted({r.fitness_name for r in records})
    if len(names) > 1:
        raise PredictorError(f"records mix fitnesses {names}: a predictor learns one "
                             f"(filter the studies, or use records of one evaluator config)")
    tokens = [r.tokens for r in records]
    return names[0], max(set(tokens), key=lambda t: (tokens.count(t), t))


class Predictor:
    """An ensemble of regressors on one model's feature table (see the module docstring)."""

    def __init__(
        self, table: FeatureTable, model: str, members: list[Regressor], meta: PredictorMeta,
        records: Sequence[PlanRecord] = (), damage: DamageCurves | None = None, damage_scale: float = 0.0,
    ) -> None:
        self.table = table
        self.model = model
        self.members = members
        self.meta = meta
        self.records = list(records)  # what it was trained on
        self.damage = damage
        self.damage_scale = damage_scale  # log-fitness per unit of damage

    @classmethod
    def train(cls, table: FeatureTable, records: Sequence[PlanRecord], *, model: str = DEFAULT_MODEL,
              members: int = 5, subsample: float = 0.8, seed: int = 0,
              damage: DamageCurves | None = None) -> Predictor:
        """Fit ``members`` regressors on log-fitness, each on its own subsample of the records
        (and with ``damage``, its factor: see the module docstring)."""
        fitness_name, tokens = check_records(records)
        if members < 1 or not 0.0 < subsample <= 1.0:
            raise PredictorError("need members >= 1 and 0 < subsample <= 1")
        x = table.features([r.plan for r in records])
        y = np.log(np.array([r.fitness for r in records], dtype=np.float64))
        rng = np.random.default_rng(seed)
        fitted: list[Regressor] = []
        take = max(2, round(subsample * len(records)))
        residuals: list[NDArray[np.float64]] = []
        for i in range(members):
            rows = np.sort(rng.choice(len(records), size=take, replace=False))
            reg = make_regressor(model, table.names, seed + i)
            reg.fit(x[rows], y[rows])
            fitted.append(reg)
            out = np.setdiff1d(np.arange(len(records)), rows)  # this member's out-of-bag rows
            if len(out):
                residuals.append(y[out] - reg.predict(x[out]))
        oob = float(np.sqrt(np.mean(np.concatenate(residuals) ** 2))) if residuals else 0.0
        studies = tuple(sorted({r.study for r in records if r.study}))
        meta = PredictorMeta(table.identity.name, table.identity.fingerprint, fitness_name, tokens, studies,
                             len(records), members, subsample, residual_std=oob)
        pred = cls(table, model, fitted, meta, records)
        return pred if damage is None else pred.with_damage(damage)

    def with_damage(self, damage: DamageCurves) -> Predictor:
        """This predictor with measured ``damage`` added to its mean, at the factor that gives
        it the spread of the members' fit within each study of the training records."""
        if damage.fingerprint != self.table.identity.fingerprint:
            raise PredictorError("the damage curves were measured on another model than the feature table's")
        if not self.records:
            raise PredictorError("a predictor without its training records cannot weigh the damage")
        plans = [r.plan for r in self.records]
        fit = self.predict_rows(self.table.features(plans))[0]
        try:
            scale = blend_scale(fit, damage.of_plans(plans), [r.study for r in self.records])
        except ValueError as exc:
            raise PredictorError(f"cannot weigh the damage: {exc}") from None
        return Predictor(self.table, self.model, self.members, self.meta, self.records, damage, scale)

    def retrain(self, records: Sequence[PlanRecord], *, seed: int = 0) -> Predictor:
        """The same model kind and ensemble, trained on this predictor's records plus ``records``."""
        if not self.records:
            raise PredictorError("this predictor file holds no training records (schema version 1): "
                                 "train it again with this allocsearch to keep training it")
        return Predictor.train(self.table, [*self.records, *records], model=self.model,
                               members=self.meta.members, subsample=self.meta.subsample, seed=seed,
                               damage=self.damage)

    def predict(self, plans: Sequence[Plan]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(mean, std) of the predicted natural-log fitness of each plan."""
        if not plans:
            return np.zeros(0), np.zeros(0)
        mean, std = self.predict_rows(self.table.features(plans))
        if self.damage is not None:
            mean = mean + self.damage_scale * self.damage.of_plans(plans)
        return mean, std

    def predict_rows(self, x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(mean, std): the members' mean, and their spread with the out-of-bag residual
        added in quadrature (both over rows; without the damage, which needs the plans)."""
        preds = np.stack([m.predict(x) for m in self.members])  # (members, rows)
        return preds.mean(0), np.sqrt(preds.var(0) + self.meta.residual_std**2)

    # ------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        return {"format": PREDICTOR_FORMAT, "schema_version": PREDICTOR_SCHEMA_VERSION,
                "model_kind": self.model, "meta": self.meta.to_dict(),
                "features": self.table.to_dict(), "members": [m.to_data() for m in self.members],
                "records": [r.to_line() for r in self.records]} | (
                    {} if self.damage is None else
                    {"damage": {"curves": self.damage.to_dict(), "scale": self.damage_scale}})

    def save(self, path: str | Path) -> Path:
        """Write the predictor as one JSON file (atomically)."""
        return atomic_write_text(Path(path), json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except OSError as exc:
            raise PredictorError(f"{p}: cannot read predictor ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise PredictorError(f"{p}: not valid JSON ({exc.msg})") from None
        except UnicodeDecodeError:
            raise PredictorError(f"{p}: not valid JSON (binary data; predictors are never pickles)") from None
        if not isinstance(data, dict) or data.get("format") != PREDICTOR_FORMAT:
            raise PredictorError(f"{p}: not an allocsearch predictor file")
        if data.get("schema_version") not in (1, 2, PREDICTOR_SCHEMA_VERSION):
            raise PredictorError(f"{p}: unsupported schema_version {data.get('schema_version')!r}")
        try:
            table = FeatureTable.from_dict(data["features"])
            kind = str(data["model_kind"])
            members = [load_regressor(kind, table.names, m) for m in data["members"]]
            m = data["meta"]
            meta = PredictorMeta(m["model"], m["fingerprint"], m["fitness_name"], int(m["tokens"]),
                                 tuple(m["studies"]), int(m["n_train"]), int(m["members"]),
                                 float(m["subsample"]), int(m["feature_version"]), str(m["created"]),
                                 float(m.get("residual_std", 0.0)))
            if meta.fingerprint != table.identity.fingerprint:
                raise PredictorError("its metadata and feature table name different models")
            records = [record_from_line(table.identity, line) for line in data.get("records", [])]
            damage = DamageCurves.from_dict(data["damage"]["curves"]) if "damage" in data else None
            scale = float(data["damage"]["scale"]) if damage is not None else 0.0
            if damage is not None and damage.fingerprint != meta.fingerprint:
                raise PredictorError("its damage curves name another model")
        except (KeyError, TypeError, ValueError, RecordsError) as exc:
            raise PredictorError(f"{p}: {exc}") from None
        return cls(table, kind, members, meta, records, damage, scale)


def train_predictor(records: Sequence[PlanRecord], *, kind: str = DEFAULT_MODEL, members: int = 5,
                    seed: int = 0, model: str | None = None, device: str = "auto", dtype: str = "float32",
                    progress: bool = True, damage: DamageCurves | None = None) -> Predictor:
    """What ``allocsearch predictor train`` writes: ``kind`` x ``members`` trained on
    ``records`` (any mix of studies and targets), on the feature table of their model
    (``model``: another name for it) profiled on the data their studies recorded; with measured
    ``damage`` (``allocsearch predictor damage``) added to its mean."""
    if not records:
        raise PredictorError("no records to train on")
    extra = records[0].extra
    name = model or extra.get("model_source") or records[0].plan.model.name
    data = DataConfig(**extra["profile"]) if "profile" in extra else DataConfig()
    table = build_feature_table(str(name), data, device=device, dtype=dtype, progress=progress)
    return Predictor.train(table, records, model=kind, members=members, seed=seed, damage=damage)
