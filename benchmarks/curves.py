"""Allocation from measured block loss curves against the best prior and the per-module search.

Measures every block's loss curve (block b alone pruned at each level, the rest dense) with
the Wanda per-module study's Evaluator on the search split
(:func:`allocsearch.evaluate.sensitivity.measure_block_curves`), allocates the target by the
curves (:func:`allocsearch.allocation.curves.curve_plan`) mixed with the best prior's block
sparsities at each ``--mixes`` share, picks the mix of lowest search fitness (the search
split only), and verifies it (and the curves alone) exactly as the ``wanda_modules`` suite
verifies its plans: sequential Wanda on the study's 3 calibration draws, the evaluation split
and Debian's licences. The suite's best prior (by its committed rows) is verified again in
this run, so the ratios compare measurements of one machine and build: the same plan verified
on another machine has moved by as much as the noise floor at 70% (``_code_state.numerics``). The
searched plans are the suite's committed rows, compared with this run's prior and marked with
whether they were measured under the same numerics.

    python benchmarks/curves.py                  # 70%, ~40 min on one CPU core
    python benchmarks/curves.py --suite sparsegpt_modules --target 0.6   # writes curves_sparsegpt_cpu_60.json
    python benchmarks/curves.py --suite sparsegpt_modules --around uniform
        # curves around the uniform plan at the target: block b moved to each level, every
        # other block at the target (allocsearch.evaluate.sensitivity.Around); writes
        # curves_sparsegpt_cpu_around.json

The curves are kept in the allocsearch cache (a rerun, and any study of the same Evaluator
with a ``curves`` warm start, reuses them; their measurement time is kept with them). Prints
a table and writes benchmarks/results/curves_<pruner>_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _code_state import numerics
from _common import (
    RESULTS,
    RUNS,
    add_model_args,
    environment,
    other_domain_file,
    print_table,
    study_file,
    write_json,
)
from _sparsegpt import measure

from allocsearch.evaluate import Evaluator
from allocsearch.evaluate.sensitivity import Around, cached_block_curves, curve_mixes
from allocsearch.models import load_model
from allocsearch.plan import Plan
from allocsearch.search import StudyConfig

MIXES = (0.0, 0.25, 0.5, 0.75, 1.0)
#: suite -> (the pruner its verification runs, the tagged variant holding its longest search)
SUITES = {"wanda_modules": ("wanda", "ref_long"), "sparsegpt_modules": ("sparsegpt", "")}


def committed(suite: str, device: str, tag: str = "") -> dict[str, Any]:
    name = f"quality_{suite}_{device}{'_' + tag if tag else ''}.json"
    return dict(json.loads((RESULTS / name).read_text()))


def best_prior(runs: dict[str, Any]) -> tuple[dict[str, Any], Plan]:
    """The suite's measured prior of lowest verified perplexity, and its plan."""
    measured = [v for k, v in runs.items() if k.startswith("measured:")]
    best = min(measured, key=lambda v: v["ppl"])
    family = next(k.split(":", 1)[1] for k, v in runs.items() if v is best)
    return best, Plan.from_dict(runs["priors"]["best"][family]["plan"])


