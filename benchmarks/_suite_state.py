"""The quality suites' resume state and variants (benchmarks/_sparsegpt.py): one partial
results file per suite, variant and target, shared by the processes that run its seeds; the
prior rows a tagged variant borrows from the plain suite; the predictor a ``--pretrain``
variant starts from."""

from __future__ import annotations

import argparse
import fcntl
import json
from pathlib import Path
from typing import Any

from _code_state import fresh_entries
from _common import RESULTS, RUNS, predictor_records, study_file

from allocsearch.io import atomic_write_text
from allocsearch.predictor import Predictor, train_predictor
from allocsearch.predictor.base import DEFAULT_MODEL
from allocsearch.search import StudyConfig
from allocsearch.search.records import folder_records


def tag_suffix(args: argparse.Namespace) -> str:
    """A variant's suffix (``--tag``, with its ``--set`` overrides): its own studies and
    partial results beside the plain suite's."""
    return f"_{args.tag}" if args.tag else ""


def pretrained_predictor(args: argparse.Namespace, suite: str) -> Path | None:
    """``--pretrain``: the predictor every study starts from (``--pretrain-model``), trained at
    those targets on the plain suite's studies (``--pretrain-from suite``: every seed that ran,
    its ``<name>_s<seed>`` folders in results/runs/, at their full fidelity) or on the committed
    Wanda predictor studies (``--pretrain-from records``: benchmarks/predictor_data.py's records,
    another pruner's fitness, so what carries across pruners is measured); trained once, kept in
    results/runs/ under a name listing its source (a resumed run reuses it). A ``--report``
    measures nothing, so it trains nothing: it names the file the runs started from."""
    if not args.pretrain:
        return None
    folders: list[Path] = []  # --pretrain-from suite: the studies, read only to train
    records: list[Any] = []
    if args.pretrain_from == "records":
        records = [r for r in predictor_records()[0] if any(abs(r.target - t) < 1e-9 for t in args.pretrain)]
        if not records:
            raise SystemExit(f"--pretrain-from records: no predictor records at {args.pretrain}")
        label = "records_" + "+".join(str(round(t * 100)) for t in args.pretrain)
    else:
        names = [StudyConfig.load(study_file(suite, t)).name for t in args.pretrain]
        folders = sorted(f for name in names for f in RUNS.glob(f"{name}_s[0-9]*")
                         if (f / "study.db").is_file())
        if not folders:
            raise SystemExit(f"--pretrain: run the plain {suite} suite at {args.pretrain} first")
        label = "+".join(f.name for f in folders)
    kind = getattr(args, "pretrain_model", DEFAULT_MODEL)
    path = RUNS / f"predictor_{kind}_{label}.json"
    if not path.exists():
        if args.report:
            raise SystemExit(f"--report: the runs' pretrained predictor {path.name} is not in {RUNS}")
        path.parent.mkdir(parents=True, exist_ok=True)  # results/runs/ is absent on a fresh checkout
        train_predictor(folder_records(folders) if folders else records, kind=kind,
                        progress=False).save(path)
    return path


def pretrained_meta(path: Path | None) -> dict[str, Any] | None:
    """What the pretrained predictor (``--pretrain``) was trained on, for the result."""
    if path is None:
        return None
    pred = Predictor.load(path)
    return {"file": path.name, "model": pred.model, "studies": list(pred.meta.studies),
            "records": pred.meta.n_train, "tokens": pred.meta.tokens}


def partial_path(suite: str, pct: str, args: argparse.Namespace) -> Path:
    return RUNS / f"quality_{suite}{tag_suffix(args)}_{pct}.partial.json"


def read_partial(path: Path, pct: str) -> dict[str, Any]:
    """The state of ``pct`` that the partial results file ``path`` holds (empty without one)."""
    return json.loads(path.read_text()).get(pct, {}) if path.exists() else {}


def load_partial(path: Path, pct: str) -> dict[str, Any]:
    """The resume state of ``pct`` in ``path`` (empty without one), less the entries measured
    on other library code."""
    return fresh_entries(read_partial(path, pct), path.name)


