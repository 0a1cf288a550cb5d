"""Write BENCHMARKS.md, and every result block of the README and docs/, from
benchmarks/results/*.json, never by hand.

    python benchmarks/report.py            # rewrite BENCHMARKS.md and the blocks
    python benchmarks/report.py --check    # fail when any of them differs from the JSON

One section per current result file (a manifest naming its commit and command): what it
measured, a one-line manifest (command, commit, device, threads, date), its main table and a
link to the JSON, which holds every number and the full manifest. A result's tagged variants
(``<name>_<tag>.json`` with the same table) follow it in one section: a manifest line each and
one table whose first column is the tag. Results in
``results/archive/`` (written before manifests, or on code whose numbers the shipped commands
no longer give) are listed in one short section, never headlined. Plans
(``search_best_*.json``) and resume state (``*.partial.json``, ``runs/``) are not results.
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

from _common import ARCHIVE, DOCS, RESULTS, ROOT, rerun_command, with_block

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
    Kind("headline", "The headline, from the shipped study configs", "Each config with seeds 0/1/2: "
         "the best searched plan against the lowest verified prior, paired across calibration "
         "draws, on both domains."),
    Kind("demo", "The first command", "scripts/demo.sh end to end, as a new user runs it."),
    Kind("tour", "The README's tour", "Every command of the README's tour, as written, in a new folder."),
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
    Kind("quality_wanda_modules", "Searching per module on Wanda ranks", "One offset per linear module on "
         "cached Wanda ranks: search vs. priors, pruned with sequential Wanda."),
    Kind("curves", "Allocation from block loss curves", "Each block's measured loss curve, an exact "
         "programme over the budget, mixed with the best prior: verified against it and the search."),
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
    Kind("noise", "Noise floor of verification", "How far one plan's verified perplexity moves "
         "across calibration draws and CPU thread counts: what a claimed gain must exceed."),
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
    # A result's ``rows`` are its main table: only another list says which one it is.
    named = [] if name == "rows" else [f"`{name}`:", ""]
    out = [*named, "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
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


CURATED_ROWS = 10  # a table's first rows in BENCHMARKS.md (460 lines hold them all); the JSON: the rest


def manifest_line(data: dict[str, Any]) -> str:
    """Command, commit, device, threads and date of a current result, on one line."""
    m = data["manifest"]
    commit = m["commit"][:10] + (" (uncommitted changes)" if m["dirty"] else "")
    command = rerun_command(data)
    parts = "" if command == m["command"] else " (its parts ran one per process; `--report` wrote it)"
    return (f"`{command}`{parts} · commit {commit} · {m.get('device', m['machine'].get('gpu') or 'cpu')}"
            f" · {m['machine']['threads']} threads · {m['date']}")


def main_records(data: dict[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """The result's main table: its ``rows``, else its first list of records."""
    lists = record_lists(data)
    named = dict(lists)
    if "rows" in named:
        return "rows", named["rows"]
    return next(((k, v) for k, v in lists if k != "values"), lists[0] if lists else None)


