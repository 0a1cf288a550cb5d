"""Write BENCHMARKS.md, and every result block of the README and docs/, from
benchmarks/results/*.json, never by hand.

    python benchmarks/report.py            # rewrite BENCHMARKS.md and the blocks
    python benchmarks/report.py --check    # fail when any of them differs from the JSON

One section per result file: what it measured, its manifest (command, commit, date, machine,
device, dtype, model, data, calibration, evaluation, seeds, package versions) and its tables.
A result written before benchmarks recorded manifests shows what its JSON holds of these and
"not recorded" for the rest. Plans (``search_best_*.json``) and resume state
(``*.partial.json``, ``runs/``) are not results.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DOCS, PROTOCOL_KEYS, RESULTS, ROOT, with_block

from allocsearch.io import atomic_write_text

OUT = ROOT / "BENCHMARKS.md"
MAX_ROWS = 60  # longer tables are cut, with the count of rows left out and the file to read


@dataclass(frozen=True)
class Kind:
    """A family of result files (by name prefix): a title and what it answers."""

    prefix: str
    title: str
    about: str


KINDS = [
    Kind("quality_uniform", "Uniform pruning", "Dense and one-ratio pruners on SmolLM2-135M."),
    Kind("quality_priors", "Allocation priors", "Each prior family's parameters chosen on the search "
         "split, measured on the evaluation split (sequential Wanda)."),
    Kind("quality_search", "Search against the priors", "Optuna studies vs. the priors, verified exactly."),
    Kind("quality_samplers", "Samplers at equal budgets", "Samplers compared at the same trial or token "
         "budget."),
    Kind("quality_anchored", "Anchored (sequential-aware) rounds", "Anchored studies, each short list "
         "measured exactly."),
    Kind("quality_oneshot", "Under one-shot pruning", "Plans applied with one-shot (dense-input) masks."),
    Kind("quality_sparsegpt", "Searching on SparseGPT levels", "The level database: search vs. priors, "
         "pruned with sequential SparseGPT."),
    Kind("correlation", "Evaluator rank correlation", "Cheap fitness vs. the exact sequential prune "
         "(Spearman)."),
    Kind("speed", "Evaluator speed and memory", "Cost of scoring a plan against the bare forward pass."),
    Kind("gpu_evaluator", "Evaluator on the GPU", "Cached-mask evaluation on a CUDA device."),
    Kind("gpu_", "Scale on one GPU", "A random LLaMA-7B-shaped model through every stage "
         "(benchmarks/gpu.py)."),
    Kind("database_costs", "Level database costs", "Build time, disk and apply overhead of the level "
         "database."),
    Kind("memory", "Engine memory", "Peak memory of a sequential prune."),
    Kind("nas", "Structured sub-networks (NAS)", "Depth vs. width vs. searched structured plans, with "
         "measured speed."),
    Kind("predictor", "The accuracy predictor", "Predictor data, quality and short-listing efficiency."),
    Kind("pareto", "Two objectives", "An NSGA-II study's Pareto front (fitness vs. sparsity)."),
    Kind("workers", "Many workers on PostgreSQL", "Trial throughput with several worker processes."),
    Kind("tasks", "Task accuracy", "Zero-shot accuracy (lm-evaluation-harness) of the dense model, "
         "the priors and the searched plans, beside their perplexity."),
]


def is_result(path: Path) -> bool:
    if path.name.endswith(".partial.json"):
        return False
    data = json.loads(path.read_text())
    return isinstance(data, dict) and "modules" not in data  # a plan is not a result


def kind_of(path: Path) -> Kind:
    for kind in KINDS:
        if path.stem.startswith(kind.prefix):
            return kind
    raise SystemExit(f"{path.name}: no section in benchmarks/report.py's KINDS; add one")


# ------------------------------------------------------------------ manifest
_LEGACY = {  # where a result written before manifests keeps each manifest key
    "command": ("command",), "device": ("device",), "dtype": ("dtype",), "model": ("model",),
    "data": ("data",), "calibration": ("calibration",),
    "evaluation": ("evaluation", "evaluation_windows", "eval_windows"), "seeds": ("seeds", "seed"),
}


def manifest_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, value) for the manifest table; a key the result does not hold is "not recorded"."""
    m = data.get("manifest")
    if m is not None:
        rows = [("command", f"`{m['command']}`"),
                ("commit", (m["commit"] or "not recorded")[:12] + (" (uncommitted changes)" if m["dirty"]
                                                                 else "")
                 + (f"; HEAD was {m['commit_at_write'][:12]} when it wrote" if m.get("commit_at_write")
                    else "")),
                ("date", m["date"]), ("machine", _text(m["machine"])), ("python", m["python"]),
                ("versions", _text(m["versions"]))]
        return rows + [(k, _text(m[k]) if k in m else "not recorded") for k in PROTOCOL_KEYS]
    env = data.get("environment", {})
    rows = []
    for key in ("command", *PROTOCOL_KEYS):
        found = next((data[k] for k in _LEGACY.get(key, ()) if k in data), None)
        if key == "device" and found is None and env.get("device"):
            found = env["device"]
        value = f"`{found}`" if key == "command" and found else _text(found) if found is not None else None
        rows.append((key, value or "not recorded"))
    rows.insert(1, ("commit", "not recorded (written before manifests)"))
    rows.insert(2, ("date", env.get("date", "not recorded")))
    versions = {k: env[k] for k in ("python", "torch", "transformers") if k in env}
    rows.insert(3, ("versions", _text(versions) if versions else "not recorded"))
    if "threads" in env:
        rows.insert(4, ("machine", f"{env.get('device', '?')}, {env['threads']} torch threads"))
    return rows


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return _cell(value)


