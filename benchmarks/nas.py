"""Structured sub-networks on SmolLM2-135M: perplexity and measured CPU speed at 20% and 35%.

    python benchmarks/nas.py                      # every target, 3 seeds, then the mixed study
    python benchmarks/nas.py --render-readme      # the README section from the JSON

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
import copy
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _common import RESULTS, environment, print_table

from allocsearch.allocation import get_allocator
from allocsearch.data import DataConfig
from allocsearch.evaluate import Evaluator, LatencyConfig, measure_latency
from allocsearch.io import atomic_write_text
from allocsearch.models import LoadedModel, ModelAdapter, load_model
from allocsearch.pipeline import evaluate_perplexity, prune_with_plan
from allocsearch.plan import Plan
from allocsearch.search import StudyConfig, run_study
from allocsearch.search.report import pareto_front
from allocsearch.search.trials import trial_plan

STUDIES = Path(__file__).resolve().parents[1] / "studies"
OUT = RESULTS / "nas_cpu.json"
PLOT = RESULTS / "nas_pareto_cpu.png"
OTHER_DOMAIN = Path("/usr/share/common-licenses")
README = Path(__file__).resolve().parents[1] / "README.md"
LATENCY = LatencyConfig(prefill=512, prompt=32, decode=32, repeats=3)


def _other_domain_file() -> str:
    """One text file of every licence Debian ships (its evaluation part is what is scored)."""
    path = RESULTS / "nas_runs" / "licenses.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    texts = [p.read_text(errors="ignore") for p in sorted(OTHER_DOMAIN.iterdir()) if p.is_file()]
    atomic_write_text(path, "\n\n".join(texts))
    return f"file:{path}"


def measure(loaded: LoadedModel, ev: Evaluator, plan: Plan | None, args: argparse.Namespace,
            other: str) -> dict[str, Any]:
    """Prune a copy physically (Wanda for unstructured modules), then perplexity on both
    domains and measured speed."""
    ev.restore()  # dense weights and no masking hooks: a deep copy would carry them along
    model = copy.deepcopy(loaded.model)
    target = dataclasses.replace(loaded, model=model, adapter=ModelAdapter(model))
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


def _pick(front: list[Any], limit: float, fallback: float) -> tuple[Any, str]:
    """The lowest-fitness front trial at latency <= limit (else <= fallback, else fastest)."""
    for bound, why in ((limit, "as fast as the faster prior"), (fallback, "as fast as the slower prior")):
        ok = [t for t in front if t.values[1] <= bound * 1.0001]
        if ok:
            return min(ok, key=lambda t: t.values[0]), why
    return min(front, key=lambda t: t.values[1]), "fastest on the front (slower than both priors)"


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    payload: dict[str, Any] = json.loads(OUT.read_text()) if args.resume and OUT.exists() else {}
    payload |= {"command": " ".join(["python", *sys.argv]), "environment": environment(),
                "model": args.model, "seeds": args.seeds, "n_trials": args.n_trials,
                "threads": args.threads, "mixed_seeds": args.mixed_seeds,
                "eval_windows": args.eval_windows, "latency": LATENCY.to_dict(),
                "other_domain": str(OTHER_DOMAIN)}
    rows: list[dict[str, Any]] = payload.setdefault("rows", [])
    done = {(r["target"], r["method"], r.get("seed")) for r in rows}
    other = _other_domain_file()
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
        priors: dict[str, float] = {}
        for method in ("block_influence", "flap"):
            plan = get_allocator(method).allocate(ev.profile, target)
            fitness = ev.fitness(plan)
            settings = _study(f"smollm2-nas-{pct}", 0, args).latency
            priors[method] = settings.value(ev.latency(plan, settings.config))
            if (target, method, None) not in done:
                rows.append({"target": target, "method": method, "seed": None, "fitness": fitness,
                             "search_latency_ms": priors[method], **measure(loaded, ev, plan, args, other)})
                save()
        for seed in args.seeds:
            if (target, "searched", seed) in done:
                continue
            cfg = _study(f"smollm2-nas-{pct}", seed, args)
            t0 = time.perf_counter()
            run_ = run_study(cfg, evaluator=ev, progress=args.progress, verify=False)
            front = pareto_front(run_.study)
            best, why = _pick(front, min(priors.values()), max(priors.values()))
            plan = trial_plan(run_.study, best)
            rows.append({"target": target, "method": "searched", "seed": seed, "fitness": best.values[0],
                         "search_latency_ms": best.values[1], "picked": why, "trial": best.number,
                         "search_s": time.perf_counter() - t0, "front": [list(t.values) for t in front],
                         **measure(loaded, ev, plan, args, other)})
            save()
    for seed in args.mixed_seeds:
        if (0.35, "mixed", seed) in done:
            continue
        cfg = _study("smollm2-mixed-35", seed, args)
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


def summary(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (target, method): medians over seeds, speed-ups against the dense model."""
    rows = payload["rows"]
    dense = next(r for r in rows if r["method"] == "dense")
    out = [{"target": 0.0, "method": "dense", "n": 1, "ppl": dense["ppl"], "ppl_other": dense["ppl_other"],
            "params_M": dense["params"] / 1e6, "prefill_x": 1.0, "decode_x": 1.0,
            "decode_tok_s": dense["decode_tok_s"]}]
    methods = ("block_influence", "flap", "searched")
    for target in sorted({r["target"] for r in rows if r["method"] in methods}):
        for method in methods:
            group = [r for r in rows if r["target"] == target and r["method"] == method]
            if not group:
                continue

            def med(key: str, g: list[dict[str, Any]] = group) -> float:
                return float(statistics.median(r[key] for r in g))

            row = {"target": target, "method": method, "n": len(group), "ppl": med("ppl"),
                   "ppl_other": med("ppl_other"), "params_M": med("params") / 1e6,
                   "prefill_x": med("prefill_tok_s") / dense["prefill_tok_s"],
                   "decode_x": med("decode_tok_s") / dense["decode_tok_s"],
                   "decode_tok_s": med("decode_tok_s"), "budget": med("budget")}
            if method == "searched":
                row["ppl_range"] = [min(r["ppl"] for r in group), max(r["ppl"] for r in group)]
                row["picked"] = sorted({r["picked"] for r in group})
            out.append(row)
    return out


