"""Which code and numerics a benchmark's measurement was made on, and whether a resume state's
rows still stand: the commit a benchmark started on (:func:`code_state`), whether the library
changed since a row's commit in the files its process had imported (:func:`measured_elsewhere`),
and the :func:`numerics` beside the code that decide its numbers."""

from __future__ import annotations

import functools
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

#: The repository this benchmark runs from.
ROOT = Path(__file__).resolve().parents[1]


def _cpu_model() -> str:
    """The CPU's model name as the kernel reports it ("" where it does not)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in text.splitlines()
                 if line.startswith("model name")), "")


@functools.cache
def numerics() -> dict[str, str]:
    """What besides the library code decides the numbers of a measurement: the torch,
    transformers and tokenizers builds, the Python (whose pydoc text is the embedded data),
    the CPU (its model and the vector kernels torch picked) and the GPU.
    On one machine a sequential prune repeats to the last digit whatever the process ran
    before; on another machine the same plan has verified apart by as much as the noise floor
    at 70% (docs/results.md), so resumed and borrowed measurements are only taken from the
    same numerics."""
    import importlib.metadata

    import transformers

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return ""

    # tokenizers decides the token ids of every window; python's pydoc_data is the embedded text.
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": version("tokenizers"), "python": platform.python_version(),
            "cpu": _cpu_model(), "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else ""}


#: Names the commit of a copy of the tree that has no ``.git`` (a device machine gets the files
#: alone): set it to the commit the copy was made from, on a clean tree.
COMMIT_ENV = "ALLOCSEARCH_BENCH_COMMIT"


def git_state(root: Path | None = None) -> tuple[str | None, bool]:
    """(HEAD commit, whether tracked files other than results differ from it); outside git, the
    commit that :data:`COMMIT_ENV` names (a clean copy) or (None, False). A result a benchmark
    wrote into ``benchmarks/results/`` is its output, not code: a second benchmark started in
    the same tree afterwards still measures the commit's code."""
    import os
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root or ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "HEAD")
    if not head:
        return os.environ.get(COMMIT_ENV) or None, False
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results")
    return head, bool(changed)


def library_changed(commit: str, since: str | None, root: Path = ROOT, unused: Sequence[str] = ()) -> bool:
    """Whether the library's code (``allocsearch/``, comments and docstrings aside:
    :func:`_same_code`) differs between two commits, leaving out the files
    in ``unused`` (relative paths a measurement never imported: :func:`unimported_library`); True
    when git cannot tell (no repository, an unknown commit). A result measured at ``commit``
    stands for this code only when this is False: a change of the sampler or the short-list
    changes the plans a seeded study evaluates, whatever its settings say."""
    import subprocess

    if since is None:
        return True
    if commit == since:  # also where git cannot answer: a copy that has no .git
        return False
    done = subprocess.run(["git", "diff", "--name-only", commit, since, "--", "allocsearch"], cwd=root,
                          capture_output=True, text=True)
    if done.returncode != 0:
        return True
    # A file added since is in no ``unused`` list, so it counts: only code known unrun is left out.
    changed = set(done.stdout.split()) - set(unused)
    return any(not _same_code(root, path, commit, since) for path in sorted(changed))


def _same_code(root: Path, path: str, a: str, b: str) -> bool:
    """Whether a Python file says the same code at commits ``a`` and ``b``, comments and
    docstrings aside (an edited docstring or example changes no plan a study evaluates); False
    when it is not Python, is missing at either commit or does not parse."""
    import subprocess

    def code(commit: str) -> str | None:
        done = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=root, capture_output=True, text=True)
        return _code_of(done.stdout) if done.returncode == 0 and path.endswith(".py") else None

    try:
        old, new = code(a), code(b)
    except SyntaxError:
        return False
    return old is not None and old == new