def paired(row: dict[str, Any], prior: dict[str, Any]) -> dict[str, Any]:
    """Ratios to the prior: of the means, per draw, and on how many draws the row is lower."""
    per = [d["ppl"] / p["ppl"] for d, p in zip(row["draws"], prior["draws"], strict=True)]
    return {"ratio": row["ppl"] / prior["ppl"], "ratio_other": row["ppl_other"] / prior["ppl_other"],
            "ratio_draws": per, "lower_on": sum(r < 1 for r in per)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--suite", choices=sorted(SUITES), default="wanda_modules",
                   help="the per-module suite whose study, priors and searched plans to compare with")
    p.add_argument("--target", type=float, default=0.7)
    p.add_argument("--mixes", type=float, nargs="+", default=list(MIXES))
    p.add_argument("--tokens", type=int, default=2048, help="search tokens per curve point")
    p.add_argument("--around", default=None,
                   help="measure the curves around this allocator's plan at the target (e.g. uniform), "
                        "not from the dense model")
    args = p.parse_args()
    pct = str(round(args.target * 100))
    pruner, search_tag = SUITES[args.suite]
    cfg = StudyConfig.load(study_file(args.suite, args.target), [])
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    device = loaded.device.type
    runs = committed(args.suite, device)["runs"][pct]
    prior, prior_plan = best_prior(runs)
    ev = Evaluator.build(loaded, cfg.evaluator, progress=False)
    ev.use_reference(args.target)  # a sequential-aware database, as the suite's studies use it
    around = Around.reference(args.around, ev, args.target) if args.around else None
    curves = cached_block_curves(ev, tokens=args.tokens, around=around)  # measured once per Evaluator
    curve_s = curves.seconds
    # Each mix as the Evaluator writes it (a level database: snapped to its grid), scored.
    rows: list[dict[str, Any]] = [
        {"mix": m.mix, "search_fitness": m.fitness, "budget": m.plan.budget(), "plan": m.plan}
        for m in curve_mixes(ev, curves, args.target, prior_plan, args.mixes)]
    chosen = min(rows, key=lambda r: r["search_fitness"])
    other, windows = other_domain_file(RUNS), 40
    # The prior verified here, beside the plans it is compared with: one machine and build.
    suite_prior = prior
    prior = {"label": suite_prior["label"], **measure(ev, cfg, prior_plan, other, windows)}
    for r in rows:
        if r is chosen or r["mix"] == 1.0:
            r |= measure(ev, cfg, r["plan"], other, windows)
            r |= paired(r, prior)
    searched = committed(args.suite, device, search_tag)["runs"][pct]
    seeds = sorted(k for k in searched if k.startswith("searched:"))
    search_rows = [{"seed": k.split(":s")[1], "ppl": searched[k]["ppl"],
                    "search_tokens": searched[k]["search_tokens"],
                    "same_numerics": searched[k].get("numerics") == numerics()} | paired(searched[k], prior)
                   for k in seeds]
    curve_tokens = curves.tokens_read
    print_table([{k: v for k, v in r.items() if k not in ("plan", "draws")} for r in rows],
                ["mix", "search_fitness", "ppl", "ratio", "lower_on", "ppl_other", "ratio_other"])
    print(f"best prior {prior['label']}: {prior['ppl']:.2f}; chosen mix {chosen['mix']}; "
          f"curves {curve_tokens} tokens, {curve_s:.0f} s")
    payload = {
        "suite": args.suite, "pruner": pruner, "target": args.target,
        "study": str(study_file(args.suite, args.target).name),
        "device": device, "best_prior": {k: prior[k] for k in ("label", "ppl", "ppl_other", "draws")},
        "suite_prior": {k: suite_prior.get(k) for k in ("label", "ppl", "ppl_other", "draws", "numerics")},
        "chosen_mix": chosen["mix"], "curves": curves.to_dict(), "curve_seconds": curve_s,
        "curve_tokens": curve_tokens, "mix_tokens": len(rows) * cfg.evaluator.fidelities[-1],
        "rows": [{k: (v.to_dict() if k == "plan" else v) for k, v in r.items()} for r in rows],
        "searched": {"tag": search_tag or "plain", "rows": search_rows,
                     "search_tokens_median": statistics.median(r["search_tokens"] for r in search_rows),
                     "ratio_median": statistics.median(r["ratio"] for r in search_rows)},
        "environment": environment(),
    }
    verification = f"verification {cfg.verify.nsamples} x {cfg.verify.seqlen} ({payload['study']})"
    path = write_json(result_name(pruner, device, args.target, around is not None), payload,
                      protocol={"device": device, "dtype": args.dtype, "model": args.model,
                                "data": "embedded",
                                "calibration": f"curves {args.tokens} tokens a point; {verification}",
                                "evaluation": f"{windows} x 512 evaluation windows",
                                "seeds": list(cfg.verify.calibration_seeds)})
    print(f"wrote {path}")


