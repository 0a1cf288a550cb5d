"""Structured sub-networks on SmolLM2-135M: perplexity and measured CPU speed at 20% and 35%.

    python benchmarks/nas.py                      # every target, 3 seeds, then the mixed study
    python benchmarks/report.py                   # the docs/results.md section from the JSON

At each target (share of the prunable parameters removed) it compares, at equal parameters:

- ``block_influence``: ShortGPT depth pruning (lowest-influence blocks dropped; the remainder
  below one block narrows one MLP);
- ``flap``: FLAP-like width pruning (fluctuation scores standardised per unit kind, global
  ranking, bias compensation);
- ``searched``: the studies ``studies/smollm2-nas-<pct>.yaml`` (NSGA-II over ``spaces/nas.yaml``,
  fitness vs. measured decode latency, warm started from both priors), one per seed. The plan
  reported is the lowest-fitness one among the front's plans at least as fast (search-time
  latency) as the faster prior; when none is, the lowest-fitness one at least as fast as the
  slower prior, and the row says so.

Every plan is pruned *physically* (a smaller model) and measured the same way: perplexity on
the embedded evaluation part (pydoc text, the domain searched on) and on another domain
(Debian's common-licenses: legal English, never seen in the search), and prefill/decode speed
at batch 1 on this machine's CPU, each figure a median of timed runs. ``mixed``: the study
``studies/smollm2-mixed-35.yaml`` (drop blocks/sub-blocks where it pays, unstructured Wanda
elsewhere), its front's plans verified the same way, all plotted on one latency-perplexity
plane with the structured plans.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from _common import (
    ARCHIVED_NOTE,
    OTHER_DOMAIN,
    RESULTS,
    ROOT,
    STUDIES,
    command_line,
    environment,
    other_domain_file,
    print_table,
    restart_unfinished,
    result_path,
)

from allocsearch.allocation import get_allocator
from allocsearch.data import DataConfig
from allocsearch.evaluate import Evaluator, LatencyConfig, PlanLatency, measure_latency
from allocsearch.io import atomic_write_figure, atomic_write_text
from allocsearch.models import LoadedModel, load_model
from allocsearch.pipeline import evaluate_perplexity, prune_with_plan
from allocsearch.plan import Plan
from allocsearch.search import StudyConfig, run_study
from allocsearch.search.report import pareto_front
from allocsearch.search.store import trial_plan
from allocsearch.structure import remove_structure, select_structure

OUT = RESULTS / "nas_cpu.json"
PLOT = RESULTS / "nas_pareto_cpu.png"
LATENCY = LatencyConfig(prefill=512, prompt=32, decode=32, repeats=3)


def measure(loaded: LoadedModel, ev: Evaluator, plan: Plan | None, args: argparse.Namespace,
            other: str) -> dict[str, Any]:
    """Prune a copy physically (Wanda for unstructured modules), then perplexity on both
    domains and measured speed."""
    ev.restore()  # dense weights and no masking hooks: a deep copy would carry them along
    target = loaded.clone()
    model = target.model
    start = time.perf_counter()
    if plan is not None:
        prune_with_plan(target, plan, "wanda", DataConfig(nsamples=args.nsamples), progress=False,
                        profile=ev.profile)
    prune_s = time.perf_counter() - start
    ppl = evaluate_perplexity(target, "embedded", nsamples=args.eval_windows, progress=False)
    ppl_other = evaluate_perplexity(target, other, nsamples=args.eval_windows, progress=False)
    lat = measure_latency(model, LATENCY)
    out: dict[str, Any] = {"ppl": ppl.ppl, "ppl_other": ppl_other.ppl, "tokens": ppl.tokens,
           "tokens_other": ppl_other.tokens, "blocks": target.adapter.num_blocks,
           "params": lat.params, "prefill_tok_s": lat.prefill_tok_s,
           "decode_tok_s": lat.decode_tok_s, "prune_s": prune_s}
    if plan is not None:
        out |= {"budget": plan.budget(), "structured_blocks": len(plan.structured()),
                "plan": plan.to_dict()}
    del model
    return out


def _study(name: str, seed: int, args: argparse.Namespace) -> StudyConfig:
    overrides = [f"seed={seed}", f"n_trials={args.n_trials}"]
    cfg = StudyConfig.load(STUDIES / f"{name}.yaml", overrides)
    return dataclasses.replace(cfg, output=RESULTS / "nas_runs" / f"{cfg.name}_s{seed}")


PRIORS = ("block_influence", "flap")
#: Which front plan a study reports: the lowest search fitness among the plans at least as
#: fast (search-time latency) as both priors, as the depth prior, and as the width prior.
PICKS = ("searched", "searched@block_influence", "searched@flap")
#: The keys of a row that :func:`measure` wrote (copied when a pick is a prior's own trial).
MEASURED = ("ppl", "ppl_other", "tokens", "tokens_other", "blocks", "params", "prefill_tok_s",
            "decode_tok_s", "prune_s", "budget", "structured_blocks", "plan")


def _limit(label: str, priors: dict[str, dict[str, Any]]) -> float:
    if label == "searched":
        return float(min(r["search_latency_ms"] for r in priors.values()))
    return float(priors[label.split("@")[1]]["search_latency_ms"])


def _pick(front: list[Any], limit: float) -> tuple[Any, str]:
    """The lowest-fitness front trial at search latency <= ``limit`` (else the fastest)."""
    ok = [t for t in front if t.values[1] <= limit * 1.0001]
    if ok:
        return min(ok, key=lambda t: t.values[0]), f"lowest fitness at <= {limit:.2f} ms/token"
    return min(front, key=lambda t: t.values[1]), "fastest on the front (slower than the limit)"


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    payload: dict[str, Any] = json.loads(OUT.read_text()) if args.resume and OUT.exists() else {}
    payload |= {"command": command_line(), "environment": environment(),
                "model": args.model, "seeds": args.seeds, "n_trials": args.n_trials,
                "threads": args.threads, "mixed_seeds": args.mixed_seeds,
                "eval_windows": args.eval_windows, "latency": LATENCY.to_dict(),
                "other_domain": str(OTHER_DOMAIN)}
    rows: list[dict[str, Any]] = payload.setdefault("rows", [])
    if args.redo_picks:  # choose and measure the per-prior picks again from the stored studies
        rows[:] = [r for r in rows if r["method"] not in PICKS[1:]]
    done = {(r["target"], r["method"], r.get("seed")) for r in rows}
    other = other_domain_file(RESULTS / "nas_runs")
    loaded = load_model(args.model, device="cpu", dtype="float32")
    base = _study("smollm2-nas-20", 0, args)
    ev = Evaluator.build(loaded, base.evaluator, progress=False)

    def save() -> None:
        atomic_write_text(OUT, json.dumps(payload, indent=1) + "\n")

    if (0.0, "dense", None) not in done:
        dense = measure(loaded, ev, None, args, other)
        rows.append({"target": 0.0, "method": "dense", "seed": None, **dense})
        save()
    for target in args.targets:
        pct = round(target * 100)
        priors: dict[str, dict[str, Any]] = {}
        for method in PRIORS:
            row = next((r for r in rows if r["target"] == target and r["method"] == method), None)
            if row is None:
                plan = get_allocator(method).allocate(ev.profile, target)
                settings = _study(f"smollm2-nas-{pct}", 0, args).latency
                row = {"target": target, "method": method, "seed": None, "fitness": ev.fitness(plan),
                       "search_latency_ms": settings.value(PlanLatency(ev, settings.config).measure(plan)),
                       **measure(loaded, ev, plan, args, other)}
                rows.append(row)
                save()
            priors[method] = row
        for seed in args.seeds:
            wanted = [label for label in PICKS if (target, label, seed) not in done]
            if not wanted:
                continue
            cfg = _study(f"smollm2-nas-{pct}", seed, args)
            t0 = time.perf_counter()
            restart_unfinished(cfg)
            run_ = run_study(cfg, evaluator=ev, progress=args.progress, verify=False)  # resumes
            search_s = time.perf_counter() - t0
            front = pareto_front(run_.study)
            measured: dict[int, dict[str, Any]] = {}
            for label in wanted:
                best, why = _pick(front, _limit(label, priors))
                prior = best.prior or ""
                plan = trial_plan(run_.study, best)
                if best.number not in measured:
                    # A warm start that *is* the prior's plan (the space may only approximate
                    # it) has the prior's measurement.
                    same = prior in priors and plan.structured() == Plan.from_dict(
                        priors[prior]["plan"]).structured()
                    measured[best.number] = (
                        {k: v for k, v in priors[prior].items() if k in MEASURED} if same
                        else measure(loaded, ev, plan, args, other))
                rows.append({"target": target, "method": label, "seed": seed, "fitness": best.values[0],
                             "search_latency_ms": best.values[1], "picked": why, "trial": best.number,
                             "prior_trial": prior, "search_s": search_s,
                             "front": [list(t.values) for t in front], **measured[best.number]})
                save()
    for seed in args.mixed_seeds:
        if (0.35, "mixed", seed) in done:
            continue
        cfg = _study("smollm2-mixed-35", seed, args)
        restart_unfinished(cfg)
        run_ = run_study(cfg, evaluator=ev, progress=args.progress, verify=False)
        front = pareto_front(run_.study)
        step = max(1, len(front) // args.mixed_points)
        picked = front[::step][: args.mixed_points]
        points = []
        for t in picked:
            plan = trial_plan(run_.study, t)
            points.append({"trial": t.number, "fitness": t.values[0], "search_latency_ms": t.values[1],
                           **measure(loaded, ev, plan, args, other)})
        rows.append({"target": 0.35, "method": "mixed", "seed": seed,
                     "front": [list(t.values) for t in front], "points": points})
        save()
    ev.close()
    return payload


def _shape_model(loaded: LoadedModel, ev: Evaluator, plan: Plan | None) -> torch.nn.Module:
    """A copy of the model with the plan's structure removed physically (the unstructured
    part does not change the shape, so it is left out: speed is all this is for)."""
    ev.restore()
    target = loaded.clone()
    if plan is not None and plan.structured():
        remove_structure(target, select_structure(plan.structured(), ev.profile, target.adapter))
    return target.model


def latency_pass(args: argparse.Namespace) -> dict[str, Any]:
    """Re-time every measured plan back to back in one quiet run (the dense model first and
    last, to show drift), so that all speed-ups share the same machine state."""
    payload: dict[str, Any] = json.loads(OUT.read_text())
    loaded = load_model(args.model, device="cpu", dtype="float32")
    ev = Evaluator.build(loaded, _study("smollm2-nas-20", 0, args).evaluator, progress=False)
    entries: list[dict[str, Any]] = []
    for r in payload["rows"]:
        entries.extend(r["points"] if r["method"] == "mixed" else [r])
    dense_times = []
    for entry in [None, *entries, None]:
        plan = Plan.from_dict(entry["plan"]) if entry is not None and "plan" in entry else None
        lat = measure_latency(_shape_model(loaded, ev, plan), LATENCY)
        if entry is None or "plan" not in entry:
            dense_times.append(lat.to_dict())
        if entry is not None:
            entry["quiet"] = {"prefill_tok_s": lat.prefill_tok_s, "decode_tok_s": lat.decode_tok_s}
        print(f"{entry['method'] if entry and 'method' in entry else 'mixed/dense'}: "
              f"decode {lat.decode_tok_s:.2f} tok/s, prefill {lat.prefill_tok_s:.1f} tok/s")
    payload["latency_pass"] = {"command": command_line(), "dense": dense_times,
                               "environment": environment()}
    atomic_write_text(OUT, json.dumps(payload, indent=1) + "\n")
    ev.close()
    return payload


def _speed(r: dict[str, Any], key: str) -> float:
    """A row's speed from the quiet latency pass when there is one, else its own timing."""
    return float(r.get("quiet", r)[key])


