"""The sample-efficiency bullet of README.md and its table in docs/results.md, rendered from the
JSON benchmarks/predictor_efficiency.py wrote (nothing until it has), with the verdicts against
the noise floor of verification."""

from __future__ import annotations

import json
import statistics
from typing import Any

import numpy as np
from _common import ARCHIVED_NOTE, rerun_command, result_path
from _render_text import fmt, records_note


def render_sentence() -> str:
    """Evaluations to the ramp's fitness and verified perplexity of each arm, from the current
    efficiency results (empty without them): a lead line, then one nested bullet per arm and
    the goal's verdict (markdown's nested list, indented two spaces)."""
    path, archived = result_path("predictor_efficiency_cpu.json")
    if archived or not path.is_file():
        return ""
    e = json.loads(path.read_text())
    stats = {(s["arm"], s["metric"]): s for s in e["summary"]}
    if ("pretrained", "evals_to_ramp") not in stats or ("tpe", "evals_to_ramp") not in stats:
        return ""

    def part(arm: str) -> str:
        reach, ppl = stats[(arm, "evals_to_ramp")], stats[(arm, "best_wanda_ppl")]
        other = stats.get((arm, "best_wanda_ppl_other"))
        return (f"reached the ramp prior's fitness in {reach['reached']} of {reach['runs']} seeds "
                f"(median {fmt(reach['median'], 0)} real evaluations), verified median "
                f"{fmt(ppl['median'], 1)}"
                + (f" (other domain {fmt(other['median'], 1)})" if other else ""))

    arms = [f"TPE alone: {part('tpe')}.",
            f"TPE with a short-list (`{e['default_model']}`, the default when measured) pretrained on "
            f"50/60/75% studies: {part('pretrained')}."]
    if ("pretrained_additive", "evals_to_ramp") in stats:
        arms.append(f"The same with the additive model: {part('pretrained_additive')}.")
    if ("pretrained_damage", "evals_to_ramp") in stats:
        row = next(r for r in e["rows"] if r["arm"] == "pretrained_damage")
        arms.append(f"The same plus measured damage (`predictor.damage`): {part('pretrained_damage')}"
                    f"{_damage_verdict(e, stats)}. Its curves read {row['damage_tokens_target']:,} search "
                    f"tokens at {e['target']:.0%} and {row['damage_tokens']:,} at all their targets, "
                    f"once per model and Evaluator, not counted above.")
    evo = stats.get(("evopress", "best_wanda_ppl"))
    if evo:
        other = stats.get(("evopress", "best_wanda_ppl_other"))
        arms.append(f"The EvoPress-style sampler with {e['settings']['evopress_tokens']:,} tokens: verified "
                    f"median {fmt(evo['median'], 1)} over {evo['runs']} seed{'s' if evo['runs'] > 1 else ''}"
                    + (f" (other domain {fmt(other['median'], 1)})" if other else "") + ".")
    arms.append(_goal(e, stats).strip())
    probed = probe_sentence()
    if probed:
        arms.append(probed)
    draws = e["settings"].get("draws", 1)
    lead = (f" At 70% with {e['settings']['max_tokens']:,} search tokens per arm "
            f"(`benchmarks/predictor_efficiency.py`, {'one' if draws == 1 else draws} calibration "
            f"draw{'s' if draws > 1 else ''}; the noise floor at 70% is in BENCHMARKS.md):"
            f"{records_note(e)}")
    return "\n".join([lead, *(f"  - {a}" for a in arms)])


PROBE_VARIANT = "predictor_efficiency_cpu_probe.json"


def _probe_variant() -> dict[str, Any] | None:
    """The probed arm's run beside the damage arm measured again (None until measured, or
    without both arms)."""
    path, archived = result_path(PROBE_VARIANT)
    if archived or not path.is_file():
        return None
    e: dict[str, Any] = json.loads(path.read_text())
    arms = {r["arm"] for r in e["runs"]}
    return e if {"pretrained_damage", "pretrained_damage_probe"} <= arms else None


