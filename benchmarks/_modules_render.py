"""The per-module suites' blocks of docs/results.md and their rows of the README's multi-seed
table, rendered from the JSON files benchmarks/quality.py wrote (suites ``sparsegpt_modules``
and ``wanda_modules``, and their tagged variants such as the short-listed one)."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Any

from _common import ARCHIVED_NOTE, RESULTS, rerun_command, result_path
from _paired_render import paired_note
from _sparsegpt_render import PRIORS, _draws, _fmt, _starts, compare, lower_on, searched

from allocsearch.evaluate.reference import NO_REFERENCE


@dataclass(frozen=True)
class ModuleSuite:
    """One per-module suite of benchmarks/quality.py: its name, the sequential pruner that
    verifies its plans, the lead of its block, the study name of its README rows, and the
    per-block result whose search cost its block shows beside its own (None: no such run)."""

    suite: str
    pruner: str
    lead: str
    study: str
    per_block: str | None = None

    @property
    def stem(self) -> str:
        return f"quality_{self.suite}_cpu"

    def command(self) -> str:
        return f"python benchmarks/quality.py --suite {self.suite} --seeds 0 1 2 --offspring 120"


SPARSEGPT = ModuleSuite("sparsegpt_modules", "sparsegpt",
                        "Per-module levels on the sequential-aware database, all pruned with sequential "
                        "SparseGPT", "smollm2-{pct}-sparsegpt-modules", "quality_sparsegpt_cpu.json")
WANDA = ModuleSuite("wanda_modules", "wanda",
                    "Per-module offsets on cached Wanda ranks, all pruned with sequential Wanda",
                    "smollm2-{pct}-modules")
SUITES = (SPARSEGPT, WANDA)


def _lower(row: dict[str, Any], best: dict[str, Any], metric: str) -> str:
    below, draws = lower_on(row, best, metric)
    return f"{below}/{draws}"


def own_priors(state: dict[str, Any]) -> bool:
    """Whether a tagged variant's state verified every prior in its own run (not borrowed from
    the plain suite's, ``priors_from``): its seeds are then compared with those."""
    return "priors_from" not in state and all(f"measured:{f}" in state for f in PRIORS)


def prior_state(state: dict[str, Any], plain: dict[str, Any] | None) -> dict[str, Any]:
    """The state whose priors ``state``'s seeds are compared with: its own where it verified
    them (or where there is no ``plain`` suite's state), else the plain suite's."""
    return state if plain is None or own_priors(state) else plain


def _target_rows(pct: str, state: dict[str, Any], variant: str = "",
                 priors: dict[str, Any] | None = None) -> list[str]:
    """A per-module suite's rows of one target: each prior, each seed's searched plan and
    their median, with ratios to the best prior (by mean) and paired draw counts. A tagged
    ``variant`` (its name prefixes its rows) is compared with the priors it verified in its own
    run, listed under its name, else with the plain suite's ``priors`` (marked: borrowed)."""
    base = prior_state(state, priors)
    own = base is state
    c = compare(base)
    found = searched(state)
    if c is None or not found:
        return []
    best, other = c.best, c.best_other
    name = f"{variant}, " if variant else ""
    mark = "" if own else BORROWED
    rows = [(name + r["label"], r) for r in (c.priors if own else [])]
    rows += [(name + r["label"] + mark, r) for r in found]
    out = []
    for label, r in rows:
        out.append(f"| {pct}% | {label} | {_fmt(r['search_fitness'])} | {_draws(r, 'ppl')} | "
                   f"{r['ppl'] / best['ppl']:.3f} | {_lower(r, best, 'ppl')} | {_draws(r, 'ppl_other')} | "
                   f"{r['ppl_other'] / other['ppl_other']:.3f} | {_lower(r, other, 'ppl_other')} |")
    med, med_o = (statistics.median(r[m] for r in found) for m in ("ppl", "ppl_other"))
    seeds = f"{len(found)} seed" + ("s" if len(found) > 1 else "")
    out.append(f"| {pct}% | **{name}searched, median of {seeds}**{mark} | - | {med:.2f} | "
               f"**{med / best['ppl']:.3f}** | - | {med_o:.2f} | **{med_o / other['ppl_other']:.3f}** | - |")
    return out