# ------------------------------------------------------------------ tables
def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else ("yes" if value else "no")
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(records: list[dict[str, Any]], name: str, source: str) -> list[str]:
    """A markdown table of the records' scalar fields (nested ones are left to the JSON)."""
    columns: list[str] = []
    for r in records:
        for k, v in r.items():
            if k not in columns and not isinstance(v, dict | list):
                columns.append(k)
    if not columns:
        return []
    out = [f"`{name}`:", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in records[:MAX_ROWS]]
    if len(records) > MAX_ROWS:
        out.append(f"\n({len(records) - MAX_ROWS} more rows in `{source}`)")
    return [*out, ""]


def _scalar(v: Any) -> bool:
    return not isinstance(v, dict | list)


def record_lists(data: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The result's numbers as tables: its top-level scalars (one key/value table), every
    list of records (rows, runs, measured...), every dict of records and every dict of
    scalars. Deeper nesting is left to the JSON."""
    out: list[tuple[str, list[dict[str, Any]]]] = []
    skip = {"manifest", "environment", "command", "args"}
    top = [{"quantity": k, "value": v} for k, v in data.items() if k not in skip and _scalar(v)]
    if top:
        out.append(("values", top))
    for key, value in data.items():
        if key in skip:
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out.append((key, value))
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()) \
                and all(_scalar(x) for v in value.values() for x in v.values()):
            out.append((key, [{"": k, **v} for k, v in value.items()]))
        elif isinstance(value, dict) and value and all(_scalar(v) for v in value.values()) \
                and key not in ("calibration", "evaluation", "profile", "search", "setup"):
            out.append((key, [{"quantity": k, "value": v} for k, v in value.items()]))
    return out


def render_file(path: Path) -> list[str]:
    data = json.loads(path.read_text())
    kind = kind_of(path)
    source = f"benchmarks/results/{path.name}"
    lines = [f"### {kind.title}: `{path.name}`", "", kind.about, "", "| manifest | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in manifest_rows(data)]
    lines.append("")
    for name, records in record_lists(data):
        lines += table(records, name, source)
    return lines


def render() -> str:
    files = sorted((p for p in RESULTS.glob("*.json") if is_result(p)),
                   key=lambda p: (KINDS.index(kind_of(p)), p.name))
    lines = ["# Benchmarks", "",
             "Written by `python benchmarks/report.py` from `benchmarks/results/*.json`; do not edit "
             "by hand (`python benchmarks/report.py --check` runs in the tests). Each result lists "
             "its manifest: results written before the benchmarks recorded manifests show what "
             "their JSON holds and \"not recorded\" for the rest.", ""]
    lines += [f"- [{kind_of(p).title}: {p.name}](#{_anchor(kind_of(p).title, p.name)})" for p in files]
    lines.append("")
    for p in files:
        lines += render_file(p)
    return "\n".join(lines).rstrip() + "\n"


def _anchor(title: str, name: str) -> str:
    text = f"{title}: {name}".lower()
    return "".join(c for c in text.replace(" ", "-") if c.isalnum() or c in "-_")


# ------------------------------------------------------------------ blocks in docs
def _load(name: str) -> dict[str, Any]:
    return dict(json.loads((RESULTS / name).read_text()))


def headline() -> str:
    """The README's headline: searched plans against the best prior, from three suites."""
    rows = []
    anchored = _load("quality_anchored_cpu.json")
    for r in anchored["rows"]:
        rows.append(("Wanda, sequential", "anchored rounds (1 seed)", r["target"], r["best_prior"],
                     r["best_prior_wanda_ppl"], r["best_wanda_ppl"], r["ratio_wanda"], "-",
                     "quality_anchored_cpu.json", anchored["device"]))
    search = _load("quality_search_cuda.json")
    for r in search["rows"]:
        rows.append(("Wanda, sequential", f"TPE, {r['trials']} trials (1 seed)", r["target"],
                     r["best_prior"], r["best_prior_wanda_ppl"], r["best_wanda_ppl"], r["ratio_wanda"], "-",
                     "quality_search_cuda.json", search["device"]))
    sgpt = _load("quality_sparsegpt_cpu.json")
    for r in sgpt["rows"]:
        if r["plan"].startswith("searched"):
            prior = next(p for p in sgpt["rows"]
                         if p["target"] == r["target"] and p["plan"] == r["best_prior"])
            rows.append(("SparseGPT, sequential", f"level database, median of {r['seeds']} seeds",
                         r["target"], r["best_prior"], prior["ppl"], r["ppl"], r["ratio"],
                         f"{r['ratio_other']:.3f}", "quality_sparsegpt_cpu.json", sgpt["device"]))
    lines = ["| pruner | search | target | best prior | its ppl | searched ppl | x best prior "
             "| x, other domain | source (device) |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {t:.0%} | {p} | {pp:.2f} | {sp:.2f} | **{x:.3f}** | {o} | `{src}` ({dev}) |"
              for a, b, t, p, pp, sp, x, o, src, dev in rows]
    return "\n".join(lines)


def blocks() -> list[tuple[Path, str, Callable[[], str]]]:
    """Every rendered block: (document, block name, renderer)."""
    import _sparsegpt
    import nas
    import predictor
    import tasks
    import workers

    return [(ROOT / "README.md", "headline", headline),
            (DOCS / "results.md", "sparsegpt-results", _sparsegpt.render),
            (DOCS / "results.md", "nas-results", nas.render),
            (DOCS / "results.md", "predictor-results", predictor.render_results),
            (DOCS / "results.md", "tasks-results", tasks.render),
            (DOCS / "studies.md", "workers-results", workers.render)]


def expected() -> dict[Path, str]:
    """What BENCHMARKS.md and each document with blocks should hold."""
    docs: dict[Path, str] = {OUT: render()}
    for path, name, fn in blocks():
        docs[path] = with_block(docs.get(path, path.read_text()), name, fn())
    return docs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="fail when a document is out of date")
    args = p.parse_args()
    stale = []
    for path, text in expected().items():
        if not path.is_file() or path.read_text() != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                atomic_write_text(path, text)
    if args.check and stale:
        raise SystemExit(f"{', '.join(map(str, stale))} differ from benchmarks/results/*.json: run "
                         f"python benchmarks/report.py")
    print("up to date" if not stale else f"wrote {', '.join(map(str, stale))}")


if __name__ == "__main__":
    main()
