"""The SparseGPT results blocks of docs/results.md, rendered from the JSON files that
benchmarks/quality.py (suite ``sparsegpt``), correlation.py and database.py wrote, and the
comparison of a suite's searched plans with its priors that every per-module suite shares
(benchmarks/_modules_render.py renders those)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from _common import ARCHIVED_NOTE, RESULTS, reference_fidelities, reference_key, rerun_command, result_path

#: The prior rows of a target, in table order: uniform, then each family chosen on the search split.
PRIORS = ("uniform", "owl", "alpha", "ramp")



def _starts(q: dict[str, Any]) -> str:
    """Where the seeds' studies started: each from every prior (``seed_warm_starts``), or, in
    results written before every seed ran the shipped config, the later ones from the winners."""
    if q.get("seed_warm_starts") == "all":
        return f"each from all {q['warm_starts']} priors of the grid"
    return f"the first from all {q['warm_starts']} priors of the grid, the others from the family winners"

def _fmt(v: Any, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def render() -> str:
    """The results block of docs/results.md, from the suite's JSON, the correlation and the costs."""
    paths = [result_path(n) for n in ("quality_sparsegpt_cpu.json", "correlation_cpu_float32_sparsegpt.json",
                                      "database_costs_cpu.json")]
    quality, corr, costs = (json.loads(p.read_text()) for p, _ in paths)
    old = {name: f"*({ARCHIVED_NOTE}.)* " if archived else "" for (_, archived), name in
           zip(paths, ("quality", "corr", "costs"), strict=True)}
    env = quality["environment"]
    fid = corr["args"]["fidelities"]
    rho = {r["group"]: r for r in corr["spearman"]}
    names = {"random": "random per-block", "types": "per-type", "modules": "per-module"}
    kinds = list(dict.fromkeys(names.get(r["plan"].split()[1], r["plan"].split()[1]) for r in corr["rows"]))
    lines = [
        f"{old['corr']}**Rank correlation** (`{corr['command']}`): {rho['all']['plans']} plans at "
        f"60/65/70% ({', '.join(kinds)}), snapped to the grid. "
        f"Spearman of the database fitness ({fid[-1]} search tokens) against sequential SparseGPT "
        f"perplexity ({corr['verify']['eval_windows']} x 512 evaluation tokens{_draws_note(corr)}): "
        f"**{rho['all'][f'ppl@{fid[-1]}']:.3f}** over all plans; within 70%, 65%, 60%: "
        + ", ".join(f"{rho[g][f'ppl@{fid[-1]}']:.3f}" for g in ("0.70", "0.65", "0.60"))
        + f". The cached Wanda ranks on the same plans ({fid[0]} tokens): "
        f"{rho['all'][f'wanda_ppl@{fid[0]}']:.3f} over all, "
        + ", ".join(f"{rho[g][f'wanda_ppl@{fid[0]}']:.3f}" for g in ("0.70", "0.65", "0.60")) + "."
        + _reference_sentence(corr, rho, fid[-1]) + _one_draw_sentence(rho) + _draws_70_sentence(),
        "",
        f"{old['quality']}**Search vs priors, all pruned with sequential SparseGPT** "
        f"(`{rerun_command(quality)}`; "
        f"{env['device']}, {env['threads']} thread(s), torch {env['torch']}; seeds "
        f"{quality['seeds']}; {_starts(quality)}; {quality['offspring']} EvoPress offspring per study "
        f"beyond the warm starts, on `spaces/levels.yaml`; "
        f"calibration {quality['study']['verify']['nsamples']} x {quality['study']['verify']['seqlen']} "
        f"for the database and the verification; perplexity on "
        f"{quality['evaluation']['windows']} x 512 tokens of the pydoc evaluation split and on all "
        f"39 x 512 of Debian's licences). Priors: each family's best setting on the search split (database "
        f"fitness), applied as the allocator gives it. Left out: {quality['left_out']}.",
        "",
        "| target | plan | seeds | search fitness | ppl (pydoc) | x best prior | ppl (licenses) "
        "| x best prior |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in quality["rows"]:
        rng = f" [{r['ppl_min']:.2f}, {r['ppl_max']:.2f}]" if "ppl_min" in r else ""
        rng_o = f" [{r['ppl_other_min']:.2f}, {r['ppl_other_max']:.2f}]" if "ppl_other_min" in r else ""
        lines.append(f"| {r['target']:.0%} | {r['plan']} | {r['seeds']} | {_fmt(r['search_fitness'])} | "
                     f"{r['ppl']:.2f}{rng} | {r['ratio']:.3f} | {r['ppl_other']:.2f}{rng_o} | "
                     f"{r['ratio_other']:.3f} |")
    c = {r["quantity"]: r["value"] for r in costs["rows"]}
    lines += [
        "",
        f"{old['costs']}**Costs** (`{costs['command']}`, {costs['environment']['threads']} thread(s)): one "
        f"sequential SparseGPT prune {c['one sequential SparseGPT prune (s)']:.0f} s; the database "
        f"({len(costs['levels']) - 1} levels x {costs['entries']} modules) "
        f"{c['database build (s)']:.0f} s = **{c['build / one prune']:.1f}x** one prune; "
        f"{c['database on disk (GiB)']:.2f} GiB on disk (float32), projected "
        f"{c['projected LLaMA-7B, bf16 (GiB)']:.0f} GiB for LLaMA-7B in bfloat16. Apply overhead "
        f"(fitness right after a plan switch / the same plan's bare forward and perplexity): "
        f"EvoPress level switches median {c['apply overhead, level switches (median)']:.3f}x "
        f"(max {c['apply overhead, level switches (max)']:.3f}x); every module changed median "
        f"{c['apply overhead, all modules change (median)']:.3f}x "
        f"(max {c['apply overhead, all modules change (max)']:.3f}x)."
        + (f" The sequential-aware database ({costs['reference']}): "
           f"{c['sequential-aware build / one prune']:.1f}x one prune." if "reference" in costs else ""),
    ]
    return "\n".join(lines)


def _draws_note(corr: dict[str, Any]) -> str:
    draws = corr["verify"].get("draws", [0])
    return f", mean over calibration draws {draws}" if len(draws) > 1 else ", one calibration draw"


def _draws_70_sentence() -> str:
    """The 70% plans again with the exact number averaged over calibration draws
    (``correlation.py --targets 0.7 --draws ...``), when measured."""
    path = RESULTS / "correlation_cpu_float32_sparsegpt_t70.json"
    if not path.is_file():
        return ""
    c = json.loads(path.read_text())
    g = {r["group"]: r for r in c["spearman"]}["0.70"]
    fids = c["args"]["fidelities"]
    tokens, *higher = reference_fidelities(fids)  # the first: the studies' full fidelity
    ref, one = reference_key("uniform", tokens), f"ppl@{tokens}"
    if "draw 0 vs mean" not in g:
        return ""
    # Databases at other references (``--reference uniform ramp``; older runs named one).
    named = c["args"].get("reference", [])
    others = [r for r in ([named] if isinstance(named, str) else named) if r not in ("none", "uniform")]
    at = "".join(f"; calibrated at the {name} plan (default parameters) instead "
                 f"**{g[reference_key(name, tokens)]:.3f}** "
                 f"(against draw 0 {g[reference_key(name, tokens) + ' vs draw 0']:.3f})" for name in others)
    mean = f"refs_geomean@{tokens}"
    both = (f"; the geometric mean of the {len(others) + 1} databases' fitnesses **{g[mean]:.3f}**"
            f" (against draw 0 {g[mean + ' vs draw 0']:.3f})") if mean in g else ""
    more = "".join(f" On {t} search tokens (the studies use {tokens}): {_at(g, others, t)}."
                   for t in higher)
    return (f" The {g['plans']} plans at 70% again, the exact number the mean over calibration draws "
            f"{c['verify']['draws']} (`{c['command']}`): the sequential-aware database at the uniform plan "
            f"**{g[ref]:.3f}** (against draw 0 alone {g[ref + ' vs draw 0']:.3f}){at}{both}, one-shot "
            f"{g[one]:.3f}; draw 0 against the mean {g['draw 0 vs mean']:.3f}.{more}"
            + _added_sentence(c, others))


def _at(g: dict[str, Any], others: list[str], tokens: int) -> str:
    """``uniform x, ramp y, geometric mean z``: a group's Spearman per reference database at
    ``tokens`` search tokens."""
    parts = [f"uniform {g[reference_key('uniform', tokens)]:.3f}",
             *(f"{name} {g[reference_key(name, tokens)]:.3f}" for name in others)]
    if f"refs_geomean@{tokens}" in g:
        parts.append(f"geometric mean {g[f'refs_geomean@{tokens}']:.3f}")
    return ", ".join(parts)


def _added_sentence(c: dict[str, Any], others: list[str]) -> str:
    """The 14 plans ``correlation.py`` added at 70% after the first 10 were measured, alone:
    plans no choice of database or combination was made on."""
    groups = {r["group"]: r for r in c["spearman"]}
    g, first = groups.get("0.70 added"), groups.get("0.70 first")
    if g is None:
        return ""
    scored = reference_fidelities(c["args"]["fidelities"])

    def per(group: dict[str, Any]) -> str:
        return "; ".join(f"on {t} tokens {_at(group, others, t)}" for t in scored)

    before = "" if first is None else f" The first {first['plans']} alone: {per(first)}."
    return (f" The {g['plans']} plans added at 70% alone (the quality suites' priors, per-type offsets, "
            f"random per-block and per-module plans of small spread): {per(g)}; "
            f"draw 0 against the mean {g['draw 0 vs mean']:.3f}.{before}")


def _one_draw_sentence(rho: dict[str, Any]) -> str:
    """How well one draw of the exact number ranks the plans like the mean over the draws
    (the ceiling any cheap fitness meets when scored against a single draw)."""
    if "draw 0 vs mean" not in rho["all"]:
        return ""
    return (" One draw of the exact number against their mean: "
            f"{rho['all']['draw 0 vs mean']:.3f} over all, "
            + ", ".join(f"{rho[g]['draw 0 vs mean']:.3f}" for g in ("0.70", "0.65", "0.60")) + ".")


def _reference_sentence(corr: dict[str, Any], rho: dict[str, Any], tokens: int) -> str:
    """The sequential-aware database's Spearman beside the one-shot one's, when measured."""
    key = reference_key("uniform", tokens)
    if key not in rho["all"]:
        return ""
    return (" The sequential-aware database (calibrated on a sequential prune at the uniform plan "
            f"of each target, `--reference uniform`): **{rho['all'][key]:.3f}** over all, "
            + ", ".join(f"{rho[g][key]:.3f}" for g in ("0.70", "0.65", "0.60")) + ".")



def _draws(row: dict[str, Any], metric: str) -> str:
    """``mean`` or ``mean [min, max]`` over a row's calibration draws."""
    values = [d[metric] for d in row.get("draws", [])]
    if len(values) < 2:
        return f"{row[metric]:.2f}"
    return f"{row[metric]:.2f} [{min(values):.2f}, {max(values):.2f}]"


def lower_on(plan: dict[str, Any], prior: dict[str, Any], metric: str) -> tuple[int, int]:
    """On how many of their common calibration draws ``plan`` measured lower than ``prior``
    (paired by seed), and how many draws they share; a one-draw row counts as one draw."""
    a = {d["seed"]: d[metric] for d in plan.get("draws", [{"seed": 0, metric: plan[metric]}])}
    b = {d["seed"]: d[metric] for d in prior.get("draws", [{"seed": 0, metric: prior[metric]}])}
    seeds = sorted(set(a) & set(b))
    return sum(a[s] < b[s] for s in seeds), len(seeds)


@dataclass(frozen=True)
class Comparison:
    """One target of a SparseGPT suite's state: its measured priors (in PRIORS order, each
    with its ``family``), its searched seeds' rows (by seed), and the priors with the lowest
    mean on each domain."""

    priors: list[dict[str, Any]]
    found: list[dict[str, Any]]
    best: dict[str, Any]
    best_other: dict[str, Any]


def compare(state: dict[str, Any], seeds: Sequence[int] | None = None) -> Comparison | None:
    """The comparison of one target's state (``seeds``: these searched seeds, default every
    one measured); None before any prior was measured."""
    priors = [state[f"measured:{f}"] | {"family": f} for f in PRIORS if f"measured:{f}" in state]
    found = searched(state, seeds)
    if not priors:
        return None
    return Comparison(priors, found, min(priors, key=lambda r: r["ppl"]),
                      min(priors, key=lambda r: r["ppl_other"]))


def measured_seeds(state: dict[str, Any]) -> list[int]:
    """The seeds whose searched plan one target's state holds, in order."""
    return sorted(int(k.split(":s")[1]) for k in state if k.startswith("searched:s"))


def searched(state: dict[str, Any], seeds: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The searched seeds' rows of one target's state, by seed (``seeds``: these, default every
    one measured)."""
    if seeds is None:
        seeds = measured_seeds(state)
    return [state[f"searched:s{s}"] for s in seeds if f"searched:s{s}" in state]
