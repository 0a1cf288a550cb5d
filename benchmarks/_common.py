"""Helpers shared by the benchmark scripts: paths, tables, JSON output and manifests, environment
facts, study folders (the code and numerics a measurement ran on: :mod:`_code_state`)."""

from __future__ import annotations

import argparse
import functools
import json
import platform
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from _code_state import GIT_AT_START, git_state, numerics
from _code_state import ROOT as ROOT  # re-exported: the repository's paths start here

if TYPE_CHECKING:
    from allocsearch.search import StudyConfig

RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
STUDIES = ROOT / "studies"
#: The shipped study config each suite runs at a target (``{pct}``: the target in percent).
SUITE_STUDIES = {"search": "smollm2-{pct}.yaml", "samplers": "smollm2-{pct}.yaml",
                 "anchored": "smollm2-{pct}-seq.yaml", "sparsegpt": "smollm2-{pct}-sparsegpt.yaml",
                 "sparsegpt_anchored": "smollm2-{pct}-sparsegpt.yaml",
                 "sparsegpt_modules": "smollm2-{pct}-sparsegpt-modules.yaml",
                 "wanda_modules": "smollm2-{pct}-modules.yaml"}


def reference_key(reference: str, tokens: int) -> str:
    """correlation.py's column of a reference database's fitness: ``ref_ppl@N`` for the default
    (uniform) reference, ``ref_<allocator>_ppl@N`` for another (``ref_ramp_slope=0.1_ppl@N``
    for one with parameters)."""
    name = reference.replace(" ", "_")
    return f"ref_ppl@{tokens}" if reference == "uniform" else f"ref_{name}_ppl@{tokens}"


def reference_fidelities(fidelities: Sequence[int]) -> list[int]:
    """The fidelities correlation.py scores the reference databases at: every one but the
    first (the screening fidelity), or the only one."""
    return list(fidelities[1:] or fidelities)


def study_file(suite: str, target: float) -> Path:
    """The study config ``suite`` runs at ``target``."""
    return STUDIES / SUITE_STUDIES[suite].format(pct=round(target * 100))
#: Resume state and intermediate runs (git-ignored): only finished results are committed.
RUNS = RESULTS / "runs"
#: Resume state of a benchmark that takes longer than one working session (committed, so a
#: fresh clone resumes it; each row records the code and numerics it was measured on, and rows
#: measured on other library code or numerics are measured again). Never a published result.
PENDING = RESULTS / "pending"
#: Results written before benchmarks recorded manifests (commit and command), or on code
#: whose numbers the shipped commands no longer give: shown once, labelled, never headlined.
ARCHIVE = RESULTS / "archive"
ARCHIVED_NOTE = ("measured on older code without a manifest (archived in benchmarks/results/archive/); "
                 "not what the shipped commands give today")


#: benchmarks/predictor_data.py's study folders (git-ignored), and the records file it writes
#: from them (committed: the predictor benchmarks' input, so a fresh checkout need not spend an
#: hour of CPU measuring the same 360 plans again).
PREDICTOR_RUNS = RESULTS / "predictor_runs"
PREDICTOR_RECORDS = "predictor_records_{device}.jsonl"
#: Fresh studies (benchmarks/predictor_data.py --fresh): the same kinds at other seeds, never
#: trained on, for benchmarks/predictor_fresh.py to rank.
FRESH_RUNS = RESULTS / "predictor_fresh_runs"
FRESH_RECORDS = "predictor_records_fresh_{device}.jsonl"


def predictor_study_folders(runs: Path | None = None) -> list[Path]:
    """The predictor studies' folders on this machine under ``runs`` (:data:`PREDICTOR_RUNS` by
    default; not the efficiency runs' ``eff-*``)."""
    root = PREDICTOR_RUNS if runs is None else runs
    return sorted(p.parent for p in root.glob("*/study.db") if not p.parent.name.startswith("eff-"))


