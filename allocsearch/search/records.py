"""Studies -> predictor training records: every completed trial's plan and fitness.

    allocsearch study records studies/smollm2-70/ --out records.jsonl
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.trial import TrialState

from allocsearch.predictor.records import PlanRecord
from allocsearch.search.storage import load_study
from allocsearch.search.trials import trial_plan


def study_records(study: optuna.Study) -> list[PlanRecord]:
    """One record per trial whose fitness was read at the full fidelity: every completed trial,
    and pruned ones that were stopped only at the last fidelity (the EvoPress-style pruner
    stops offspring there when a study has one fidelity)."""
    attrs = study.user_attrs
    if "model" not in attrs:
        raise ValueError(f"study {study.study_name!r} was not written by allocsearch (no model attribute)")
    extra = {k: attrs[k] for k in ("model_source", "profile") if k in attrs}
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    full = max((t.user_attrs.get("tokens", 0) for t in trials if t.state == TrialState.COMPLETE), default=0)
    out = []
    for t in trials:
        done = t.state == TrialState.COMPLETE
        if "sparsities" not in t.user_attrs or t.user_attrs.get("tokens", 0) != full \
                or not (done or t.intermediate_values):
            continue
        fitness = t.values[0] if done else t.intermediate_values[max(t.intermediate_values)]
        out.append(PlanRecord(
            trial_plan(study, t), float(fitness), str(attrs.get("fitness", "ppl")),
            int(t.user_attrs.get("tokens", 0)), study.study_name, t.number, str(attrs.get("sampler", "")),
            extra | {k: t.user_attrs[k] for k in ("prior", "screened") if k in t.user_attrs},
        ))
    return out


def folder_records(folders: Sequence[Path], storage: str | None = None) -> list[PlanRecord]:
    """Records of the studies in these output folders (each holding ``study.db``)."""
    out: list[PlanRecord] = []
    for folder in folders:
        out += study_records(load_study(Path(folder), storage))
    return out
