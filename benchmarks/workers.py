"""Trial throughput of one study with 1, 2 and 4 worker processes on PostgreSQL.

    python benchmarks/workers.py                      # starts scripts/postgres.sh's server
    python benchmarks/workers.py --storage postgresql://user@host/db --workers 1,2,4,8

Each row is one fresh database and one study of ``--trials`` trials on a random LLaMA
(byte tokenizer), run by N ``allocsearch search`` processes of one torch thread each, started
together. Throughput is finished trials per second between the first trial's start and the
last trial's end, read from the storage (process start-up and model loading excluded). The
storage's share is what a trial costs beyond its evaluation: per trial, the time from a
worker's previous trial end to this trial's end, minus the evaluation seconds the trial
recorded; it holds the claim (study lock, stale check, count, ask) and every write and the
tell. A storage that is not the bottleneck keeps that per-trial overhead flat as workers are
added, while throughput grows until the CPU cores are spent (this machine's count is in the
JSON).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, ROOT, command_line, environment, print_table, write_json

from allocsearch.models.random import save_random_llama
from allocsearch.search import store
from allocsearch.search.storage import normalize_url


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", default=None, help="a PostgreSQL server URL (default: start "
                   "scripts/postgres.sh's); each row gets its own database on it")
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--trials", type=int, default=48)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--fidelities", default="1024,2048", help="search tokens per trial's rungs")
    p.add_argument("--tag", default="", help="a suffix for the JSON's name (another scenario)")
    args = p.parse_args()
    server = args.storage or subprocess.run([str(ROOT / "scripts" / "postgres.sh")], check=True,
                                            capture_output=True, text=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = save_random_llama(Path(tmp) / "model", hidden=args.hidden, blocks=args.blocks)
        for n in (int(x) for x in args.workers.split(",")):
            rows.append(run_row(server, model, Path(tmp), n, args))
            print_table(rows[-1:], COLUMNS)
    base = rows[0]["trials_per_s"]
    for r in rows:
        r["speedup"] = r["trials_per_s"] / base
    print()
    print_table(rows, COLUMNS)
    path = write_json(f"workers_postgres_cpu{'_' + args.tag if args.tag else ''}.json", {
        "command": command_line(),
        "environment": environment() | {"cpu_cores": os.cpu_count(), "postgres": server_version(server)},
        "setup": {"model": f"random LLaMA hidden {args.hidden}, {args.blocks} blocks, byte tokenizer",
                  "trials": args.trials, "fidelities": args.fidelities, "sampler": "random",
                  "threads_per_worker": 1, "space": "blocks", "target": 0.6},
        "rows": rows,
    }, protocol={"device": "cpu", "dtype": "float32",
                 "model": f"random LLaMA, hidden {args.hidden}, {args.blocks} blocks",
                 "data": "embedded, search part", "calibration": "4 x 128 (profile)",
                 "evaluation": f"fitness at {args.fidelities} search tokens", "seeds": [0]})
    print(f"wrote {path}")


COLUMNS = ["workers", "trials", "seconds", "trials_per_s", "speedup", "eval_ms", "overhead_ms",
           "overhead_share", "claim_ms_p90"]


def run_row(server: str, model: Path, tmp: Path, n: int, args: argparse.Namespace) -> dict[str, Any]:
    url = fresh_database(server)
    cfg = {"name": "bench", "model": str(model), "device": "cpu", "target": 0.6, "space": "blocks",
           "data": {"nsamples": 4, "seqlen": 128}, "sampler": "random", "n_trials": args.trials,
           "evaluator": {"seqlen": 128, "batch_size": 8,
                         "fidelities": [int(f) for f in args.fidelities.split(",")]},
           "warm_start": [{"method": "uniform"}], "output": str(tmp / f"out{n}")}
    config = tmp / f"bench{n}.yaml"
    config.write_text(yaml.safe_dump(cfg))  # atomic-exempt: a scratch file in a temporary folder
    env = os.environ | {"OMP_NUM_THREADS": "1", "ALLOCSEARCH_CACHE": str(tmp / "cache")}
    argv = [sys.executable, "-m", "allocsearch", "search", str(config), "--storage", url,
            "--quiet", "--no-verify"]
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for _ in range(n)]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed:\n{err}")
    return measure(url, n)


@dataclass(frozen=True)
class Span:
    """One finished trial as the storage saw it: who ran it, when, and its evaluation time."""

    worker: str
    start: datetime
    end: datetime
    evaluation: float  # seconds, as the trial recorded them


def measure(url: str, n: int) -> dict[str, Any]:
    study = optuna.load_study(study_name="bench", storage=normalize_url(url))
    spans = [Span(str(t.worker), t.start, t.complete, float(t.seconds or 0.0))
             for t in store.trials(study) if t.start is not None and t.complete is not None]
    seconds = (max(s.end for s in spans) - min(s.start for s in spans)).total_seconds()
    by_worker: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        by_worker[span.worker].append(span)
    overhead, claims = [], []
    for mine in by_worker.values():
        mine.sort(key=lambda s: s.start)
        for prev, s in itertools.pairwise(mine):
            overhead.append((s.end - prev.end).total_seconds() - s.evaluation)
            claims.append((s.start - prev.end).total_seconds())
    evaluation = statistics.mean(s.evaluation for s in spans)
    claims.sort()
    return {"workers": n, "trials": len(spans), "seconds": round(seconds, 2),
            "trials_per_s": round(len(spans) / seconds, 3),
            "eval_ms": round(1000 * evaluation, 1),
            "overhead_ms": round(1000 * statistics.mean(overhead), 1),
            "overhead_share": round(statistics.mean(overhead) / (statistics.mean(overhead) + evaluation), 3),
            "claim_ms_p90": round(1000 * claims[int(0.9 * (len(claims) - 1))], 1),
            "active_workers": len(by_worker)}


def render() -> str:
    """One table per scenario JSON: throughput, speed-up and what the storage costs a trial."""
    out = []
    for path in sorted(RESULTS.glob("workers_postgres_cpu*.json")):
        data = json.loads(path.read_text())
        env, setup = data["environment"], data["setup"]
        out.append(f"`{data['command']}`: {setup['trials']} trials, fidelities {setup['fidelities']} "
                   f"tokens, PostgreSQL {env['postgres']}, {env['cpu_cores']} CPU cores, {env['date']}\n")
        out.append("| workers | trials/s | x one worker | evaluation ms/trial | storage ms/trial "
                   "| storage share | claim ms (p90) |")
        out.append("|---|---|---|---|---|---|---|")
        out += [f"| {r['workers']} | {r['trials_per_s']:.2f} | {r['speedup']:.2f} | {r['eval_ms']:.0f} | "
                f"{r['overhead_ms']:.0f} | {r['overhead_share']:.2f} | {r['claim_ms_p90']:.0f} |"
                for r in data["rows"]]
        out.append("")
    return "\n".join(out).rstrip()




def fresh_database(server: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = server.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + f"/{name}"


def server_version(server: str) -> str:
    import psycopg

    with psycopg.connect(server) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f}s)")
