"""How long the first command takes: ``scripts/demo.sh`` end to end, as a new user runs it.

    python benchmarks/demo.py                 # a new virtual environment, model cache and outputs
    python benchmarks/demo.py --venv .venv    # an installed environment: the demo's study alone

In a new temporary folder (``VENV``, ``ALLOCSEARCH_CACHE`` and ``DEMO_OUT`` point there, so
nothing installed or cached before is reused but pip's download cache), runs
``scripts/setup.sh`` (the install, timed alone) and then ``scripts/demo.sh`` (its own install
check, the model conversion, the study with its verification, report and plots, and the
exported recipe), checks that every output the demo names was written, and writes
benchmarks/results/demo_cpu.json: seconds per stage, the outputs, and the demo's own verdicts
(the best searched plan against the best prior, from its report). Downloads are not timed
apart: on a machine whose pip cache is empty, fetching the wheels adds their time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, ROOT, environment, print_table, write_json

#: What scripts/demo.sh says it writes, relative to its output folder.
OUTPUTS = ("study.db", "report.json", "predictor.json", "best_plan.json", "history.png", "best_vs_priors.png",
           "recipe.yaml")


def timed_script(script: str, env: dict[str, str], log: Path) -> float:
    """Seconds ``scripts/<script>`` took; its output goes to ``log``; a failure stops here."""
    start = time.perf_counter()
    with log.open("a") as out:
        done = subprocess.run([str(ROOT / "scripts" / script)], cwd=ROOT, env=env, stdout=out,
                              stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"scripts/{script} failed ({done.returncode}); see {log}")
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--venv", type=Path, default=None,
                   help="an installed virtual environment to use (default: a new one, install timed)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="allocsearch-demo-") as tmp:
        folder = Path(tmp)
        venv = args.venv.resolve() if args.venv else folder / "venv"
        out = folder / "out"
        env = os.environ | {"VENV": str(venv), "ALLOCSEARCH_CACHE": str(folder / "cache"),
                            "DEMO_OUT": str(out)}
        log = folder / "demo.log"
        stages: list[dict[str, Any]] = []
        for stage, script in (("install", "setup.sh"), ("demo", "demo.sh")):
            if stage == "demo" or args.venv is None:
                seconds = timed_script(script, env, log)
                stages.append({"stage": f"{stage} (scripts/{script})", "seconds": seconds})
        stages.append({"stage": "total", "seconds": sum(s["seconds"] for s in stages)})
        missing = [name for name in OUTPUTS if not (out / name).is_file()]
        if missing:
            raise SystemExit(f"the demo did not write {', '.join(missing)}; see {log}")
        report = json.loads((out / "report.json").read_text())
        tail = log.read_text().splitlines()[-40:]
    for s in stages:
        s["minutes"] = s["seconds"] / 60
    verdicts: list[dict[str, Any]] = report["verdicts"]
    print_table(stages, ["stage", "seconds", "minutes"])
    print("\n".join(tail))
    path = write_json("demo_cpu.json", {
        "rows": stages, "fresh_environment": args.venv is None, "outputs": list(OUTPUTS),
        "verdicts": [{k: v[k] for k in ("pruner", "source", "ppl", "prior_label", "prior_ppl", "ratio",
                                         "lower_on", "draws")} for v in verdicts],
        "trials": report["counts"], "environment": environment()},
        {"device": "cpu", "model": "smollm2-135m", "data": "embedded"})
    print(f"wrote {path}")


def render_readme() -> str:
    """The README's sentence under ``./scripts/demo.sh``: the measured time, from the result."""
    path = RESULTS / "demo_cpu.json"
    if not path.is_file():
        return "Not yet timed end to end (`python benchmarks/demo.py` measures it)."
    d = json.loads(path.read_text())
    m = d["manifest"]
    minutes = {r["stage"].split(" ")[0]: r["minutes"] for r in d["rows"]}
    install = f"the install {minutes['install']:.1f} min, " if "install" in minutes else ""
    fresh = "from a new environment" if d["fresh_environment"] else "in an installed environment"
    verdicts = "; ".join(f"{v['pruner']}{' on ' + v['source'] if v['source'] else ''}: searched "
                         f"{v['ppl']:.1f} vs {v['prior_label']} {v['prior_ppl']:.1f} ({v['ratio']:.3f}x, "
                         f"lower on {v['lower_on']} of {v['draws']} draws)" for v in d["verdicts"])
    return (f"Measured {fresh} on {m['machine']['cores']} CPU cores: {install}the demo "
            f"{minutes['demo']:.1f} min, {minutes['total']:.1f} min in all (`{m['command']}`, commit "
            f"{m['commit'][:10]}, {m['date']}; pip's download cache was warm). The demo's verdict: "
            f"{verdicts}.")


if __name__ == "__main__":
    main()
