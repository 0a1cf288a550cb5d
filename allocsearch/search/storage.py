"""Opening stored studies: an output folder's SQLite file, or any Optuna storage URL."""

from __future__ import annotations

from pathlib import Path

import optuna


def load_study(folder: Path, storage: str | None = None, name: str | None = None) -> optuna.Study:
    """The study stored in ``folder/study.db`` (or at ``storage``); its only one unless named."""
    url = storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    if storage is None and not (folder / "study.db").is_file():
        if (folder / "anchors.json").is_file():  # anchored rounds: one study per round
            rounds = sorted(p.parent.name for p in folder.glob("r*/study.db"))
            raise FileNotFoundError(
                f"{folder} holds anchored rounds, one study each: report one of "
                f"{[str(folder / r) for r in rounds]}; "
                f"the chosen plan is {folder / 'best_plan.json'} (see anchors.json)")
        raise FileNotFoundError(f"no study in {folder} (expected {folder / 'study.db'})")
    names = [s.study_name for s in optuna.get_all_study_summaries(url, include_best_trial=False)]
    if name is None:
        if len(names) != 1:
            raise ValueError(f"{url} holds studies {names}; name one with --name")
        name = names[0]
    elif name not in names:
        raise ValueError(f"no study {name!r} in {url}; it holds {names}")
    return optuna.load_study(study_name=name, storage=url)
