"""Task accuracy of the plans the SparseGPT suite measured: does the searched plans'
perplexity gain hold in zero-shot accuracy?

    python benchmarks/tasks.py                          # an hour or more per target on one CPU core
    python benchmarks/tasks.py --targets 0.7 & python benchmarks/tasks.py --targets 0.6 --no-dense
    python benchmarks/tasks.py --hub-tasks ''                 # the local task only

The plans are those of results/quality_sparsegpt_cpu.json (its ``runs``): at each target the
uniform plan, the best prior (the one with the lowest search fitness, as a user choosing on the
search split picks it) and the
searched plan of each of the 3 seeds. Each is pruned with sequential SparseGPT on the study's
verification calibration (16 x 256, seed 0), as that suite measured them, then scored:

- evaluation perplexity (40 windows of 512 tokens of the pydoc evaluation part);
- ``allocsearch_continuation`` (four choices, chance 0.25) built from the pydoc evaluation
  part, and the same task built from another domain (Debian's /usr/share/common-licenses);
- ``--hub-tasks`` (BoolQ, RTE, HellaSwag, WinoGrande, ARC-e/c, OBQA by default): tried on
  the dense model first; when the hub is unreachable, that is recorded and they are left out.

Each finished row is kept in results/runs/tasks_<pct>.partial.json (a run resumes, and targets
can run in parallel processes); the result is written once dense and every target are there:
benchmarks/results/tasks_sparsegpt_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    RESULTS,
    RUNS,
    add_model_args,
    other_domain_file,
    print_table,
    result_path,
    study_file,
    write_json,
)

from allocsearch.apply import prune_with_plan
from allocsearch.data.continuation import CONTINUATION_TASK, ContinuationConfig
from allocsearch.evaluate.perplexity import evaluate_perplexity
from allocsearch.evaluate.tasks import TaskConfig, TaskError, TaskScore, task_accuracy
from allocsearch.io import atomic_write_json
from allocsearch.models import LoadedModel, load_model
from allocsearch.plan import Plan
from allocsearch.search import StudyConfig

SOURCE = result_path("quality_sparsegpt_cpu.json")[0]
SEEDS = (0, 1, 2)
EVAL_WINDOWS = 40
HUB_TASKS = "boolq,rte,hellaswag,winogrande,arc_easy,arc_challenge,openbookqa"


def plans_of(target: float) -> dict[str, Plan]:
    """uniform, the best prior on search fitness, and each seed's searched plan."""
    data = json.loads(SOURCE.read_text())
    pct = str(round(target * 100))
    runs = data["runs"][pct]
    (searched,) = [r for r in data["rows"] if r["target"] == target and r["plan"] == "searched (median)"]
    best = searched["best_prior_on_search"]
    family = best.split()[0]
    plans = {"uniform": Plan.from_dict(runs["priors"]["best"]["uniform"]["plan"]),
             f"best prior ({best})": Plan.from_dict(runs["priors"]["best"][family]["plan"])}
    for seed in SEEDS:
        plans[f"searched seed {seed}"] = Plan.from_dict(runs[f"searched:s{seed}"]["plan"])
    return plans


def score(loaded: LoadedModel, configs: dict[str, TaskConfig]) -> dict[str, Any]:
    """Perplexity and every task on the model as it is."""
    ppl = evaluate_perplexity(loaded, "embedded", nsamples=EVAL_WINDOWS, progress=False)
    out: dict[str, Any] = {"ppl": ppl.ppl, "tokens": ppl.tokens}
    for domain, config in configs.items():
        for name, s in task_accuracy(loaded, config, progress=False).items():
            out[f"{domain}:{name}"] = s.to_dict()
    return out


def measure(loaded: LoadedModel, plan: Plan, target: float,
            configs: dict[str, TaskConfig]) -> dict[str, Any]:
    """Sequential SparseGPT on a copy, at the study's verification calibration; then score."""
    calibration = StudyConfig.load(study_file("sparsegpt", target)).verify_config("sparsegpt").calibration
    copy = loaded.clone()
    report = prune_with_plan(copy, plan, "sparsegpt", calibration, progress=False)
    return score(copy, configs) | {"sparsity": report.overall, "budget": plan.budget()}


def task_configs(hub: tuple[str, ...], loaded: LoadedModel,
                 batch_size: int) -> tuple[dict[str, TaskConfig], dict[str, str]]:
    """The local task on both domains, and the hub tasks when the hub answers."""
    other = other_domain_file(RUNS)
    configs = {"pydoc": TaskConfig(batch_size=batch_size),
               "licenses": TaskConfig(batch_size=batch_size, continuation=ContinuationConfig(source=other))}
    left_out: dict[str, str] = {}
    if hub:
        hub_config = TaskConfig(hub, batch_size=batch_size)
        try:
            task_accuracy(loaded, TaskConfig(hub[:1], limit=1, batch_size=1), progress=False)
            configs["hub"] = hub_config
        except TaskError as exc:
            left_out = {name: str(exc) for name in hub}
    return configs, left_out


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_args(p)
    p.add_argument("--targets", type=float, nargs="+", default=[0.7, 0.6])
    p.add_argument("--no-dense", action="store_true", help="leave the dense row to another process")
    p.add_argument("--hub-tasks", default=HUB_TASKS, help="lm-eval hub tasks, comma-separated "
                   "('' for none; default: the seven of the Wanda/SparseGPT papers' tables)")
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args()
    hub = TaskConfig.parse_names(args.hub_tasks) if args.hub_tasks else ()
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    dense_path = RUNS / "tasks_dense.partial.json"
    configs, left_out = task_configs(hub, loaded, args.batch_size)
    if not args.no_dense and not dense_path.exists():
        atomic_write_json(dense_path, score(loaded, configs))
    for target in args.targets:
        path = RUNS / f"tasks_{round(target * 100)}.partial.json"
        state = _load(path)
        for label, plan in plans_of(target).items():
            if label not in state:
                state[label] = measure(loaded, plan, target, configs)
                atomic_write_json(path, state)
            print(f"  {round(target * 100)}% {label:28s} ppl {state[label]['ppl']:8.3f}  acc "
                  f"{state[label][f'pydoc:{CONTINUATION_TASK}']['acc']:.4f}", flush=True)
    finish(loaded, hub, left_out, args)