def result_file(suite: str, device: str, tag: str = "") -> Path:
    """The committed result of ``suite`` on ``device`` (``tag``: a variant's suffix)."""
    return RESULTS / f"quality_{suite}_{device}{tag}.json"


def _canonical(value: Any) -> str:
    """``value`` as its JSON text (tuples and lists alike, keys sorted)."""
    return json.dumps(json.loads(json.dumps(value, default=str)), sort_keys=True)


def committed_state(suite: str, pct: str, args: argparse.Namespace, device: str,
                    protocol: dict[str, Any]) -> dict[str, Any]:
    """The resume state of ``pct`` from the suite's committed result (a fresh checkout, where
    results/runs/ is empty): its ``runs``, when it ran the same ``protocol`` (study config,
    evaluator, sampler, space, verification, offspring, every seed from every prior) on the
    same device, less the entries measured on other library code. Later seeds then join the
    committed ones without measuring those again."""
    result = result_file(suite, device, tag_suffix(args))
    stored = json.loads(result.read_text()) if result.exists() else None
    if stored is None or pct not in stored.get("runs", {}):
        return {}
    ran = {"study": stored["study"], "offspring": stored["offspring"],
           "seed_warm_starts": stored.get("seed_warm_starts")}
    if _canonical(ran) != _canonical(protocol):
        print(f"{result.name}: another protocol than this run's; its {pct}% runs are not resumed", flush=True)
        return {}
    return fresh_entries(stored["runs"][pct], result.name)


def save_partial(path: Path, pct: str, state: dict[str, Any]) -> None:
    """Write ``state`` over what ``path`` holds, under a lock: processes running other seeds
    of the same target at once each keep the entries the others finished (an entry this
    process holds wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:  # atomic-exempt: a lock, never written
        fcntl.flock(lock, fcntl.LOCK_EX)
        on_disk = read_partial(path, pct)
        atomic_write_text(path, json.dumps({pct: on_disk | state}, indent=1))


#: The verification settings that decide a measured number (besides the plan and the code).
VERIFY_KEYS = ("pruner", "nsamples", "seqlen", "eval_windows", "inputs", "calibration_seeds", "threads",
               "batch_size")


def same_verify(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(_canonical(a.get(k)) == _canonical(b.get(k)) for k in VERIFY_KEYS)


def shared_priors(suite: str, pct: str, args: argparse.Namespace, device: str,
                   verify: dict[str, Any]) -> dict[str, Any]:
    """A tagged variant's measured prior rows, from the plain suite's partial results, else
    its current result file (a fresh checkout): the same plans pruned and measured with the
    same settings give the same numbers (the verification is deterministic at fixed
    threads), so they are not measured twice. Borrowed only when the plain suite verified
    with the same settings (``verify``, the variant's) on the same device."""
    if not args.tag:
        return {}
    plain = RUNS / f"quality_{suite}_{pct}.partial.json"
    result = result_file(suite, device)
    if plain.exists():
        state, source = read_partial(plain, pct), plain.name
    else:
        stored = json.loads(result.read_text()) if result.exists() else None
        if stored is None or not same_verify(stored["study"]["verify"], verify):
            return {}
        state, source = stored["runs"].get(pct, {}), result.name
    keep = fresh_entries({k: v for k, v in state.items() if k == "priors" or k.startswith("measured:")},
                         source)
    return keep | ({"priors_from": source} if keep else {})


def still_borrowed(suite: str, pct: str, device: str, state: dict[str, Any]) -> bool:
    """Whether ``state``'s prior rows are still the plain suite's (its ``priors_from``): its
    choice of priors equals the one in the plain suite's partial results or committed result.
    A variant that measured its priors itself (the borrowed ones were measured on other library
    code, so dropped) keeps no stale ``priors_from`` from an earlier result."""
    if "priors_from" not in state:
        return False
    plain = RUNS / f"quality_{suite}_{pct}.partial.json"
    result = result_file(suite, device)
    stored = json.loads(result.read_text()).get("runs", {}).get(pct, {}) if result.exists() else {}
    sources = [read_partial(plain, pct), stored]
    return any("priors" in src and _canonical(src["priors"]) == _canonical(state.get("priors"))
               for src in sources)
