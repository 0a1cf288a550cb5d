"""Studies -> predictor training records: every completed trial's plan and fitness.

    allocsearch study records studies/smollm2-70/ --out records.jsonl
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.trial import TrialState

from allocsearch.predictor.records import PlanRecord
from allocsearch.search import store
from allocsearch.search.storage import load_study


def study_records(study: optuna.Study, read: Sequence[store.StoredTrial] | None = None,
                  tokens: int | None = None) -> list[PlanRecord]:
    """One record per trial whose fitness was read at the full fidelity: every completed trial,
    and pruned ones that were stopped only at the last fidelity (the EvoPress-style pruner
    stops offspring there when a study has one fidelity). With ``tokens``, one per trial
    that read that many tokens, at that fidelity (a study whose pruner stops most trials at
    the first fidelity has few full-fidelity records, but one at the first for every trial).
    ``read``: the study's trials when the caller has just read them (one storage read
    instead of two)."""
    store.identity(study)  # a study not written by allocsearch fails here, in one line
    facts = store.facts(study)
    extra = {k: facts[k] for k in ("model_source", "profile") if k in facts}
    kept = (TrialState.COMPLETE, TrialState.PRUNED)
    trials = [t for t in read if t.state in kept] if read is not None else store.trials(study, kept)
    full = max((t.tokens for t in trials if t.state == TrialState.COMPLETE), default=0)
    out = []
    for t in trials:
        if t.plan is None:
            continue
        if tokens is not None:
            if tokens not in t.intermediate:
                continue
            fitness, read_tokens = t.intermediate[tokens], tokens
        else:
            done = t.state == TrialState.COMPLETE
            if t.tokens != full or not (done or t.intermediate):
                continue
            fitness = t.values[0] if done else t.intermediate[max(t.intermediate)]
            read_tokens = t.tokens
        source = ({"prior": t.prior} if t.prior is not None else {}) | \
            ({"screened": t.screened} if t.screened is not None else {})
        out.append(PlanRecord(store.trial_plan(study, t), float(fitness), facts["fitness"], read_tokens,
                              study.study_name, t.number, str(facts.get("sampler", "")),
                              extra | source))
    return out


def folder_records(folders: Sequence[Path], storage: str | None = None,
                   tokens: int | None = None) -> list[PlanRecord]:
    """Records of the studies in these output folders (each holding ``study.db``), at the
    full fidelity or at ``tokens`` (see :func:`study_records`)."""
    out: list[PlanRecord] = []
    for folder in folders:
        out += study_records(load_study(Path(folder), storage), tokens=tokens)
    return out