#: Marks a tagged variant's rows compared with priors verified in another run (the plain suite's).
BORROWED = " †"
BORROWED_NOTE = ("† compared with the plain suite's priors, verified in another run and borrowed, "
                 "not with priors of the variant's own run. Where the two runs' builds differ "
                 "({which}) a new install and machine came between them, and across machines the "
                 "same plan's verification moves: those ratios compare machines as well as plans.")


def build_change(plain: dict[str, Any], variant: dict[str, Any]) -> str:
    """How the variant's builds (torch, transformers, Python) differ from the plain suite's
    run ("" when they do not): a sign that the two ran on different machines."""
    keys = ("torch", "transformers", "python")
    a, b = plain["environment"], variant["environment"]
    return ", ".join(f"{k} {a.get(k)} there, {b.get(k)} here" for k in keys if a.get(k) != b.get(k))


def _prior_plan(state: dict[str, Any], family: str) -> dict[str, Any] | None:
    plan = state.get("priors", {}).get("best", {}).get(family, {}).get("plan")
    return plan if isinstance(plan, dict) else None


def _same_plan(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """The same modules at the same sparsities (to 1e-9: the last bits of a projection's float
    sums differ between library versions)."""
    if a is None or b is None or a.get("modules", {}).keys() != b.get("modules", {}).keys():
        return False
    return all(abs(a["modules"][n]["sparsity"] - b["modules"][n]["sparsity"]) <= 1e-9 for n in a["modules"])


def prior_moves(plain: dict[str, Any], mine: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """The priors one target's plain suite and a variant's own run both verified with the same
    plan: (label, plain mean, variant mean, largest relative move of a draw)."""
    out = []
    for f in PRIORS:
        a, b = plain.get(f"measured:{f}"), mine.get(f"measured:{f}")
        if a is None or b is None or not _same_plan(_prior_plan(plain, f), _prior_plan(mine, f)):
            continue
        move = max(abs(x["ppl"] - y["ppl"]) / y["ppl"] for x, y in zip(b["draws"], a["draws"], strict=True))
        out.append((str(a["label"]), float(a["ppl"]), float(b["ppl"]), move))
    return out


def remeasured_note(plain: dict[str, Any], tagged: list[tuple[str, dict[str, Any]]]) -> str:
    """How far the same prior plans moved between the plain suite's run and a variant's own
    run (its priors verified again): the size of a cross-run difference, per draw. Variants
    whose figures agree (the same plans verified on the same builds) share one sentence."""
    same: dict[tuple[str, str], list[str]] = {}  # (target, what moved) -> the variants' tags
    for tag, v in tagged:
        for pct, mine in v["runs"].items():
            if pct not in plain["runs"] or not own_priors(mine):
                continue
            moves = prior_moves(plain["runs"][pct], mine)
            if moves:
                what = f"({build_change(plain, v) or 'the same builds'}): " + "; ".join(
                    f"{label} {a:.2f} there, {b:.2f} here (a draw moved by up to {m:.1%})"
                    for label, a, b, m in moves) + "."
                same.setdefault((pct, what), []).append(tag)
    parts = []
    for (pct, what), tags in same.items():
        if len(tags) == 1:
            parts.append(f"At {pct}% the `{tags[0]}` variant verified the plain suite's prior plans again "
                         f"in its own run {what}")
        else:
            names = ", ".join(f"`{t}`" for t in tags[:-1]) + f" and `{tags[-1]}`"
            parts.append(f"At {pct}% the {names} variants each verified the plain suite's prior plans "
                         f"again in their own runs, with the same figures {what}")
    return " ".join(parts)


def borrowed_note(plain: dict[str, Any], tagged: list[tuple[str, dict[str, Any]]]) -> str:
    """The footnote of the borrowed-prior rows, naming the variants whose builds differ from
    the plain suite's, or "" when no row borrows."""
    borrowing = [(tag, v) for tag, v in tagged
                 if any(not own_priors(st) for st in v["runs"].values())]
    if not borrowing:
        return ""
    differ = [f"`{tag}`: {change}" for tag, v in borrowing if (change := build_change(plain, v))]
    return BORROWED_NOTE.format(which="; ".join(differ) if differ else "none here")


def _tagged(stem: str) -> list[tuple[str, dict[str, Any]]]:
    """(tag, result) for each ``<stem><tag>.json`` among the current results."""
    return [(p.stem[len(stem):], json.loads(p.read_text())) for p in sorted(RESULTS.glob(f"{stem}*.json"))]


def variants(suite: ModuleSuite = SPARSEGPT) -> list[tuple[str, dict[str, Any]]]:
    """A suite's tagged variants (``--tag``, for example the short-listed one): (tag, result)
    for each current ``quality_<suite>_cpu_<tag>.json``."""
    return _tagged(suite.stem + "_")


def on_devices(suite: ModuleSuite = SPARSEGPT) -> list[tuple[str, dict[str, Any]]]:
    """A suite's runs on a GPU (``quality_<suite>_cuda_<tag>.json``, scripts/device_modules.sh):
    (tag, result). Each measured its own priors in the same run on that device, so it is
    compared with those, never with the CPU suite's."""
    return _tagged(f"quality_{suite.suite}_cuda_")


#: The per-module tables' head (the CPU suite's table and each GPU run's).
TABLE_HEAD = ["| target | plan | search fitness | ppl (pydoc) | x best prior | lower on | ppl (licenses) "
              "| x best prior | lower on |",
              "|---|---|---|---|---|---|---|---|---|"]


def _device_block(tag: str, q: dict[str, Any]) -> list[str]:
    """One GPU run's table (its own priors and searched seeds) under a line saying what ran."""
    env = q["environment"]
    lines = ["", f"On {env['device']} (`{rerun_command(q)}`; torch {env['torch']}; {budget(q)} per seed, "
             f"seeds {q['seeds']}; the same verification, its own priors measured in the same run):", "",
             *TABLE_HEAD]
    for pct, state in q["runs"].items():
        lines += _target_rows(pct, state)
    return [*lines, "", _cost_sentence(q["runs"], f"Search cost per seed, {tag} on the GPU")]


def budget(q: dict[str, Any]) -> str:
    """A result's search per seed: its offspring beyond the priors, or its anchored rounds."""
    a = q.get("anchor")
    if a is None:
        return f"{q['offspring']} offspring"
    return f"{a['rounds']} anchored rounds of {a['trials_per_round']} trials from {a['start']}"


def _seed_costs(runs: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target %, seed, "trials, search tokens, minutes") for each searched seed of a suite's runs."""
    out = []
    for pct, state in runs.items():
        for key in sorted(k for k in state if k.startswith("searched:")):
            r = state[key]
            tokens = f"{r['search_tokens']:,} tokens, " if "search_tokens" in r else ""
            minutes = f"{r['search_s'] / 60:.0f} min"
            out.append((pct, key.split(":")[1], f"{r['trials']} trials, {tokens}{minutes}"))
    return out


def _cost_sentence(runs: dict[str, Any], name: str) -> str:
    """Search tokens and wall time per seed of one suite's runs, in one sentence."""
    parts = [f"{pct}% {seed}: {cost}" for pct, seed, cost in _seed_costs(runs)]
    return f"{name}: " + "; ".join(parts) + "." if parts else ""


def _cost_table(named: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Search tokens and wall time per seed of several runs (name, runs): one row per run
    and target, one column per seed."""
    rows = [(name, pct, seed, cost) for name, runs in named for pct, seed, cost in _seed_costs(runs)]
    if not rows:
        return []
    seeds = sorted({r[2] for r in rows}, key=lambda s: (len(s), s))
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for name, pct, seed, cost in rows:
        cells.setdefault((name, pct), {})[seed] = cost
    return ["| run | target | " + " | ".join(seeds) + " |", "|---|---|" + "---|" * len(seeds),
            *(f"| {name} | {pct}% | " + " | ".join(by.get(s, "-") for s in seeds) + " |"
              for (name, pct), by in cells.items())]


def _lead(q: dict[str, Any], suite: ModuleSuite, archived: bool) -> str:
    """The block's first paragraph: what ran, on what, and how every plan was measured."""
    env, verify, study = q["environment"], q["study"]["verify"], q["study"]
    draws = verify.get("calibration_seeds") or [verify.get("seed", 0)]
    reference, masks = study["evaluator"].get("reference"), study["evaluator"].get("masks")
    kind = "database" if masks == "database" else "ranks"
    where = f", {kind} at the `{reference}` reference" if reference not in (None, NO_REFERENCE) else ""
    return (("*(" + ARCHIVED_NOTE + ".)* " if archived else "")
            + f"**{suite.lead}** (`{rerun_command(q)}`; {env['device']}, {env['threads']} thread(s), torch "
            f"{env['torch']}; `spaces/{study['space']}.yaml`{where}; seeds {q['seeds']}, {_starts(q)}, "
            f"{q['offspring']} EvoPress offspring each). Every plan pruned once per calibration draw {draws} "
            f"({verify['nsamples']} x {verify['seqlen']}) and measured on {q['evaluation']['windows']} x 512 "
            f"tokens of the pydoc evaluation split and all 39 x 512 of Debian's licences: mean [min, max] "
            f"over the draws. \"lower on\": on how many draws a plan is below the best prior (paired by "
            f"seed); a seed beats it only when lower on every draw.")


def render(suite: ModuleSuite = SPARSEGPT) -> str:
    """A per-module suite's block: nothing measured yet, or its table and costs."""
    path, archived = result_path(f"{suite.stem}.json")
    if not path.is_file():
        return f"**{suite.lead}** (`{suite.command()}`): not measured yet."
    q = json.loads(path.read_text())
    lines = [_lead(q, suite, archived), "", *TABLE_HEAD]
    tagged = variants(suite)
    for pct, state in q["runs"].items():
        lines += _target_rows(pct, state)
        for tag, v in tagged:
            if pct in v["runs"]:
                lines += _target_rows(pct, v["runs"][pct], tag, state)
    from report import noise_floors

    notes = (borrowed_note(q, tagged), remeasured_note(q, tagged), paired_note(tagged, noise_floors()))
    note = " ".join(n for n in notes if n)
    if note:
        lines += ["", note]
    named = [("per-module", q["runs"]), *((f"`{tag}`", v["runs"]) for tag, v in tagged)]
    if suite.per_block is not None:
        block, block_archived = result_path(suite.per_block)
        if block.is_file():
            label = "per-block (`sparsegpt` suite" + (", archived: one-shot database, older code)"
                                                       if block_archived else ")")
            named.append((label, json.loads(block.read_text()).get("runs", {})))
    cost = ["Search cost per seed (trials, search tokens where recorded, wall minutes):", "",
            *_cost_table(named)]
    if tagged:
        cost += ["", "The variants' commands:", *(f"- `{tag}`: `{rerun_command(v)}`" for tag, v in tagged)]
    gpu = [line for tag, v in on_devices(suite) for line in _device_block(tag, v)]
    return "\n".join([*lines, "", *cost, *gpu])


def render_wanda() -> str:
    return render(WANDA)


def headline_rows() -> list[dict[str, Any]]:
    """Each per-module suite, and each of its tagged variants, as rows of the README's
    multi-seed table (the shape benchmarks/headline.py writes): per target, each seed's mean
    over the calibration draws against the prior with the lowest mean (of the variant's own
    run where it verified them, else the plain suite's: the row is marked), and the seeds
    lower than it on every draw."""
    out: list[dict[str, Any]] = []
    for suite in SUITES:
        path, archived = result_path(f"{suite.stem}.json")
        if archived or not path.is_file():
            continue
        q = json.loads(path.read_text())
        tagged = variants(suite)
        for pct, state in q["runs"].items():
            name = suite.study.format(pct=pct)
            out += _headline_row(suite, pct, state, state, f"{name} ({budget(q)})")
            for tag, v in tagged:
                if pct in v["runs"]:
                    mine = v["runs"][pct]
                    base = prior_state(mine, state)
                    borrowed = base is not mine
                    marks = {"borrowed": borrowed, "builds": build_change(q, v) if borrowed else ""}
                    out += [r | marks for r in _headline_row(suite, pct, mine, base,
                                                             f"{name} ({budget(v)}, {tag})")]
        for tag, v in on_devices(suite):  # against the priors of the same GPU run
            for pct, state in v["runs"].items():
                name = suite.study.format(pct=pct)
                out += _headline_row(suite, pct, state, state,
                                     f"{name} ({budget(v)}, {tag}, {v['environment']['device']})")
    return out


def _headline_row(suite: ModuleSuite, pct: str, state: dict[str, Any], priors: dict[str, Any],
                  config: str) -> list[dict[str, Any]]:
    """``state``'s searched seeds against the best of ``priors``' measured priors (one row)."""
    c, found = compare(priors), searched(state)
    if c is None or not found:
        return []
    ratios = [r["ppl"] / c.best["ppl"] for r in found]
    below = [lower_on(r, c.best, "ppl") for r in found]
    return [{"config": config, "pruner": suite.pruner, "target": int(pct) / 100, "seeds": len(found),
             "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
             "ratio_other_median": statistics.median(r["ppl_other"] / c.best_other["ppl_other"]
                                                     for r in found),
             "better_seeds": sum(a == n > 0 for a, n in below)}]