def _shown(data: dict[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """The main table's name and the rows BENCHMARKS.md shows: a tagged variant's prior rows,
    measured by the plain suite and shown with it, are left out."""
    found = main_records(data)
    if found is None:
        return None
    name, records = found
    return name, [r for r in records if not _borrowed(data, r)]


def _curated(name: str, records: list[dict[str, Any]], source: str) -> list[str]:
    lines = table(records[:CURATED_ROWS], name, source)
    if len(records) > CURATED_ROWS:
        lines += [f"({len(records) - CURATED_ROWS} more rows in the JSON)", ""]
    return lines


def render_file(path: Path, about: bool = True) -> list[str]:
    """One current result: its family, what it answers (``about``: only the family's first
    result says it), a one-line manifest with a link to the JSON holding every number, and its
    main table (at most CURATED_ROWS rows)."""
    data = json.loads(path.read_text())
    kind = kind_of(path)
    source = f"benchmarks/results/{path.name}"
    lines = [f"### {kind.title}: `{path.name}`", "", *([kind.about, ""] if about else []),
             f"{manifest_line(data)} · every number: [{source}]({source})", ""]
    shown = _shown(data)
    return lines + (_curated(*shown, source) if shown is not None else [])


def variants_of(base: Path, files: list[Path]) -> list[Path]:
    """The tagged variants of a result (``<base>_<tag>.json``, the same family) whose main
    table has the base's columns: shown in one section after it, one table for all of them."""
    def columns(path: Path) -> set[str] | None:
        shown = _shown(json.loads(path.read_text()))
        return None if shown is None else {k for r in shown[1] for k in r}

    own = columns(base)
    return [p for p in files if p != base and p.stem.startswith(base.stem + "_")
            and kind_of(p) == kind_of(base) and own is not None and columns(p) == own]


def render_variants(base: Path, variants: list[Path]) -> list[str]:
    """One section for a result's tagged variants: each one's manifest line, then their rows in
    one table whose first column names the variant (a tag of a single short run takes one row,
    not a section of its own)."""
    lines = [f"### {kind_of(base).title}: variants of `{base.name}`", ""]
    shown_base = _shown(json.loads(base.read_text()))
    order = list(dict.fromkeys(k for r in shown_base[1] for k in r)) if shown_base is not None else []
    rows: list[dict[str, Any]] = []
    first: dict[str, str] = {}  # a row's values -> the variant that showed them first
    repeats: dict[str, set[str]] = {}  # a variant -> the earlier variants whose rows it repeats
    for p in variants:
        data, source = json.loads(p.read_text()), f"benchmarks/results/{p.name}"
        lines.append(f"- [`{p.name}`]({source}): {manifest_line(data)}")
        shown = _shown(data)
        tag = p.stem[len(base.stem) + 1:]
        for r in shown[1] if shown is not None else []:
            values = json.dumps([r.get(k) for k in order])
            if values in first:  # the same plan verified to the same numbers: one row says it
                repeats.setdefault(tag, set()).add(first[values])
                continue
            first[values] = tag
            rows.append({"variant": tag, **{k: r.get(k) for k in order}})
    if repeats:
        lines += ["", "Rows equal in every column to an earlier variant's are shown once: " + "; ".join(
            f"`{tag}` repeats {', '.join(f'`{o}`' for o in sorted(was))}'s" for tag, was in repeats.items())
            + "."]
    return [*lines, "", *table(rows, "rows", "the variants' JSON")]


def _borrowed(data: dict[str, Any], row: dict[str, Any]) -> bool:
    """A prior's row of a tagged variant whose priors came from the plain suite's run."""
    runs, target = data.get("runs"), row.get("target")
    if not isinstance(runs, dict) or not isinstance(target, int | float):
        return False
    state = runs.get(str(round(target * 100)))
    return isinstance(state, dict) and "priors_from" in state and row.get("seeds") == 1 \
        and not str(row.get("plan", "")).startswith("searched")


def render_archive(paths: list[Path]) -> list[str]:
    """One short table of the archived results, a row per family: each file with its date,
    device and command, never their numbers."""
    lines = ["## Archive: measured on older code", "",
             "These results were written before the benchmarks recorded a manifest (commit and "
             "command), or on code whose numbers the shipped commands no longer give. They are kept "
             "for reference, are not in the headline, and are to be rerun with the shipped "
             "commands.", "", "| family | files (date, device, command) |", "|---|---|"]
    by_family: dict[str, list[str]] = {}
    for p in paths:
        data = json.loads(p.read_text())
        env = data.get("environment", {})
        command = data.get("command")
        by_family.setdefault(kind_of(p).title, []).append(
            f"[`{p.name}`](benchmarks/results/archive/{p.name}) ({env.get('date', 'date not recorded')}, "
            f"{data.get('device', env.get('device', '-'))}, "
            + (f"`{command}`" if command else "command not recorded") + ")")
    lines += [f"| {family} | {'; '.join(files)} |" for family, files in by_family.items()]
    return [*lines, ""]


def _sorted(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: (KINDS.index(kind_of(p)), p.name))


def render() -> str:
    files = _sorted([p for p in RESULTS.glob("*.json") if is_result(p)])
    archived = _sorted([p for p in ARCHIVE.glob("*.json") if is_result(p)])
    variant: dict[Path, Path] = {}  # a variant -> the first result it is a variant of
    for p in files:  # by name, so a base comes before its variants; a variant is no base
        for v in ([] if p in variant else variants_of(p, files)):
            variant.setdefault(v, p)
    grouped = {p: [v for v in files if variant.get(v) == p] for p in files}
    lines = ["# Benchmarks", "",
             "Written by `python benchmarks/report.py` from `benchmarks/results/*.json`; do not edit "
             "by hand (`python benchmarks/report.py --check` runs in the tests). Each current result "
             "shows its command, commit, device, threads and date, its main table and a link to its "
             "JSON; older results are listed in the [archive](#archive-measured-on-older-code).", ""]
    lines += _contents(files, variant)
    for i, p in enumerate(files):
        if p in variant:
            continue
        lines += render_file(p, about=i == 0 or kind_of(files[i - 1]) != kind_of(p))
        if grouped[p]:
            lines += render_variants(p, grouped[p])
    lines += render_archive(archived)
    return "\n".join(lines).rstrip() + "\n"


def _contents(files: list[Path], variant: dict[Path, Path]) -> list[str]:
    """The table of contents: one line per family, linking each of its current results (a
    variant to its base's variants section)."""
    families: dict[str, list[str]] = {}
    for p in files:
        title = kind_of(p).title
        where = f"variants of {variant[p].name}" if p in variant else p.name
        families.setdefault(title, []).append(f"[{p.name}](#{_anchor(title, where)})")
    return [*(f"- {title}: {', '.join(links)}" for title, links in families.items()), ""]


def _anchor(title: str, name: str) -> str:
    text = f"{title}: {name}".lower()
    return "".join(c for c in text.replace(" ", "-") if c.isalnum() or c in "-_")


# ------------------------------------------------------------------ blocks in docs
def _load(name: str) -> dict[str, Any]:
    return dict(json.loads((RESULTS / name).read_text()))


def headline() -> str:
    """The README's headline: per shipped study config (and per tagged variant of one), the
    searched seeds against the lowest verified prior of the same run, from current results only
    (a manifest naming commit and command); archived results are never headlined. Rows of fewer
    than three seeds, and the older single-seed suites, are in BENCHMARKS.md, not here."""
    import _modules_render

    shipped = [r for path in sorted(RESULTS.glob("headline_*.json"))
               for r in json.loads(path.read_text())["rows"]] + _modules_render.headline_rows()
    full = [r for r in shipped if r["seeds"] >= 3]
    floors = noise_floors()
    lines = ["| study config | pruner | target | seeds | x lowest verified prior (median [min, max]) "
             "| x, other domain | seeds better on every draw | median gain beyond the noise floor? |",
             "|---|---|---|---|---|---|---|---|"]
    for r in full:
        floor = floors.get((round(r["target"], 4), r["pruner"]))
        beyond = "-" if floor is None else (f"yes (floor {floor:.1%})" if r["ratio_median"] < 1 - floor
                                            else f"within noise (floor {floor:.1%})")
        mark = _modules_render.BORROWED if r.get("borrowed") else ""
        lines.append(f"| `{r['config']}`{mark} | {r['pruner']} | {r['target']:.0%} | {r['seeds']} | "
                     f"**{r['ratio_median']:.3f}** [{r['ratio_min']:.3f}, {r['ratio_max']:.3f}] | "
                     f"{r['ratio_other_median']:.3f} | {r['better_seeds']} of {r['seeds']} | {beyond} |")
    fewer = len(shipped) - len(full)
    lines += ["", "Each row is a study config run with seeds 0, 1 and 2 (a tagged row: the same config "
              "with the `--set` overrides its manifest in BENCHMARKS.md names). Every searched plan and "
              "every prior is verified on 3 calibration draws; a ratio is a seed's mean over the draws "
              "against the prior with the lowest mean in the same run (†: in the plain suite's run, "
              "borrowed), on the evaluation split and on "
              "text of another domain (Debian's licences). A seed counts as better only when it is "
              "lower on every draw (paired). The noise floor is the largest spread, relative to the "
              "mean, that one plan's verified perplexity shows across calibration draws "
              "at that target and pruner (`benchmarks/noise.py`); a median gain smaller than it "
              "is not a claim."
              + (f" {fewer} variant{'s' if fewer != 1 else ''} with fewer seeds, and the older "
                 "single-seed suites, are in [BENCHMARKS.md](BENCHMARKS.md)" if fewer else
                 " The older single-seed suites are in [BENCHMARKS.md](BENCHMARKS.md)")
              + "; results of older code are in its [archive](BENCHMARKS.md#archive-measured-on-older-code)."]
    machines = [f"`{r['config']}` ({r['builds']})" for r in full if r.get("borrowed") and r.get("builds")]
    if any(r.get("borrowed") for r in full):
        lines += ["", "† Priors verified in another run and borrowed, not re-measured. "
                  + ("Runs whose builds differ from that run's (a new install and machine came "
                     "between them): " + "; ".join(machines) + ". Across machines the same plan's "
                     "verification moves (the re-measured priors in [results](docs/results.md)), "
                     "so those ratios compare machines as well as plans." if machines else
                     "Both runs had the same builds.")]
    return "\n".join(lines)


def noise_floors() -> dict[tuple[float, str], float]:
    """(target, pruner) -> the largest relative spread across calibration draws measured by
    benchmarks/noise.py (any of its result files)."""
    out: dict[tuple[float, str], float] = {}
    for path in sorted(RESULTS.glob("noise_*.json")):
        for r in json.loads(path.read_text())["rows"]:
            key = (round(float(r["target"]), 4), str(r["pruner"]))
            out[key] = max(out.get(key, 0.0), float(r["rel_spread"]))
    return out


def blocks() -> list[tuple[Path, str, Callable[[], str]]]:
    """Every rendered block: (document, block name, renderer)."""
    import _modules_render
    import _predictor_render
    import _sparsegpt_render
    import curves
    import demo
    import nas
    import tasks
    import tour
    import workers

    return [(ROOT / "README.md", "headline", headline),
            (ROOT / "README.md", "curves", curves.render_readme),
            (ROOT / "README.md", "predictor", _predictor_render.render_readme),
            (ROOT / "README.md", "demo", demo.render_readme),
            (ROOT / "README.md", "tour", tour.render_readme),
            (DOCS / "results.md", "sparsegpt-results", _sparsegpt_render.render),
            (DOCS / "results.md", "sparsegpt-modules-results", _modules_render.render),
            (DOCS / "results.md", "wanda-modules-results", _modules_render.render_wanda),
            (DOCS / "results.md", "curves-results", curves.render),
            (DOCS / "results.md", "nas-results", nas.render),
            (DOCS / "results.md", "predictor-results", _predictor_render.render_results),
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