def summary(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (target, method): medians over seeds, speed-ups against the dense model."""
    rows = payload["rows"]
    dense = next(r for r in rows if r["method"] == "dense")
    out = [{"target": 0.0, "method": "dense", "n": 1, "ppl": dense["ppl"], "ppl_other": dense["ppl_other"],
            "params_M": dense["params"] / 1e6, "prefill_x": 1.0, "decode_x": 1.0,
            "decode_tok_s": _speed(dense, "decode_tok_s")}]
    methods = (*PRIORS, *PICKS)
    for target in sorted({r["target"] for r in rows if r["method"] in methods}):
        for method in methods:
            group = [r for r in rows if r["target"] == target and r["method"] == method]
            if not group:
                continue

            def med(key: str, g: list[dict[str, Any]] = group) -> float:
                return float(statistics.median(r[key] for r in g))

            def med_speed(key: str, g: list[dict[str, Any]] = group) -> float:
                return float(statistics.median(_speed(r, key) for r in g))

            row = {"target": target, "method": method, "n": len(group), "ppl": med("ppl"),
                   "ppl_other": med("ppl_other"), "params_M": med("params") / 1e6,
                   "prefill_x": med_speed("prefill_tok_s") / _speed(dense, "prefill_tok_s"),
                   "decode_x": med_speed("decode_tok_s") / _speed(dense, "decode_tok_s"),
                   "decode_tok_s": med_speed("decode_tok_s"), "budget": med("budget")}
            if method in PICKS:
                row["ppl_range"] = [min(r["ppl"] for r in group), max(r["ppl"] for r in group)]
                row["picked"] = sorted({r["picked"] for r in group})
            out.append(row)
    return out


def plot(payload: dict[str, Any]) -> Path:
    """Left: every measured plan, evaluation perplexity against decode latency. Right: the
    search's own view, each study's Pareto front (search fitness against search-time latency)
    with the priors, per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = payload["rows"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5))
    styles = {"dense": ("k", "*"), "block_influence": ("tab:blue", "s"), "flap": ("tab:orange", "D"),
              "searched@block_influence": ("tab:green", "o"), "searched@flap": ("tab:olive", "o")}
    for method, (color, marker) in styles.items():
        pts = [r for r in rows if r["method"] == method]
        if pts:
            ax.scatter([1e3 / _speed(r, "decode_tok_s") for r in pts], [r["ppl"] for r in pts],
                       c=color, marker=marker, s=40, label=method)
    mixed = [p for r in rows if r["method"] == "mixed" for p in r["points"]]
    if mixed:
        ax.scatter([1e3 / _speed(p, "decode_tok_s") for p in mixed], [p["ppl"] for p in mixed],
                   c="tab:red", marker="^", s=40, label="mixed (35%, structured + Wanda)")
    ax.set_xlabel("decode latency, ms/token (CPU, batch 1, measured)")
    ax.set_ylabel("evaluation perplexity (embedded)")
    ax.set_yscale("log")
    ax.set_title("measured: 20% and 35% of prunable parameters removed")
    ax.legend(fontsize=8)
    for r in rows:
        if r["method"] in ("searched", "mixed") and r.get("front"):
            front = sorted(r["front"], key=lambda v: v[1])
            color = ("tab:red" if r["method"] == "mixed"
                     else "tab:green" if r["target"] < 0.3 else "tab:purple")
            bx.plot([v[1] for v in front], [v[0] for v in front], "-o", c=color, ms=3, alpha=0.7,
                    label=f"{r['method']} {r['target']:.0%} front" if r.get("seed") == 0 else None)
        elif r["method"] in PRIORS:
            bx.scatter([r["search_latency_ms"]], [r["fitness"]], c=styles[r["method"]][0],
                       marker=styles[r["method"]][1], s=50, zorder=3,
                       label=f"{r['method']} {r['target']:.0%}")
    bx.set_xlabel("search-time decode latency, ms/token")
    bx.set_ylabel("search fitness (perplexity, 2048 search tokens)")
    bx.set_yscale("log")
    bx.set_title("search: each seed's Pareto front and the priors")
    bx.legend(fontsize=7)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_figure(PLOT, fig, dpi=110)
    plt.close(fig)
    return PLOT


