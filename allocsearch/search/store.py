"""The study store: the only code that reads or writes an allocsearch study's Optuna user
attributes, typed and versioned.

A study holds, once: the store version, the model identity (to rebuild any trial's plan), the
:class:`StudyProtocol` (what makes two fitness values comparable), and a few facts for
predictor records (sampler, model source, profile data). Each trial holds its plan in the
compact encoding of :mod:`allocsearch.plan_codec` (structured actions included), the search
tokens its fitness read, and where it came from (a prior, a screening round). Verifications are
study attributes keyed by a digest of everything that decides their numbers
(:func:`allocsearch.evaluate.verification.key`), since a finished trial cannot be changed.

Resuming a study with a config whose protocol differs is refused (:func:`check_protocol`):
"best" would otherwise rank perplexities read on different token counts, targets or spaces.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from allocsearch.evaluate import Verification
from allocsearch.plan import ModelIdentity, Plan, PlanError
from allocsearch.plan_codec import COMPACT_KEYS, decode_plan, encode_plan

STORE_VERSION = 1
_VERSION, _MODEL, _PROTOCOL, _FACTS = "store_version", "model", "protocol", "facts"
_VERIFIED, _DENSE_ACC = "verified:", "dense_accuracy:"
_CURVES, _SETUP_TOKENS = "block_curves", "setup_tokens"
_FINALISTS = "finalists"


class ProtocolError(ValueError):
    """A resume whose config would mix incomparable fitness, said in one line."""


@dataclass(frozen=True)
class StudyProtocol:
    """What decides a study's fitness values: a resume must keep every field. ``fingerprint``
    is the loaded model's ("" until it is loaded: then it is not compared)."""

    model: str
    target: float
    space: str
    space_digest: str
    fitness: str
    fidelities: tuple[int, ...]
    evaluator: dict[str, Any]
    profile: dict[str, Any]
    objectives: tuple[str, ...]
    tasks: dict[str, Any] | None = None
    latency: dict[str, Any] | None = None
    fingerprint: str = ""

    def flat(self) -> dict[str, Any]:
        """Dotted keys -> JSON values (what :meth:`differences` compares)."""
        out: dict[str, Any] = {}
        for key, value in json.loads(json.dumps(asdict(self), default=str)).items():
            if isinstance(value, dict):
                out |= {f"{key}.{k}": v for k, v in value.items()}
            else:
                out[key] = value
        return out

    def differences(self, stored: dict[str, Any]) -> list[str]:
        """``key: stored -> now`` for each key this protocol and a stored flat one both name
        and disagree on (a key one of them lacks, or an unknown fingerprint, is not compared)."""
        mine = self.flat()
        # A key added after a study was stored: that study was measured at the key's old value.
        sections = _prefixes(stored)
        stored = {k: v for k, v in ADDED_KEYS.items() if k.split(".")[0] + "." in sections} | stored
        out = []
        for k in sorted(set(mine) & set(stored)):
            if k == "fingerprint" and "" in (mine[k], stored[k]):
                continue
            if mine[k] != stored[k]:
                out.append(f"{k}: {stored[k]!r} -> {mine[k]!r}")
        return out


#: Protocol keys added after studies were first stored, and the value a study that lacks them
#: was measured with (compared only when the stored protocol has the key's section at all).
ADDED_KEYS: dict[str, Any] = {"evaluator.reference": "none"}


def _prefixes(flat: dict[str, Any]) -> set[str]:
    return {k.split(".")[0] + "." for k in flat if "." in k}


def _legacy_protocol(attrs: dict[str, Any]) -> dict[str, Any]:
    """What a study written before the store recorded of its protocol."""
    out: dict[str, Any] = {k: attrs[k] for k in ("target", "space", "fitness", "fidelities", "objectives")
                           if k in attrs}
    if "model_source" in attrs:
        out["model"] = attrs["model_source"]
    return out