def predictor_records(device: str = "cpu") -> tuple[list[Any], str]:
    """The predictor studies' records and where they came from: their folders when this machine
    ran benchmarks/predictor_data.py, else the records file that script committed."""
    from allocsearch.predictor.records import read_records
    from allocsearch.search.records import folder_records

    folders = predictor_study_folders()
    path = RESULTS / PREDICTOR_RECORDS.format(device=device)
    if folders:
        records = folder_records(folders)
        if path.is_file():
            _check_folders_cover(records, read_records(path), path.name)
        return records, f"{PREDICTOR_RUNS.name}/"
    if not path.is_file():
        raise SystemExit(f"no predictor studies under {PREDICTOR_RUNS} and no {path.name}: "
                         "run benchmarks/predictor_data.py first")
    return read_records(path), path.name


def predictor_evaluator(loaded: Any, fidelities: tuple[int, ...]) -> Any:
    """The predictor studies' Evaluator (studies/smollm2-70.yaml's, at ``fidelities``): the one
    their labels, the damage curves and the labels' re-measurement are read with."""
    import dataclasses

    from allocsearch.evaluate import Evaluator
    from allocsearch.search import StudyConfig

    base = StudyConfig.load(STUDIES / "smollm2-70.yaml")
    return Evaluator.build(loaded, dataclasses.replace(base.evaluator, fidelities=fidelities), progress=False)


def _check_folders_cover(folders: Sequence[Any], committed: Sequence[Any], name: str) -> None:
    """Refuse study folders that lack trials of the committed records: a shard's or an
    extension's part run (other seeds, an interrupted study) would otherwise stand in for them,
    and every predictor result would be measured on other plans without a word."""
    have = {(r.study, r.trial) for r in folders}
    missing = sorted({r.study for r in committed if (r.study, r.trial) not in have})
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise SystemExit(f"the study folders under {PREDICTOR_RUNS} lack trials of {len(missing)} "
                         f"studies in {name} ({shown}): finish benchmarks/predictor_data.py and "
                         "write the records with --records-only, or move the folders away to read "
                         f"{name}")


def records_digest(records: Sequence[Any]) -> str:
    """A short digest of predictor records (their studies, trials and fitness; order does not
    matter): which plans a predictor result measured, so that a result and a pretrained
    predictor are told apart from ones made on other records (the records file is measured again
    when the library changes what a seeded study samples)."""
    import hashlib

    keys = sorted((r.study, r.trial, r.fitness) for r in records)
    return hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:12]


def committed_records_digest(device: str = "cpu") -> str | None:
    """The digest of the committed records file (None without one): the plans the published
    predictor results describe, whatever study folders this machine holds."""
    path = RESULTS / PREDICTOR_RECORDS.format(device=device)
    if not path.is_file():
        return None
    stat = path.stat()
    return _file_records_digest(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _file_records_digest(path: Path, mtime_ns: int, size: int) -> str:
    """:func:`records_digest` of a records file, read once per version of the file (reading its
    1080 plans takes seconds, and one report renders several results against it)."""
    from allocsearch.predictor.records import read_records

    return records_digest(read_records(path))


def result_path(name: str) -> tuple[Path, bool]:
    """A result file by name, and whether it is archived (a current result wins)."""
    path = RESULTS / name
    return (path, False) if path.is_file() else (ARCHIVE / name, True)


def records_result(name: str) -> tuple[dict[str, Any] | None, str]:
    """A result measured on the predictor records, and why it is not current ("" when it is;
    None without one): it is archived, or it measured other records than the committed ones."""
    path, archived = result_path(name)
    if not path.is_file():
        return None, ""
    data = json.loads(path.read_text())
    if archived:
        held = data.get("studies") if isinstance(data.get("studies"), list) else data.get("rows")
        studies = f", {len(held)} studies" if held else ""
        return data, (f"its last run (commit {data['manifest']['commit'][:10]}{studies}) measured the "
                      f"plans of an earlier records file, which the current records no longer hold "
                      f"(archived in benchmarks/results/archive/)")
    return data, "its records differ from the committed ones" if other_records(data) else ""


def other_records(result: dict[str, Any]) -> bool:
    """Whether ``result`` measured other plans than the committed records file holds (a result
    written before results recorded their records' digest counts as measured on them)."""
    digest = result.get("records_digest")
    return digest is not None and digest != committed_records_digest()


OTHER_DOMAIN = Path("/usr/share/common-licenses")


def other_domain_file(folder: Path) -> str:
    """Every licence Debian ships as one text file in ``folder`` (legal English, another
    domain than the embedded text; its evaluation part is what is scored), as a data source."""
    from allocsearch.io import atomic_write_text

    path = folder / "licenses.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    texts = [p.read_text(errors="ignore") for p in sorted(OTHER_DOMAIN.iterdir()) if p.is_file()]
    atomic_write_text(path, "\n\n".join(texts))
    return f"file:{path}"


def environment() -> dict[str, Any]:
    import transformers

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor()
        or "cpu",
        "threads": torch.get_num_threads(),
        "numerics": numerics(),
    }


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 1 else f"{v:.2f}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


