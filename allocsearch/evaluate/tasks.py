"""Zero-shot task accuracy through lm-evaluation-harness, on the model in memory.

The loaded (pruned, or plan-masked) model is wrapped in lm-eval's ``HFLM`` as it is: nothing
is saved or re-loaded, so the Evaluator's cached masks and an offloaded model work too.

A task is named three ways (``--tasks a,b,c``):

- ``allocsearch_continuation``: our own multiple-choice task over the evaluation part of a
  text source (:mod:`allocsearch.data.continuation`), written once as JSONL plus an lm-eval
  task YAML into ``$ALLOCSEARCH_CACHE/tasks/<key>/``; offline;
- a path to an lm-eval task YAML (a custom task, e.g. over local JSON/JSONL files with
  ``dataset_path: json``): its folder is added to lm-eval's include path;
- any task lm-eval knows (``boolq``, ``arc_easy``, ``hellaswag``, ...): these fetch their
  data from the Hugging Face hub (or its local cache).

Reported per task: ``acc`` and ``acc_norm`` (length-normalised) with lm-eval's standard
errors, the number of examples, and chance where it is known (our task).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from allocsearch.data.continuation import (
    CONTINUATION_TASK,
    ContinuationConfig,
    build_examples,
)
from allocsearch.io import atomic_write_text
from allocsearch.models.loading import LoadedModel, default_cache_dir

TASK_FORMAT = 1  # bump when the written JSONL/YAML change meaning


class TaskError(ValueError):
    """A task that cannot be found or run, said in one line."""


@dataclass(frozen=True)
class TaskConfig:
    """Which tasks, and how: ``limit`` caps the examples per task (None: all of them)."""

    tasks: tuple[str, ...] = (CONTINUATION_TASK,)
    limit: int | None = None
    batch_size: int = 8
    num_fewshot: int = 0
    continuation: ContinuationConfig = field(default_factory=ContinuationConfig)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("tasks: name at least one task")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"tasks limit must be at least 1, got {self.limit}")
        if self.batch_size < 1 or self.num_fewshot < 0:
            raise ValueError("tasks need batch_size >= 1 and num_fewshot >= 0")

    @staticmethod
    def parse_names(text: str) -> tuple[str, ...]:
        """``boolq, arc_easy`` -> ("boolq", "arc_easy")."""
        names = tuple(t.strip() for t in text.split(",") if t.strip())
        if not names:
            raise ValueError(f"--tasks names no task: {text!r}")
        return names


@dataclass(frozen=True)
class TaskScore:
    task: str
    acc: float
    acc_stderr: float
    acc_norm: float | None
    acc_norm_stderr: float | None
    examples: int
    chance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> TaskScore:
        return TaskScore(**data)

    def describe(self) -> str:
        text = f"{self.task}: acc {self.acc:.4f} ± {self.acc_stderr:.4f}"
        if self.acc_norm is not None:
            text += f", acc_norm {self.acc_norm:.4f} ± {self.acc_norm_stderr or 0.0:.4f}"
        chance = f", chance {self.chance:.2f}" if self.chance is not None else ""
        return text + f" ({self.examples} examples{chance})"


def continuation_task_dir(config: ContinuationConfig, cache_dir: Path | None = None) -> Path:
    """Write (once) the local task's JSONL and its lm-eval YAML; return their folder."""
    raw = json.dumps({"format": TASK_FORMAT, **config.to_dict()}, sort_keys=True)
    key = hashlib.sha256(raw.encode()).hexdigest()[:16]
    folder = (cache_dir or default_cache_dir()) / "tasks" / key
    spec = folder / "task.yaml"
    if spec.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    examples = build_examples(config)
    data = folder / "examples.jsonl"
    atomic_write_text(data, "".join(json.dumps(asdict(e)) + "\n" for e in examples))
    task = {
        "task": CONTINUATION_TASK,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "context",
        "doc_to_choice": "choices",
        "doc_to_target": "label",
        "target_delimiter": " ",
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                        for m in ("acc", "acc_norm")],
        "metadata": {"version": TASK_FORMAT, "chance": config.chance, "built_from": raw},
    }
    atomic_write_text(spec, yaml.safe_dump(task, sort_keys=False))  # last: marks it complete
    return folder


class _TagTolerantLoader(yaml.SafeLoader):
    """Safe loading that reads lm-eval's ``!function`` tags as plain strings (we only need
    the task's name; lm-eval itself loads the file)."""


_TagTolerantLoader.add_multi_constructor(
    "!", lambda loader, _suffix, node: loader.construct_scalar(node))  # type: ignore[arg-type]


def _yaml_task_name(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"task file {path} does not exist")
    spec = yaml.load(path.read_text(), Loader=_TagTolerantLoader)  # a SafeLoader subclass
    if not isinstance(spec, dict) or not isinstance(spec.get("task"), str):
        raise TaskError(f"{path}: an lm-eval task YAML needs a 'task: <name>' key")
    return str(spec["task"])


@dataclass(frozen=True)
class _Resolved:
    names: list[str]  # what lm-eval is asked for
    include: list[str]  # folders with our and the user's task YAMLs
    builtin: bool  # some task is lm-eval's own (its task index must be read)