def stored_protocol(study: optuna.Study) -> dict[str, Any] | None:
    """The flat protocol a study was created with (None: a new study)."""
    attrs = study.user_attrs
    if _PROTOCOL in attrs:
        return dict(attrs[_PROTOCOL])
    return _legacy_protocol(attrs) if _MODEL in attrs else None


def check_protocol(study: optuna.Study, protocol: StudyProtocol) -> None:
    """Raise :class:`ProtocolError` naming each key whose value differs from the stored one."""
    stored = stored_protocol(study)
    if stored is None:
        return
    diffs = protocol.differences(stored)
    if diffs:
        raise ProtocolError(
            f"study {study.study_name!r} was run with another protocol, so its fitness values "
            f"would not compare: {'; '.join(diffs)}. Use a new study name or output folder (or "
            f"restore these settings); n_trials, max_tokens, verify and sampler settings may change")


def initialised(study: optuna.Study) -> bool:
    return _MODEL in study.user_attrs


def init_study(study: optuna.Study, identity: ModelIdentity, protocol: StudyProtocol,
               facts: dict[str, Any]) -> None:
    """Write what a new study stores once."""
    study.set_user_attr(_VERSION, STORE_VERSION)
    study.set_user_attr(_MODEL, identity.to_dict())
    study.set_user_attr(_PROTOCOL, protocol.flat())
    study.set_user_attr(_FACTS, facts)
    for key in ("objectives", "fitness", "target"):  # read by reports of any version
        study.set_user_attr(key, protocol.flat()[key])


def identity(study: optuna.Study) -> ModelIdentity:
    if _MODEL not in study.user_attrs:
        raise ValueError(f"study {study.study_name!r} was not written by allocsearch (no model attribute)")
    return ModelIdentity.from_dict(study.user_attrs[_MODEL])


def facts(study: optuna.Study) -> dict[str, Any]:
    """Sampler, model source, profile data and the fitness name (legacy keys read too)."""
    attrs = study.user_attrs
    out = dict(attrs.get(_FACTS) or {k: attrs[k] for k in ("sampler", "model_source", "profile")
                                      if k in attrs})
    return out | {"fitness": str(attrs.get("fitness", "ppl")),
                  "objectives": list(attrs.get("objectives") or ["fitness"])}


# ------------------------------------------------------------------- trials
@dataclass(frozen=True)
class StoredTrial:
    """A typed view of one trial: its state and values, its plan's compact encoding (None:
    stopped before a plan was made), and what the search recorded of it."""

    number: int
    state: TrialState
    values: tuple[float, ...]
    params: dict[str, Any]
    intermediate: dict[int, float]
    plan: dict[str, Any] | None
    prior: str | None = None
    screened: dict[str, Any] | None = None
    tokens: int = 0
    seconds: float | None = None
    worker: str | None = None
    accuracy: float | None = None
    constraint: float | None = None
    fail_reason: str | None = None
    infeasible: str | None = None
    start: datetime | None = None
    complete: datetime | None = None
    fixed: dict[str, Any] = field(default_factory=dict)  # an enqueued trial's values

    @property
    def proposed(self) -> dict[str, Any]:
        """The values the trial evaluates: its parameters, or an enqueued trial's fixed ones."""
        return self.params or self.fixed

    @property
    def value(self) -> float | None:
        return self.values[0] if self.values else None

    @staticmethod
    def of(t: FrozenTrial) -> StoredTrial:
        a = t.user_attrs
        plan = {k: a[k] for k in COMPACT_KEYS if k in a} if "sparsities" in a else None
        return StoredTrial(
            t.number, t.state, tuple(t.values or ()), dict(t.params), dict(t.intermediate_values),
            plan, a.get("prior"), a.get("screened"), int(a.get("tokens", 0)), a.get("seconds"),
            a.get("worker"), a.get("accuracy"), a.get("constraint"), a.get("fail_reason"),
            a.get("infeasible"), t.datetime_start, t.datetime_complete,
            dict(t.system_attrs.get("fixed_params") or {}))