def result_name(pruner: str, device: str, target: float, around: bool = False) -> str:
    """The results file of one pruner and target: 70% unsuffixed, other targets with their
    percentage (as ``noise_cpu_60.json`` beside ``noise_cpu.json``); curves around a plan
    with ``_around``."""
    pct = round(target * 100)
    return f"curves_{pruner}_{device}{'' if pct == 70 else f'_{pct}'}{'_around' if around else ''}.json"


def _around_words(c: dict[str, Any]) -> str:
    """`` around the uniform plan (...)`` for curves measured around a plan, else nothing."""
    around = c["curves"].get("around", "")
    return f" around the {around} plan (one block moved, the rest at the target)" if around else ""


def _pruner_name(pruner: str) -> str:
    return "SparseGPT" if pruner == "sparsegpt" else "Wanda"


def _side(ratio: float, floor: float) -> str:
    """Whether ``ratio`` clears the noise floor of its target and pruner."""
    return "beyond" if ratio < 1 - floor else "within"


def _draws(r: dict[str, Any]) -> str:
    return f"{r['ppl']:.2f} [{', '.join(f'{d:.2f}' for d in (x['ppl'] for x in r['draws']))}]"


def render() -> str:
    """docs/results.md's block: the curves' cost, each mix, the verified ones against the best
    prior and the per-module search, and whether the gain clears the noise floor."""
    from report import noise_floors

    paths = _paths()
    if not paths:
        return "Not measured yet: run `python benchmarks/curves.py`."
    return "\n\n".join(_render_one(json.loads(p.read_text()), noise_floors()) for p in paths)


def render_readme() -> str:
    """The README's sentence: each pruner's chosen curves allocation against the best prior and
    the per-module search, with the tokens each spent."""
    from report import noise_floors

    floors = noise_floors()
    parts = []
    results = [json.loads(p.read_text()) for p in _paths()]
    for c in results:
        best = next(r for r in c["rows"] if r["mix"] == c["chosen_mix"])
        floor = floors.get((round(c["target"], 4), c["pruner"]))
        verdict = "no noise floor measured" if floor is None else \
            f"{_side(best['ratio'], floor)} its noise floor of {floor:.1%}"
        tokens = c["curve_tokens"] + c["mix_tokens"]
        parts.append(f"with {_pruner_name(c['pruner'])} at {c['target']:.0%}{_around_words(c)}, "
                     f"**{best['ratio']:.3f}x** the best prior ({c['best_prior']['label']}) on pydoc, "
                     f"lower on {best['lower_on']} of {len(best['draws'])} draws, {best['ratio_other']:.3f}x "
                     f"on the licences ({verdict}), from {tokens:,} search tokens; the per-module search "
                     f"(`{c['searched']['tag']}`) reaches {c['searched']['ratio_median']:.3f}x with a median "
                     f"{c['searched']['search_tokens_median']:,.0f} per seed")
    if not parts:
        return "Not measured yet: run `python benchmarks/curves.py`."
    return ("No search, one fitness per block and level: a plan allocated from each block's "
            "measured loss curve by an exact programme over the budget (`allocsearch.allocation.curves`, "
            "mixed with the best prior; a `curves` warm start of a study, [studies](docs/studies.md)) "
            "verifies at: " + "; ".join(parts)
            + ". " + _prior_note(all("suite_prior" in c for c in results))
            + " Details: [results](docs/results.md#allocation-from-block-loss-curves).")


def _prior_note(same_run: bool) -> str:
    """Where the best prior's row was verified: in the same run (comparable), or only in the
    suite's run (results written before the prior was verified again here)."""
    if same_run:
        return "The best prior is verified again in the same run as the curves plans."
    return ("The prior's row is the suite's, verified in another process: at 70% such a re-measure "
            "has moved a prior's draws by as much as the noise floor, so these ratios are "
            "provisional until measured in one run.")


def _paths() -> list[Path]:
    return sorted(RESULTS.glob("curves_*_cpu*.json"), key=lambda p: ("wanda" not in p.name, p.name))