def probe_sentence() -> str:
    """The probed short-list against the damage arm, both from the probe variant's run (empty
    without it): reach, verified medians, probe tokens, the ratio's verdict."""
    e = _probe_variant()
    if e is None:
        return ""
    stats = {(s["arm"], s["metric"]): s for s in e["summary"]}
    arm, other = "pretrained_damage_probe", "pretrained_damage"
    mine, plain = stats[(arm, "best_wanda_ppl")], stats[(other, "best_wanda_ppl")]
    probe_runs = [r for r in e["runs"] if r["arm"] == arm]
    reach = stats[(arm, "evals_to_ramp")]
    trials = statistics.median(r["trials"] for r in probe_runs)
    probe_tokens = statistics.median(r["probe_tokens"] for r in probe_runs)
    text = (f"Probed rounds (`predictor.probe: {e['settings']['probe']}`, window 0; `--variant probe`, "
            f"the damage arm measured again in the same run): {trials:.0f} trials (median), the probes "
            f"reading {probe_tokens:,.0f} of the {e['settings']['max_tokens']:,} tokens; reached the ramp "
            f"prior's fitness in "
            f"{reach['reached']} of {reach['runs']} seeds (median {fmt(reach['median'], 0)} real "
            f"evaluations), verified median {fmt(mine['median'], 1)} against {fmt(plain['median'], 1)}")
    floor = _floor(e)
    if floor is None or mine["median"] is None or plain["median"] is None:
        return text + "."
    ratio = mine["median"] / plain["median"]
    return (text + f", {ratio:.3f} times{_lower_on(e, arm, other)}, {_verdict(ratio, floor)}"
            f"{_other_domain(stats, arm, other)}. Best verified per seed: {_per_seed(probe_runs)} probed, "
            f"{_per_seed([r for r in e['runs'] if r['arm'] == other])} not.")


def _per_seed(runs: list[dict[str, Any]]) -> str:
    return "/".join(fmt(r["best_wanda_ppl"], 1) for r in sorted(runs, key=lambda r: r["seed"]))


def _floor(e: dict[str, Any]) -> float | None:
    """The noise floor of verification at the efficiency result's target and pruner (None
    where BENCHMARKS.md has none)."""
    from report import noise_floors

    return noise_floors().get((round(e["target"], 4), e["verify"]["pruner"]))


def _verdict(ratio: float, floor: float) -> str:
    """A ratio of two verified medians against the noise floor of verification."""
    return ("lower beyond the noise floor" if ratio < 1 - floor else
            "higher beyond the noise floor" if ratio > 1 + floor else "within noise of it")


def _paired_draws(e: dict[str, Any], arm: str, other: str) -> tuple[int, int] | None:
    """On how many calibration draws ``arm``'s verified perplexity is below ``other``'s, each
    draw's median over the seeds against the other's on the same draw (paired: one draw prunes
    both with the same calibration text); None unless both verified on the same two or more."""
    def per_draw(name: str) -> dict[str, float]:
        draws = [r["best_wanda_draws"] for r in e.get("runs", [])
                 if r["arm"] == name and r.get("best_wanda_draws")]
        keys = set.intersection(*(set(d) for d in draws)) if draws else set()
        return {k: float(np.median([d[k] for d in draws])) for k in sorted(keys)}

    mine, theirs = per_draw(arm), per_draw(other)
    if len(mine) < 2 or mine.keys() != theirs.keys():
        return None
    return sum(mine[k] < theirs[k] for k in mine), len(mine)


def _lower_on(e: dict[str, Any], arm: str, other: str) -> str:
    """The :func:`_paired_draws` count as a clause of a verdict (empty without one)."""
    paired = _paired_draws(e, arm, other)
    return f", lower on {paired[0]} of {paired[1]} calibration draws" if paired else ""


def _damage_verdict(e: dict[str, Any], stats: dict[tuple[str, str], dict[str, Any]]) -> str:
    """The damage arm's verified median against the plain pretrained arm's (empty without a floor)."""
    floor = _floor(e)
    mine, plain = stats[("pretrained_damage", "best_wanda_ppl")], stats[("pretrained", "best_wanda_ppl")]
    if floor is None or mine["median"] is None or plain["median"] is None:
        return ""
    ratio = mine["median"] / plain["median"]
    lower = _lower_on(e, "pretrained_damage", "pretrained")
    return (f", {ratio:.3f} times the pretrained arm's{lower}, {_verdict(ratio, floor)}"
            f"{_other_domain(stats, 'pretrained_damage', 'pretrained')}")


def _goal(e: dict[str, Any], stats: dict[tuple[str, str], dict[str, Any]]) -> str:
    """The pretrained arm against issue 24's goal: the ramp's fitness within 10 real evaluations
    (median), and a verified perplexity at or below the EvoPress-style sampler's (medians), a
    difference smaller than the noise floor of verification at that target being within noise."""
    reach, mine = stats[("pretrained", "evals_to_ramp")], stats[("pretrained", "best_wanda_ppl")]
    fast = reach["reached"] == reach["runs"] and reach["median"] is not None and reach["median"] <= 10
    text = f" Against the goal: the ramp's fitness within 10 evaluations {'met' if fast else 'not met'}"
    evo = stats.get(("evopress", "best_wanda_ppl"))
    floor = _floor(e)
    if evo is None or floor is None or mine["median"] is None:
        return text + "."
    ratio = mine["median"] / evo["median"]
    lower = _lower_on(e, "pretrained", "evopress")
    return (text + f"; verified median {ratio:.3f} times the EvoPress-style sampler's{lower}, "
            f"{_verdict(ratio, floor)} "
            f"(floor {floor:.1%} at {e['target']:.0%}, {e['verify']['pruner']})"
            f"{_other_domain(stats, 'pretrained', 'evopress')}.")