def trials(study: optuna.Study, states: tuple[TrialState, ...] | None = None) -> list[StoredTrial]:
    return [StoredTrial.of(t) for t in study.get_trials(deepcopy=False, states=states)]


def ranked(study: optuna.Study) -> list[StoredTrial]:
    """Complete trials, best (lowest first objective) first; ties by trial number."""
    done = trials(study, (TrialState.COMPLETE,))
    return sorted(done, key=lambda t: (t.values[0], t.number))


def trial_plan(study: optuna.Study, trial: StoredTrial | FrozenTrial) -> Plan:
    """The plan a trial evaluated, rebuilt from its attributes."""
    t = trial if isinstance(trial, StoredTrial) else StoredTrial.of(trial)
    if t.plan is None:
        raise ValueError(f"trial {t.number} has no plan (it was stopped before one was made)")
    prov = {"method": "search", "study": study.study_name, "trial": t.number,
            "space": study.user_attrs.get(_PROTOCOL, study.user_attrs).get("space"),
            "params": t.params, "fitness": t.value}
    try:
        return decode_plan(identity(study), t.plan, prov)
    except PlanError as exc:
        raise PlanError(f"trial {t.number}: {exc}") from None


def write_plan(trial: optuna.Trial, plan: Plan) -> None:
    for key, value in encode_plan(plan).items():
        trial.set_user_attr(key, value)


def write_trial(trial: optuna.Trial, **values: Any) -> None:
    """Record what the search measured of a running trial: ``tokens``, ``seconds``,
    ``worker``, ``accuracy``, ``constraint``, ``fail_reason`` or ``infeasible``."""
    allowed = {"tokens", "seconds", "worker", "accuracy", "constraint", "fail_reason", "infeasible"}
    unknown = set(values) - allowed
    if unknown:
        raise KeyError(f"not a trial record field: {sorted(unknown)}")
    for key, value in values.items():
        trial.set_user_attr(key, value)


def provenance(trial: optuna.Trial) -> dict[str, Any]:
    """Where an asked trial came from: ``prior`` (a warm start's label) or ``screened``. Read
    from the storage: a short-listing sampler marks the trial after Optuna cached it."""
    attrs = trial.study._storage.get_trial_user_attrs(trial._trial_id)
    return {k: v for k, v in attrs.items() if k in ("prior", "screened")}


def mark_screened(study: optuna.Study, trial: FrozenTrial, screened: dict[str, Any]) -> None:
    """Record on a trial being asked that its values come from the short list (what the
    predictor said of them); the sampler calls this before the trial's values are drawn."""
    study._storage.set_trial_user_attr(trial._trial_id, "screened", screened)


def enqueue(study: optuna.Study, params: dict[str, Any], *, prior: str | None = None,
            screened: dict[str, Any] | None = None) -> None:
    attrs = ({"prior": prior} if prior is not None else {}) | ({"screened": screened} if screened else {})
    study.enqueue_trial(params, user_attrs=attrs)


# ------------------------------------------------------------ verifications
@dataclass(frozen=True)
class VerifiedTrial:
    trial: int
    fitness: float
    prior: str | None
    result: Verification
    settings: dict[str, Any] = field(default_factory=dict)


def verification(study: optuna.Study, number: int, key: str) -> VerifiedTrial | None:
    raw = study.user_attrs.get(f"{_VERIFIED}{number}:{key}")
    return None if raw is None else _verified(raw)


def save_verification(study: optuna.Study, v: VerifiedTrial) -> None:
    study.set_user_attr(f"{_VERIFIED}{v.trial}:{v.result.key}",
                        {"trial": v.trial, "fitness": v.fitness, "prior": v.prior,
                         "result": v.result.to_dict(), "settings": v.settings})


