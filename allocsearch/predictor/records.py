"""Training records: (plan -> measured fitness) pairs, and their JSONL files.

A records file is JSON lines: a header ``{"kind": "header", "schema_version": 1, "models":
{fingerprint: identity}}``, then one record per line (the plan's per-module sparsities in the
identity's module order, its N:M patterns and structured actions: :mod:`allocsearch.plan_codec`,
the encoding a study's trials use too; the fitness and where it came from). Plans are
rebuilt and validated on reading; nothing is unpickled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from allocsearch.io import atomic_write_text
from allocsearch.plan import ModelIdentity, Plan, PlanError
from allocsearch.plan_codec import decode_plan, encode_plan

RECORDS_SCHEMA_VERSION = 1


class RecordsError(ValueError):
    """A records file that cannot be read, naming the file and line."""


@dataclass(frozen=True)
class PlanRecord:
    """One measured plan: ``fitness`` (lower is better) of ``fitness_name`` on ``tokens``
    search tokens, from trial ``trial`` of ``study``."""

    plan: Plan
    fitness: float
    fitness_name: str = "ppl"
    tokens: int = 0
    study: str = ""
    trial: int = -1
    sampler: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> float:
        return self.plan.target

    def to_line(self) -> dict[str, Any]:
        """One records line: the plan's compact encoding (structured actions included) and
        where its fitness came from."""
        return {"kind": "record", "model": self.plan.model.fingerprint, **encode_plan(self.plan),
                "fitness": self.fitness, "fitness_name": self.fitness_name, "tokens": self.tokens,
                "study": self.study, "trial": self.trial, "sampler": self.sampler, "extra": self.extra}


def record_from_line(ident: ModelIdentity, row: dict[str, Any]) -> PlanRecord:
    """A record from one line of :meth:`PlanRecord.to_line` (its plan rebuilt and validated)."""
    fitness = float(row["fitness"])
    if not math.isfinite(fitness) or fitness <= 0:
        raise RecordsError(f"fitness must be a positive finite number, got {fitness}")
    prov = {"study": row.get("study", ""), "trial": row.get("trial", -1)}
    plan = decode_plan(ident, row, prov)
    return PlanRecord(plan, fitness, str(row.get("fitness_name", "ppl")), int(row.get("tokens", 0)),
                      str(row.get("study", "")), int(row.get("trial", -1)), str(row.get("sampler", "")),
                      dict(row.get("extra") or {}))


def write_records(records: Iterable[PlanRecord], path: str | Path) -> Path:
    """Write a records file atomically."""
    records = list(records)
    models = {r.plan.model.fingerprint: r.plan.model.to_dict() for r in records}
    lines = [json.dumps({"kind": "header", "schema_version": RECORDS_SCHEMA_VERSION, "models": models})]
    lines += [json.dumps(r.to_line()) for r in records]
    return atomic_write_text(Path(path), "\n".join(lines) + "\n")


def read_records(path: str | Path) -> list[PlanRecord]:
    """Read and validate a records file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise RecordsError(f"{p}: cannot read records ({exc.strerror})") from None
    models: dict[str, ModelIdentity] = {}
    out: list[PlanRecord] = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{p}:{i}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordsError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise RecordsError(f"{where}: each line must be a JSON object")
        try:
            if row.get("kind") == "header":
                if row.get("schema_version") != RECORDS_SCHEMA_VERSION:
                    raise RecordsError(f"{where}: unsupported schema_version {row.get('schema_version')!r}")
                models |= {k: ModelIdentity.from_dict(v) for k, v in row["models"].items()}
                continue
            ident = models.get(row["model"])
            if ident is None:
                raise RecordsError(f"{where}: model {row['model']!r} is not in the file's header")
            out.append(record_from_line(ident, row))
        except (KeyError, TypeError, PlanError, RecordsError) as exc:
            raise RecordsError(f"{where}: {exc}") from None
    if not models:
        raise RecordsError(f"{p}: no header line (is this an allocsearch records file?)")
    return out