#: What every manifest says about a result's protocol (benchmarks fill what applies; the report
#: prints "not recorded" for a key a result lacks).
PROTOCOL_KEYS = ("device", "dtype", "model", "data", "calibration", "evaluation", "seeds")


def start_afresh(folder: Path) -> bool:
    """Remove the study folder an interrupted run left (a run not recorded as finished), so that
    it runs again as a straight run would: a resumed study's sampler draws again from its seed
    (and an online short-list trains anew), so its later trials would differ from an
    uninterrupted run's. Returns whether there was one."""
    import shutil

    if not folder.exists():
        return False
    print(f"{folder.name}: an interrupted run's study, started again from its first trial", flush=True)
    shutil.rmtree(folder)
    return True


def restart_unfinished(cfg: StudyConfig) -> bool:
    """:func:`start_afresh` for ``cfg``'s study folder when the study there stopped before
    ``cfg``'s end: fewer than ``n_trials`` finished trials and fewer than ``max_tokens`` search
    tokens, the two ends of a study (``StudyCount.end``, which ``claim_trial`` stops at). That is
    an interrupted run's study, or one run to a smaller budget: extending it would reseed its
    sampler as well, so a benchmark runs it again straight to the larger budget. A finished
    study stays, so a rerun resumes it without a new trial. Studies in a server's storage are
    shared by workers and never removed."""
    from allocsearch.search.storage import load_study
    from allocsearch.search.workers import StudyCount

    if cfg.storage is not None or not (cfg.output / "study.db").is_file():
        return False
    if StudyCount.of(load_study(cfg.output)).end(cfg.n_trials, cfg.max_tokens) is not None:
        return False
    return start_afresh(cfg.output)


def command_line() -> str:
    """The command that is running, as a user would paste it: ``python benchmarks/<script>``
    and its arguments, quoted for the shell where they need it."""
    import sys

    script = Path(sys.argv[0])
    name = f"benchmarks/{script.name}" if script.suffix == ".py" else str(script)
    return shlex.join(["python", name, *sys.argv[1:]])


def rerun_command(result: dict[str, Any]) -> str:
    """The command that measures ``result`` again from nothing. A ``--report`` run only
    wrote what earlier processes measured (one per seed, say), so on a fresh clone it finds
    nothing to report: the same arguments without ``--report``, over every seed the result
    holds (its ``seeds``), measure it all in one process."""
    command = str(result.get("manifest", {}).get("command") or result.get("command") or "")
    argv = shlex.split(command)
    if "--report" not in argv:
        return command
    out = [a for a in argv if a != "--report"]
    seeds = result.get("seeds")
    if "--seeds" in out and isinstance(seeds, list) and seeds:
        at = out.index("--seeds") + 1
        end = at
        while end < len(out) and out[end].isdigit():  # the seeds this process was given
            end += 1
        out[at:end] = [str(s) for s in seeds]
    return shlex.join(out)