def _resolve(config: TaskConfig, cache_dir: Path | None) -> _Resolved:
    names: list[str] = []
    include: list[str] = []
    builtin = False
    for task in config.tasks:
        if task == CONTINUATION_TASK:
            include.append(str(continuation_task_dir(config.continuation, cache_dir)))
            names.append(task)
        elif task.endswith((".yaml", ".yml")):
            path = Path(task).resolve()
            names.append(_yaml_task_name(path))
            include.append(str(path.parent))
        else:
            names.append(task)
            builtin = True
    return _Resolved(names, list(dict.fromkeys(include)), builtin)


def check_tasks(config: TaskConfig, cache_dir: Path | None = None) -> None:
    """Raise :class:`TaskError` for a task lm-eval does not know, a missing task file or a
    missing lm-eval, before any model is loaded (a mistake then costs seconds)."""
    try:
        import lm_eval  # noqa: F401
    except ImportError as exc:
        raise TaskError("task accuracy needs lm-evaluation-harness: pip install "
                        "'allocsearch[tasks]'") from exc
    resolved = _resolve(config, cache_dir)
    manager = _task_manager(tuple(resolved.include), resolved.builtin)
    unknown = [n for n in resolved.names if n not in manager.all_tasks]
    if unknown:
        raise TaskError(f"unknown task(s) {unknown}: name lm-eval tasks, a task YAML file, or "
                        f"{CONTINUATION_TASK!r}")


def task_accuracy(
    loaded: LoadedModel, config: TaskConfig, *, progress: bool = True,
    cache_dir: Path | None = None,
) -> dict[str, TaskScore]:
    """Run the tasks on ``loaded.model`` as it is now; scores keyed by task name.
    ``progress=False`` silences lm-eval's request bars and the datasets library's."""
    check_tasks(config, cache_dir)
    import datasets
    import lm_eval
    import lm_eval.evaluator

    resolved = _resolve(config, cache_dir)
    manager = _task_manager(tuple(resolved.include), resolved.builtin)
    quiet = logging.getLogger("lm_eval")
    level = quiet.level
    # lm-eval warns that it was handed a model object, which is what we mean to do.
    quiet.setLevel(logging.ERROR)
    bars = datasets.is_progress_bar_enabled()
    if not progress:
        datasets.disable_progress_bars()
    was_training = loaded.model.training
    # lm-eval stamps its result with `git describe` run in the working directory; outside a git
    # checkout git prints "fatal: not a git repository" to the user's terminal. We do not read
    # the stamp, so lm-eval is not asked for it.
    stamp = lm_eval.evaluator.get_git_commit_hash
    lm_eval.evaluator.get_git_commit_hash = _no_commit
    try:
        model = _wrap(loaded, config.batch_size, progress)
        out = lm_eval.simple_evaluate(
            model=model, tasks=resolved.names, task_manager=manager, limit=config.limit,
            num_fewshot=config.num_fewshot, log_samples=False,
        )
    except (ConnectionError, OSError) as exc:  # a hub task without the hub
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TaskError(f"tasks {resolved.names}: cannot load their data ({first}); hub tasks "
                        f"need the Hugging Face hub or its cache") from exc
    finally:
        lm_eval.evaluator.get_git_commit_hash = stamp
        loaded.model.train(was_training)
        quiet.setLevel(level)
        if bars:
            datasets.enable_progress_bars()
    return _scores(out, resolved.names, config)


def _no_commit() -> None:
    return None


@functools.lru_cache(maxsize=8)
def _task_manager(include: tuple[str, ...], builtin: bool) -> Any:
    """lm-eval's task index, once per process for each set of task folders: indexing lm-eval's
    own tasks takes seconds, and a study's accuracy objective asks for it every trial (the
    index holds YAML paths; a task's YAML is read when it runs)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(include) or None, include_defaults=builtin)


def _wrap(loaded: LoadedModel, batch_size: int, progress: bool) -> Any:
    """lm-eval's HFLM around the model object; without ``progress``, its request bars off
    (lm-eval's evaluate never passes ``disable_tqdm`` itself)."""
    from lm_eval.models.huggingface import HFLM

    class _Quiet(HFLM):  # type: ignore[misc]
        def loglikelihood(self, requests: Any, disable_tqdm: bool = False) -> Any:
            return super().loglikelihood(requests, disable_tqdm=True)

        def loglikelihood_rolling(self, requests: Any, disable_tqdm: bool = False) -> Any:
            return super().loglikelihood_rolling(requests, disable_tqdm=True)

        def generate_until(self, requests: Any, disable_tqdm: bool = False) -> Any:
            return super().generate_until(requests, disable_tqdm=True)

    cls = HFLM if progress else _Quiet
    return cls(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=batch_size)


def _scores(out: dict[str, Any] | None, names: list[str], config: TaskConfig) -> dict[str, TaskScore]:
    if out is None:
        raise TaskError("lm-eval returned no results (a distributed rank other than 0?)")
    scores: dict[str, TaskScore] = {}
    for name in names:
        res = out["results"][name]
        examples = int(out.get("n-samples", {}).get(name, {}).get("effective", 0))
        norm = res.get("acc_norm,none")
        scores[name] = TaskScore(
            name, float(res["acc,none"]), float(res.get("acc_stderr,none", float("nan"))),
            None if norm is None else float(norm),
            None if norm is None else float(res.get("acc_norm_stderr,none", float("nan"))),
            examples, config.continuation.chance if name == CONTINUATION_TASK else None,
        )
    return scores