def plot(payload: dict[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = payload["rows"]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    styles = {"dense": ("k", "*"), "block_influence": ("tab:blue", "s"), "flap": ("tab:orange", "D"),
              "searched": ("tab:green", "o")}
    for method, (color, marker) in styles.items():
        pts = [r for r in rows if r["method"] == method]
        if pts:
            ax.scatter([1e3 / r["decode_tok_s"] for r in pts], [r["ppl"] for r in pts], c=color,
                       marker=marker, s=40, label=method)
    mixed = [p for r in rows if r["method"] == "mixed" for p in r["points"]]
    if mixed:
        ax.scatter([1e3 / p["decode_tok_s"] for p in mixed], [p["ppl"] for p in mixed], c="tab:red",
                   marker="^", s=40, label="mixed (35%, structured + Wanda)")
    ax.set_xlabel("decode latency, ms/token (CPU, batch 1, measured)")
    ax.set_ylabel("evaluation perplexity (embedded)")
    ax.set_yscale("log")
    ax.set_title("SmolLM2-135M: structured plans at 20% and 35% removed")
    ax.legend(fontsize=8)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=120)
    plt.close(fig)
    return PLOT


def render() -> str:
    payload = json.loads(OUT.read_text())
    lines = [f"From `{OUT.relative_to(README.parent)}` (`{payload['command']}`; "
             f"{payload['environment']['device']}, {payload['threads']} CPU thread(s), "
             f"torch {payload['environment']['torch']}, "
             f"seeds {payload['seeds']}, {payload['n_trials']} trials per study). Perplexity on "
             f"{payload['eval_windows']} windows of 512 tokens; speed at batch 1, median of "
             f"{payload['latency']['repeats']} runs.", "",
             "| removed | method | seeds | params (M) | ppl (pydoc) | ppl (licenses) "
             "| prefill speed-up | decode speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary(payload):
        rng = f" [{r['ppl_range'][0]:.2f}, {r['ppl_range'][1]:.2f}]" if "ppl_range" in r else ""
        lines.append(f"| {r['target']:.0%} | {r['method']} | {r['n']} | {r['params_M']:.1f} | "
                     f"{r['ppl']:.2f}{rng} | {r['ppl_other']:.2f} | {r['prefill_x']:.2f}x | "
                     f"{r['decode_x']:.2f}x |")
    mixed = [p for r in payload["rows"] if r["method"] == "mixed" for p in r["points"]]
    if mixed:
        lines += ["", f"Mixed plans at 35% (front points verified with Wanda, {len(mixed)} in all): "
                  + "; ".join(f"ppl {p['ppl']:.2f} at {p['decode_tok_s']:.1f} tok/s decode, "
                              f"{p['structured_blocks']} structured blocks" for p in mixed) + "."]
    lines += ["", f"![latency vs perplexity]({PLOT.relative_to(README.parent)})"]
    return "\n".join(lines)


def render_readme() -> None:
    text = README.read_text()
    begin, end = "<!-- nas-results:begin -->", "<!-- nas-results:end -->"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(README, head + begin + "\n" + render() + "\n" + end + tail)


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
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads for everything, timings included (pin the process "
                        "to as many cores, e.g. taskset -c 0, for steady timings)")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--render-readme", action="store_true")
    args = p.parse_args()
    if args.render_readme:
        render_readme()
        return
    torch.set_num_threads(args.threads)
    payload = run(args)
    plot(payload)
    print_table(summary(payload), ["target", "method", "n", "ppl", "ppl_other", "params_M",
                                   "prefill_x", "decode_x"])
    print(f"wrote {OUT} and {PLOT}")


if __name__ == "__main__":
    main()