def verifications(study: optuna.Study) -> list[VerifiedTrial]:
    """Every stored verification (of this store version), in trial order."""
    out = [_verified(v) for k, v in study.user_attrs.items() if k.startswith(_VERIFIED)]
    return sorted(out, key=lambda v: (v.trial, v.result.pruner))


def _verified(raw: dict[str, Any]) -> VerifiedTrial:
    return VerifiedTrial(int(raw["trial"]), float(raw["fitness"]), raw.get("prior"),
                         Verification.from_dict(raw["result"]), dict(raw.get("settings") or {}))


def _curves_attr(around: str) -> str:
    # The curves from dense keep the key studies stored before curves around a plan existed.
    return _CURVES if not around else f"{_CURVES}:around={around}"


def block_curves(study: optuna.Study, around: str = "") -> dict[str, Any] | None:
    """The block loss curves a ``curves`` warm start measured for this study (their data), from
    dense or ``around`` the plan of that label."""
    raw = study.user_attrs.get(_curves_attr(around))
    return dict(raw) if raw is not None else None


def save_block_curves(study: optuna.Study, data: dict[str, Any], tokens: int, around: str = "") -> None:
    """Keep the curves with the search tokens they read, which the study's count includes
    (added to those of the study's other curves)."""
    study.set_user_attr(_curves_attr(around), data)
    _add_setup_tokens(study, tokens)


def setup_tokens(study: optuna.Study) -> int:
    """Search tokens read outside the trials (the block curves before them, a short-list's
    probes among them, the finalists' real measurements after them), part of the study's count."""
    return int(study.user_attrs.get(_SETUP_TOKENS, 0))


def _add_setup_tokens(study: optuna.Study, tokens: int) -> None:
    study.set_user_attr(_SETUP_TOKENS, setup_tokens(study) + int(tokens))


def add_probe_tokens(study: optuna.Study, tokens: int) -> None:
    """Count the search tokens a short-list's probes read (outside any trial) as the study's."""
    _add_setup_tokens(study, tokens)


def finalists(study: optuna.Study) -> dict[str, Any] | None:
    """The finalists' real measurements and the trial they chose (search/finalists.py)."""
    raw = study.user_attrs.get(_FINALISTS)
    return dict(raw) if raw is not None else None


def save_finalists(study: optuna.Study, data: dict[str, Any], tokens: int) -> None:
    """Keep the finalists' measurements; the search tokens they read count as the study's."""
    study.set_user_attr(_FINALISTS, data)
    _add_setup_tokens(study, tokens)


def finalist_choice(study: optuna.Study, done: list[StoredTrial]) -> StoredTrial | None:
    """The trial of ``done`` the finalists chose as the study's best plan (None: no finalists
    ran)."""
    stored = finalists(study)
    return None if stored is None else next((t for t in done if t.number == int(stored["chosen"])), None)


def dense_accuracy(study: optuna.Study, key: str) -> float | None:
    """The dense model's task accuracy stored for the task settings of ``key``."""
    value = study.user_attrs.get(f"{_DENSE_ACC}{key}")
    return None if value is None else float(value)


def save_dense_accuracy(study: optuna.Study, key: str, value: float) -> None:
    study.set_user_attr(f"{_DENSE_ACC}{key}", value)


def dense_accuracies(study: optuna.Study) -> list[float]:
    return [float(v) for k, v in study.user_attrs.items() if k.startswith(_DENSE_ACC)]


def trials_table(study: optuna.Study) -> list[dict[str, Any]]:
    """One flat row per trial (number, state, value, prior, screening round, tokens, seconds),
    for a DataFrame in a notebook."""
    return [{"number": t.number, "state": t.state.name, "value": t.value, "prior": t.prior,
             "screened_round": t.screened["round"] if t.screened else None, "tokens": t.tokens,
             "seconds": t.seconds} for t in trials(study)]