def manifest(protocol: dict[str, Any]) -> dict[str, Any]:
    """How and where a result was made: the command, the code (the git commit when the
    benchmark started, whether the tree had uncommitted changes then, and the commit when it
    wrote, where that differs), the date, the machine, package versions, and the
    ``protocol`` the benchmark states (keys from :data:`PROTOCOL_KEYS`)."""
    import importlib.metadata
    import os

    unknown = set(protocol) - set(PROTOCOL_KEYS)
    if unknown:
        raise ValueError(f"unknown manifest keys {sorted(unknown)}; use {PROTOCOL_KEYS}")
    versions: dict[str, str | None] = {}
    for dist in ("allocsearch", "torch", "transformers", "optuna", "xgboost", "scikit-learn", "numpy",
                 "lm_eval", "datasets"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    command = command_line()
    commit, dirty = GIT_AT_START
    at_write = git_state()[0]
    return {
        "command": command,
        "commit": commit,
        "dirty": dirty,
        **({"commit_at_write": at_write} if at_write != commit else {}),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"host_cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                    "threads": torch.get_num_threads()},
        "python": platform.python_version(),
        "versions": versions,
        **protocol,
    }


def with_block(doc: str, name: str, text: str) -> str:
    """``doc`` with ``text`` between its ``<!-- name:begin -->`` and ``<!-- name:end -->``
    (a rendered result; benchmarks/report.py keeps every such block current)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in doc or end not in doc:
        raise ValueError(f"no {begin} ... {end} block")
    head, rest = doc.split(begin, 1)
    return head + begin + "\n" + text + "\n" + end + rest.split(end, 1)[1]


def write_json(name: str, payload: dict[str, Any], protocol: dict[str, Any] | None = None,
               folder: Path = RESULTS) -> Path:
    """A result file: ``payload`` with its manifest (see :func:`manifest`), atomically, in
    ``folder`` (benchmarks/results unless a test says otherwise)."""
    payload = payload | {"manifest": manifest(protocol or {})}
    folder.mkdir(parents=True, exist_ok=True)
    from allocsearch.io import atomic_write_json

    return atomic_write_json(folder / name, payload)


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model / --device / --dtype, as every benchmark takes them."""
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32")


PRIOR_TARGETS = (0.7, 0.6, 0.5)  # the hard cases first: a partial run still informs
OWL_GRID = [(m, lam) for m in (3, 5, 7, 10) for lam in (0.02, 0.05, 0.08, 0.1, 0.2)]
ALPHA_EPS = (0.05, 0.1, 0.2, 0.3)
RAMP_SLOPES = (0.1, 0.2, 0.3, 0.4)


def prior_candidates() -> list[tuple[str, str, dict[str, Any]]]:
    """(family, allocator, params) for every plan the priors suite tries at each target."""
    out: list[tuple[str, str, dict[str, Any]]] = [("uniform", "uniform", {})]
    out += [("owl", "owl", {"M": float(m), "lam": lam}) for m, lam in OWL_GRID]
    out += [("alpha", "alpha", {"eps": e}) for e in ALPHA_EPS]
    out += [("ramp", "ramp", {"slope": s}) for s in RAMP_SLOPES]
    out += [("besa", "besa", {"progress": False})]
    return out


def prior_label(method: str, params: dict[str, Any]) -> str:
    """``owl M=5.0 lam=0.08``: the priors suite's name for one candidate (its plan file is
    results/priors_plans/<pct>_<label with spaces as _>.json)."""
    return method + "".join(f" {k}={v}" for k, v in params.items() if k != "progress")
