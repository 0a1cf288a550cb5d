"""The README's tour, run as written: every ``allocsearch`` command of its "A tour" section, timed.

    python benchmarks/tour.py      # the curves and the study take most of its time

In a new temporary folder holding a copy of ``studies/`` (the commands name its configs, and
their outputs land beside them), with an empty ``ALLOCSEARCH_CACHE`` beside it (so the model
conversion, the profile and the block curves are made anew, as on a new machine), runs each
command of the README's tour in order with this environment's ``allocsearch``, stops at the
first that fails, and writes benchmarks/results/tour_cpu.json: the seconds each took and the
files it wrote in the folder (new or rewritten). The README renders those times under the
tour's heading, so a reader knows what each step costs before copying it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, ROOT, environment, print_table, write_json

#: The README section whose commands are the tour (up to the next second-level heading).
SECTION = "## A tour"


def tour_commands(readme: str) -> list[str]:
    """The indented ``allocsearch ...`` command lines of the tour section, continuations joined."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    text = re.sub(r"\\\n\s*", " ", readme[start:end if end >= 0 else None])
    return [" ".join(m.group(1).split()) for m in re.finditer(r"^ {4,}(allocsearch .+)$", text, re.MULTILINE)]


def _files(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` (relative path) -> its modification time (ns)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _written(before: dict[str, int], after: dict[str, int]) -> list[str]:
    """The files of ``after`` that are new or have another modification time than ``before``'s."""
    return sorted(f for f, mtime in after.items() if before.get(f) != mtime)


def run_tour(commands: list[str], folder: Path, env: dict[str, str], log: Path) -> list[dict[str, Any]]:
    """Each command run in ``folder``: its seconds and the files it wrote there (new or rewritten);
    stops at a failure. ``log`` (every command's output) belongs outside ``folder``."""
    bin_dir = Path(sys.executable).parent
    rows: list[dict[str, Any]] = []
    before = _files(folder)
    for step, command in enumerate(commands, start=1):
        argv = [str(bin_dir / "allocsearch"), *shlex.split(command)[1:]]
        start = time.perf_counter()
        with log.open("a") as out:
            out.write(f"\n$ {command}\n")
            out.flush()
            done = subprocess.run(argv, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - start
        after = _files(folder)
        rows.append({"step": step, "command": command, "seconds": seconds, "minutes": seconds / 60,
                     "returncode": done.returncode, "wrote": _written(before, after)})
        before = after
        if done.returncode != 0:
            break
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.parse_args()
    commands = tour_commands((ROOT / "README.md").read_text())
    with tempfile.TemporaryDirectory(prefix="allocsearch-tour-") as tmp:
        folder = Path(tmp) / "tour"  # the commands' folder; the cache and the log beside it
        shutil.copytree(ROOT / "studies", folder / "studies",
                        ignore=lambda d, names: [n for n in names if (Path(d) / n).is_dir()])
        env = os.environ | {"ALLOCSEARCH_CACHE": str(Path(tmp) / "cache")}
        log = Path(tmp) / "tour.log"
        rows = run_tour(commands, folder, env, log)
        tail = log.read_text().splitlines()[-30:]
    print_table(rows, ["step", "minutes", "returncode", "command"])
    failed = [r for r in rows if r["returncode"] != 0]
    if failed:
        print("\n".join(tail))
        raise SystemExit(f"step {failed[0]['step']} failed: {failed[0]['command']}")
    cores = len(os.sched_getaffinity(0))  # the CPU cores the commands could use
    path = write_json("tour_cpu.json", {"rows": rows, "cores": cores, "environment": environment()},
                      {"device": "cpu", "model": "smollm2-135m", "data": "embedded"})
    print(f"wrote {path}")


def render_readme() -> str:
    """The README's sentence under the tour's heading: what each step took, from the result."""
    path = RESULTS / "tour_cpu.json"
    if not path.is_file():
        return "Not yet timed (`python benchmarks/tour.py` runs every command below and times it)."
    d = json.loads(path.read_text())
    m = d["manifest"]
    steps = "; ".join(f"`{_label(r['command'])}` {_duration(r['seconds'])}" for r in d["rows"])
    total = sum(r["seconds"] for r in d["rows"])
    return (f"Every command below, run as written in a new folder with an empty cache "
            f"(`{m['command']}`, commit {m['commit'][:10]}, {m['date']}, "
            f"{d['cores']} CPU core{'' if d['cores'] == 1 else 's'}): {steps}; {_duration(total)} in all. "
            f"The first command that needs the model converts it and profiles it once; the curves "
            f"and the study are the long steps, and both are kept (a rerun reads the cache, a "
            f"study resumes).")


def _label(command: str) -> str:
    """A command's subcommand words: ``allocsearch study curves x.yaml --out y`` -> ``study curves``."""
    words = []
    for word in command.split()[1:]:
        if not re.fullmatch(r"[a-z]+", word):
            break
        words.append(word)
    return " ".join(words)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


if __name__ == "__main__":
    main()