def _render_one(c: dict[str, Any], floors: dict[tuple[float, str], float]) -> str:
    pruner = c["pruner"]
    m = c["manifest"]
    floor = floors.get((round(c["target"], 4), pruner))
    lines = [f"**Allocation from measured block loss curves at {c['target']:.0%}, pruned with "
             f"sequential {_pruner_name(pruner)}** "
             f"(`{m['command']}`; {c['device']}, {c['environment']['threads']} thread(s), "
             f"commit {m['commit'][:7]}; `studies/{c['study']}`'s evaluator and verification). "
             f"The curves{_around_words(c)}: {c['curves']['tokens']} search tokens at each of "
             f"{len(c['curves']['levels'])} levels for each of {len(c['curves']['delta'])} blocks, "
             f"{c['curve_tokens']:,} tokens and {c['curve_seconds'] / 60:.0f} min in all; each mix "
             f"then costs one full-fidelity fitness ({c['mix_tokens']:,} tokens for all). The mix "
             f"with the best prior's block sparsities is chosen by search fitness (mix "
             f"{c['chosen_mix']:g}). Verified plans: mean [draws] over the calibration draws "
             f"{m['seeds']}; {_prior_source(c)}", "",
             "| mix | search fitness | ppl (pydoc) [draws] | x best prior | lower on | ppl (licenses) "
             "| x best prior |", "|---|---|---|---|---|---|---|"]
    for r in c["rows"]:
        chosen = " (chosen)" if r["mix"] == c["chosen_mix"] else ""
        if "ppl" in r:
            lines.append(f"| {r['mix']:g}{chosen} | {r['search_fitness']:.2f} | {_draws(r)} | "
                         f"**{r['ratio']:.3f}** | {r['lower_on']}/{len(r['draws'])} | "
                         f"{r['ppl_other']:.2f} | {r['ratio_other']:.3f} |")
        else:
            lines.append(f"| {r['mix']:g} | {r['search_fitness']:.2f} | - | - | - | - | - |")
    best = next(r for r in c["rows"] if r["mix"] == c["chosen_mix"])
    gain = "no measured noise floor" if floor is None else (
        f"{_side(best['ratio'], floor)} the noise floor ({floor:.1%} at this target and pruner, "
        "`benchmarks/noise.py`)")
    s = c["searched"]
    lines += ["", f"Against the best prior the chosen mix is {best['ratio']:.3f}x on pydoc, {gain}. The "
              f"per-module search (`{s['tag']}` variant, seeds "
              f"{', '.join(str(r['seed']) for r in s['rows'])}) reaches a median "
              f"{s['ratio_median']:.3f}x under the same verification, with a median "
              f"{s['search_tokens_median']:,.0f} search tokens per seed"
              f"{_search_numerics(s['rows'])}. One allocation, no seeds: the curves and the fitness "
              "repeat exactly in a rerun. " + _prior_note("suite_prior" in c)]
    return "\n".join(lines)


def _prior_source(c: dict[str, Any]) -> str:
    """The best prior's verified row, and the suite's row of the same plan where it differs."""
    prior = c["best_prior"]
    mine = f"{_draws(prior)} pydoc, {prior['ppl_other']:.2f} licences"
    if "suite_prior" not in c:
        return f"the best prior ({prior['label']}) is the `{c['suite']}` suite's row: {mine}."
    theirs = c["suite_prior"]
    return (f"the best prior of the `{c['suite']}` suite ({prior['label']}) verified again in this "
            f"run: {mine} (the suite's committed row: {_draws(theirs)} pydoc, "
            f"{theirs['ppl_other']:.2f} licences).")


def _search_numerics(rows: list[dict[str, Any]]) -> str:
    """Whether the searched rows were verified under this run's numerics (machine and builds)."""
    if not rows or "same_numerics" not in rows[0]:
        return ""
    same = sum(bool(r["same_numerics"]) for r in rows)
    if same == len(rows):
        return " (verified in their own runs under the same numerics as this one)"
    return (f" ({len(rows) - same} of {len(rows)} seeds verified in runs that recorded other or no "
            "numerics: across machines a plan's verification has moved by as much as the noise floor)")


if __name__ == "__main__":
    main()