def finish(loaded: LoadedModel, hub: tuple[str, ...], left_out: dict[str, str],
           args: argparse.Namespace) -> None:
    """The result file, once the dense row and both targets' rows are all there."""
    dense = _load(RUNS / "tasks_dense.partial.json")
    states = {t: _load(RUNS / f"tasks_{round(t * 100)}.partial.json") for t in (0.7, 0.6)}
    if not dense or any(len(s) < 2 + len(SEEDS) for s in states.values()):
        print("not every row is measured yet; the result is written when they are")
        return
    rows = [row(None, "dense", dense)]
    for target, state in states.items():
        rows += [row(target, label, r) for label, r in state.items()]
        rows.append(median_row(target, [state[f"searched seed {s}"] for s in SEEDS]))
    print_table(rows, ["target", "plan", "ppl", "pydoc_acc", "pydoc_acc_se", "pydoc_acc_norm",
                       "licenses_acc", "licenses_acc_se", "licenses_acc_norm"])
    protocol = {"device": loaded.device.type, "dtype": args.dtype, "model": args.model,
                "data": "embedded (pydoc_data.topics); other domain: /usr/share/common-licenses",
                "calibration": "sequential SparseGPT, 16 x 256 of the calibration part, seed 0",
                "evaluation": f"perplexity: {EVAL_WINDOWS} x 512 of the evaluation part; tasks: "
                              f"{CONTINUATION_TASK} over each domain's evaluation part, every example",
                "seeds": list(SEEDS)}
    path = write_json(f"tasks_sparsegpt_{loaded.device.type}.json",
                      {"plans_from": SOURCE.name, "rows": rows, "hub_tasks": list(hub),
                       "left_out": left_out or None, "dense": dense,
                       "runs": {str(t): s for t, s in states.items()}}, protocol=protocol)
    print(f"\nwrote {path}")


def _task(r: dict[str, Any], domain: str) -> TaskScore:
    return TaskScore.from_dict(r[f"{domain}:{CONTINUATION_TASK}"])


def row(target: float | None, label: str, r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"target": target, "plan": label, "ppl": r["ppl"]}
    for domain in ("pydoc", "licenses"):
        s = _task(r, domain)
        out |= {f"{domain}_acc": s.acc, f"{domain}_acc_se": s.acc_stderr,
                f"{domain}_acc_norm": s.acc_norm, f"{domain}_examples": s.examples}
    hub = {k.split(":", 1)[1]: v["acc"] for k, v in r.items() if k.startswith("hub:")}
    return out | ({"hub_acc": hub} if hub else {})


def median_row(target: float, found: list[dict[str, Any]]) -> dict[str, Any]:
    """The searched plans over seeds: median, min and max of each figure."""
    rows = [row(target, "", r) for r in found]
    out: dict[str, Any] = {"target": target, "plan": "searched (median)"}
    for key in ("ppl", "pydoc_acc", "pydoc_acc_norm", "licenses_acc", "licenses_acc_norm"):
        values = [r[key] for r in rows]
        out |= {key: statistics.median(values), f"{key}_min": min(values), f"{key}_max": max(values)}
    return out


def render() -> str:
    """docs/results.md's block: the table of tasks_sparsegpt_cpu.json."""
    data = json.loads((RESULTS / "tasks_sparsegpt_cpu.json").read_text())
    m = data["manifest"]

    def acc(r: dict[str, Any], key: str) -> str:
        if f"{key}_min" in r:  # searched: median [min, max] over the seeds
            return f"{r[key]:.3f} [{r[key + '_min']:.3f}, {r[key + '_max']:.3f}]"
        return f"{r[key]:.3f} ± {r[key + '_se']:.3f}" if key + "_se" in r else f"{r[key]:.3f}"

    lines = [f"`{m['command']}` at commit `{(m['commit'] or '?')[:8]}` on {m['device']} "
             f"({m['date']}); plans from `{data['plans_from']}`, pruned with sequential SparseGPT. "
             f"Accuracy on `{CONTINUATION_TASK}` (chance 0.25), ± one standard error; the searched "
             f"plans' median [min, max] over seeds {m['seeds']}.", "",
             "| target | plan | eval ppl | pydoc acc | pydoc acc_norm | licenses acc | licenses acc_norm |",
             "|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        target = "dense" if r["target"] is None else f"{r['target']:.0%}"
        lines.append(f"| {target} | {r['plan']} | {r['ppl']:.2f} | {acc(r, 'pydoc_acc')} | "
                     f"{acc(r, 'pydoc_acc_norm')} | {acc(r, 'licenses_acc')} | "
                     f"{acc(r, 'licenses_acc_norm')} |")
    if data.get("left_out"):
        first = next(iter(data["left_out"].values()))
        lines += ["", f"Hub tasks ({', '.join(data['hub_tasks'])}) left out: {first}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