def _other_domain(stats: dict[tuple[str, str], dict[str, Any]], arm: str, other: str) -> str:
    """``arm``'s verified median on the other domain against ``other``'s, as a clause (empty
    unless both scored one); no noise floor was measured on that text."""
    mine, theirs = stats.get((arm, "best_wanda_ppl_other")), stats.get((other, "best_wanda_ppl_other"))
    if not mine or not theirs or mine["median"] is None or theirs["median"] is None:
        return ""
    return (f"; on the other domain {mine['median'] / theirs['median']:.3f} times "
            f"(no noise floor measured there)")


def _kept_note(e: dict[str, Any]) -> list[str]:
    """Which arms the efficiency result took from an earlier run (``--keep``), if any."""
    kept = sorted({(r["arm"], r["kept_from"]) for r in e["runs"] if r.get("kept_from")})
    if not kept:
        return []
    arms = ", ".join(dict.fromkeys(a for a, _ in kept))
    commits = ", ".join(sorted({c[:10] for _, c in kept}))
    ran = sorted({str(r["commit"])[:10] for r in e["runs"] if not r.get("kept_from") and r.get("commit")})
    where = f"at commit {', '.join(ran)}" if ran else "at this result's commit"
    return ["", f"Arms {arms}: kept from the committed result of an earlier run with the same settings, "
            f"verification and library code less the predictor package's model code (measured at "
            f"commit {commits}); they use no predictor, so only the other arms measure a change of "
            f"the predictor (`--keep`). The other arms ran {where}."]


def render_lines() -> list[str]:
    """The efficiency table of docs/results.md (a note where the result is archived; nothing
    without one)."""
    lines: list[str] = []
    e_path, e_archived = result_path("predictor_efficiency_cpu.json")
    if e_path.is_file() and not e_archived:
        e = json.loads(e_path.read_text())
        lines += ["", f"**Sample efficiency at {e['target']:.0%}** (`{rerun_command(e)}`; see the "
                  f"script's docstring for the arms). Ramp prior (slope 0.3) in the same run: fitness "
                  f"{e['ramp']['fitness']:.2f}, verified {e['ramp']['wanda_ppl']:.2f}"
                  + (f" (other domain {e['ramp']['wanda_ppl_other']:.2f})"
                     if "wanda_ppl_other" in e["ramp"] else "")
                  + f".{records_note(e)}", "",
                  "| arm | metric | runs reaching it | median | min | max |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for s in e["summary"]:
            lines.append(f"| {s['arm']} | {s['metric']} | {s['reached']} of {s['runs']} | "
                         f"{fmt(s['median'], 2)} | {fmt(s['min'], 2)} | {fmt(s['max'], 2)} |")
        lines += _kept_note(e)
        lines += [f"\nArm {r['arm']} also read {r['damage_tokens']:,} search tokens of measured damage "
                  f"curves ({r['damage_tokens_target']:,} at {e['target']:.0%}), measured once per model and "
                  f"Evaluator and shared by every study at their targets; `search_tokens` leaves them out."
                  for r in e["rows"] if r.get("damage_tokens") is not None]
        lines += _probe_lines()
    elif e_path.is_file():
        lines += ["", f"*Sample efficiency: {ARCHIVED_NOTE}* (`benchmarks/predictor_efficiency.py` "
                  f"measures it again)."]
    return lines


def _probe_lines() -> list[str]:
    """The probe variant's runs, one row per arm and seed (nothing until measured)."""
    e = _probe_variant()
    if e is None:
        return []
    lines = ["", f"**A probed short-list at {e['target']:.0%}** (`{rerun_command(e)}`, one process per arm; "
             f"each round probes its {e['settings']['probe']} best candidates on window 0 and queues "
             f"{e['settings']['k']}; the probes' tokens count in the arm's {e['settings']['max_tokens']:,}). "
             f"{probe_sentence()}", "",
             "| arm | seed | trials | screened | probe tokens | evaluations to the ramp | best fitness "
             "| verified | verified (other domain) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(e["runs"], key=lambda r: (r["arm"], r["seed"])):
        lines.append(f"| {r['arm']} | {r['seed']} | {r['trials']} | {r['screened_trials']} | "
                     f"{r.get('probe_tokens', 0):,} | {fmt(r['evals_to_ramp'], 0)} | "
                     f"{fmt(r['best_fitness'], 2)} | "
                     f"{fmt(r['best_wanda_ppl'], 2)} | "
                     f"{fmt(r['best_wanda_ppl_other'], 2) if r.get('best_wanda_ppl_other') else '-'} |")
    return lines