def _code_of(text: str) -> str:
    """The abstract syntax tree of Python source, less every docstring (the first string
    statement of a module, class or function body), unparsed to canonical source;
    comments never reach it."""
    import ast

    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def unimported_library(root: Path = ROOT) -> list[str]:
    """The library's files (``allocsearch/**/*.py``, relative to ``root``) that this process has
    not imported so far: code that cannot have decided anything it measured until now, so a
    later change to one of them leaves those measurements standing. Empty (everything counts)
    when the imported package is not the one under ``root``, such as an installed copy."""
    import sys

    pkg = getattr(sys.modules.get("allocsearch"), "__file__", None)
    folder = (root / "allocsearch").resolve()
    if pkg is None or Path(pkg).resolve().parent != folder:
        return []
    loaded = {Path(f).resolve() for m in list(sys.modules.values())
              if isinstance(f := getattr(m, "__file__", None), str)}
    return sorted(p.relative_to(root.resolve()).as_posix() for p in folder.rglob("*.py")
                  if p.resolve() not in loaded)


#: The code a benchmark runs is the code of its start: a long run's result must not claim a
#: commit made while it ran. Read once, when the benchmark imports this module.
GIT_AT_START = git_state()


@functools.cache
def predictor_code(root: Path = ROOT) -> tuple[str, ...]:
    """The predictor package's files (relative paths) that a study without a predictor never
    runs: it attaches no screener (``config.predictor.enabled`` is False), so no feature table
    is built, no model is trained and the model registry is not read; of the package it uses
    only the trial record type (``records.py``). A change to these files alone, such as a new
    default model, leaves its measurements standing (the efficiency suite's kept arms, the
    plain side of a with/without pair)."""
    folder = root / "allocsearch" / "predictor"
    return tuple(sorted(p.relative_to(root).as_posix() for p in folder.glob("*.py")
                        if p.name != "records.py"))


def library_changed_since(commit: str, unused: tuple[str, ...] = ()) -> bool:
    """Whether the library, less ``unused``, differs between ``commit`` and the commit this
    benchmark started on."""
    return library_changed(commit, GIT_AT_START[0], unused=unused)


def measured_elsewhere(entry: dict[str, Any]) -> str:
    """Why a resume state's entry is measured again ("" when it stands): its recorded commit
    has other library code than this run's, in the files its process had imported when it was
    measured (all of them for an entry that does not list its ``unused`` ones), or it was
    measured under other :func:`numerics`. Entries written before entries recorded their
    commit (or their numerics) carry none and count as this code's (and machine's)."""
    if entry.get("commit") and library_changed_since(str(entry["commit"]), tuple(entry.get("unused", ()))):
        return "other library code"
    theirs, mine = entry.get("numerics"), numerics()
    if theirs is not None and theirs != mine:
        return "other numerics: " + ", ".join(f"{k} {theirs.get(k)!r}" for k in sorted(mine)
                                              if theirs.get(k) != mine[k])
    return ""


def fresh_entries(state: dict[str, Any], what: str) -> dict[str, Any]:
    """``state`` (a resume state: key -> entry) less the entries measured on other library code
    or numerics, each named in one printed line."""
    stale = {k: why for k, v in state.items() if isinstance(v, dict) and (why := measured_elsewhere(v))}
    for why in sorted(set(stale.values())):
        names = ", ".join(k for k, w in stale.items() if w == why)
        print(f"{what}: measuring again {names} (measured on {why})", flush=True)
    return {k: v for k, v in state.items() if k not in stale}


def code_state() -> dict[str, Any]:
    """The commit this benchmark started on, whether its tree had uncommitted changes, and the
    library files not imported so far, and the :func:`numerics`: what a resumable benchmark
    records on each row when it has measured it, since a resumed result's manifest names only
    the commit of its last process."""
    return {"commit": GIT_AT_START[0], "dirty": GIT_AT_START[1], "unused": unimported_library(),
            "numerics": numerics()}


def without_code_state(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` less what :func:`code_state` added: for a result whose every row was measured on
    code equal to its manifest's (resumed rows of other code measured again), where the state
    would only repeat the manifest in each row."""
    return {k: v for k, v in entry.items() if k not in ("commit", "dirty", "unused", "numerics")}