def render() -> str:
    path, archived = result_path(OUT.name)
    payload = json.loads(path.read_text())
    note = [f"*{ARCHIVED_NOTE}.*", ""] if archived else []
    lines = [*note, f"From `{path.relative_to(ROOT)}` (`{payload['command']}`; "
             f"{payload['environment']['device']}, {payload['threads']} CPU thread(s), "
             f"torch {payload['environment']['torch']}, "
             f"seeds {payload['seeds']}, {payload['n_trials']} trials per study). Perplexity on "
             f"{payload['eval_windows']} windows of 512 tokens; speed at batch 1, median of "
             f"{payload['latency']['repeats']} runs"
             + (", every plan re-timed back to back in one quiet pass (`--latency-pass`; the dense "
                "model first and last: " + ", ".join(f"{d['decode_tok_s']:.2f}"
                                                    for d in payload["latency_pass"]["dense"])
                + " decode tokens/s)" if "latency_pass" in payload else "") + ".", "",
             "| removed | method | seeds | params (M) | ppl (pydoc) | ppl (licenses) "
             "| prefill speed-up | decode speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary(payload):
        rng = f" [{r['ppl_range'][0]:.2f}, {r['ppl_range'][1]:.2f}]" if "ppl_range" in r else ""
        lines.append(f"| {r['target']:.0%} | {r['method']} | {r['n']} | {r['params_M']:.1f} | "
                     f"{r['ppl']:.2f}{rng} | {r['ppl_other']:.2f} | {r['prefill_x']:.2f}x | "
                     f"{r['decode_x']:.2f}x |")
    lines += ["", "`searched@<prior>`: per seed, the lowest search fitness on the study's Pareto front "
              "among the plans at least as fast as that prior (search-time latency); `searched`: as fast "
              "as both. A pick that is a prior's own warm-start trial is that prior's plan (same row "
              "values)."]
    mixed = [p for r in payload["rows"] if r["method"] == "mixed" for p in r["points"]]
    if mixed:
        lines += ["", f"Mixed plans at 35% (front points verified with Wanda, {len(mixed)} in all): "
                  + "; ".join(f"ppl {p['ppl']:.2f} at {_speed(p, 'decode_tok_s'):.1f} tok/s decode, "
                              f"{p['structured_blocks']} structured blocks" for p in mixed) + "."]
    lines += ["", f"![latency vs perplexity](../{PLOT.relative_to(ROOT)})"]  # from docs/
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--targets", type=float, nargs="+", default=[0.2, 0.35])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--mixed-seeds", type=int, nargs="*", default=[0])
    p.add_argument("--mixed-points", type=int, default=3, help="front plans verified per mixed study")
    p.add_argument("--n-trials", type=int, default=32)
    p.add_argument("--nsamples", type=int, default=64, help="Wanda calibration windows (mixed plans)")
    p.add_argument("--eval-windows", type=int, default=16)
    p.add_argument("--resume", action="store_true", help="keep the rows already in the JSON")
    p.add_argument("--redo-picks", action="store_true",
                   help="with --resume: drop the searched@<prior> rows and pick and measure them again")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads for everything, timings included (pin the process "
                        "to as many cores, e.g. taskset -c 0, for steady timings)")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--latency-pass", action="store_true",
                   help="re-time every plan in the JSON back to back (run with the machine quiet)")
    args = p.parse_args()
    if args.latency_pass:
        torch.set_num_threads(args.threads)
        payload = latency_pass(args)
        plot(payload)
        print_table(summary(payload), ["target", "method", "n", "ppl", "ppl_other", "params_M",
                                       "prefill_x", "decode_x"])
        return
    torch.set_num_threads(args.threads)
    payload = run(args)
    plot(payload)
    print_table(summary(payload), ["target", "method", "n", "ppl", "ppl_other", "params_M",
                                   "prefill_x", "decode_x"])
    print(f"wrote {OUT} and {PLOT}")


if __name__ == "__main__":
    main()
