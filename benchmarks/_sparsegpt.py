"""The ``sparsegpt`` suite of benchmarks/quality.py: the search on a SparseGPT level database
against the priors, everything pruned and verified with sequential SparseGPT.

At each target (70%, 60%), with studies/smollm2-<pct>-sparsegpt.yaml:

- every seed's study starts from every prior of the study's grid (uniform, OWL, alpha, ramp),
  each a trial scored by the database fitness on the search split (offsets rounded to the level
  grid), and runs --offspring trials beyond them: with --offspring 120 that is the shipped
  config as ``allocsearch search <config> --seed S`` runs it (its n_trials);
- each family's best setting is read off the first study's prior trials (the lowest fitness
  at full fidelity, else at the first fidelity, where the EvoPress pruner stopped it; the same
  trials in every seed's study, the fitness being deterministic): parameters chosen on the
  search split under SparseGPT;
- uniform, each family's chosen prior (as the allocator gives it, not snapped) and each seed's
  best plan are pruned sequentially with SparseGPT on each calibration draw of the study's
  verification (``verify.calibration_seeds``), and measured on --eval-windows windows of the
  pydoc evaluation split and on every window of another domain's evaluation part (Debian's
  /usr/share/common-licenses, 39 x 512 tokens: legal English the search never saw). A plan's
  number is its mean over the draws; a searched plan beats the best prior only when it is
  lower on every draw (paired by seed).

The per-module suites run the same protocol on their own configs: ``sparsegpt_modules``
(studies/smollm2-<pct>-sparsegpt-modules.yaml) and ``wanda_modules`` (Wanda,
studies/smollm2-<pct>-modules.yaml, every plan verified with sequential Wanda, the study's own
verification pruner).

Rows finish into results/runs/quality_<suite>[_<tag>]_<pct>.partial.json (an interrupted run
resumes; once the priors are chosen, other seeds may run at once in processes of their own,
``--seeds 1`` and ``--seeds 2``, and ``--report`` writes the result); studies live in
results/runs/ (re-running resumes them). Without a partial file (a fresh checkout) the
committed result's runs are the resume state when it ran the same protocol, so a later seed
joins the committed ones without measuring them again.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Any

from _code_state import code_state
from _common import RUNS, STUDIES, SUITE_STUDIES, command_line, environment, other_domain_file, study_file
from _seed_search import search
from _sparsegpt_render import PRIORS, compare, lower_on, measured_seeds, searched
from _suite_state import (
    committed_state,
    load_partial,
    partial_path,
    pretrained_meta,
    pretrained_predictor,
    save_partial,
    shared_priors,
    still_borrowed,
    tag_suffix,
)

from allocsearch.allocation import get_allocator
from allocsearch.evaluate import Evaluator, verify
from allocsearch.models import load_model
from allocsearch.models.loading import resolve_device
from allocsearch.plan import Plan
from allocsearch.search import StudyConfig, store, tokens_read


def _config(target: float, seed: int, args: argparse.Namespace,
            winners: list[str] | None = None, suite: str = "sparsegpt") -> StudyConfig:
    """The study of ``target`` at ``seed``: all its warm starts, or only those labelled in
    ``winners``; ``args.offspring`` trials beyond them."""
    cfg = StudyConfig.load(study_file(suite, target), [*args.set, f"seed={seed}"])
    warm = tuple(w for w in cfg.warm_start if winners is None or w.label in winners)
    return dataclasses.replace(cfg, output=RUNS / f"{cfg.name}{tag_suffix(args)}_s{seed}",
                               warm_start=warm, n_trials=len(warm) + args.offspring)


def protocol(first: StudyConfig, suite: str, offspring: int) -> dict[str, Any]:
    """What decides a suite's numbers besides the seeds: its study config, evaluator, sampler,
    space and verification, the offspring per study, and that every seed starts from every
    prior (a result's keys; a committed result is resumed only under the same)."""
    return {"study": {"config": str(STUDIES / SUITE_STUDIES[suite].replace("{pct}", "<pct>")),
                      "evaluator": first.evaluator.to_dict(), "verify": vars(first.verify),
                      "sampler": first.sampler, "space": first.space},
            "offspring": offspring, "seed_warm_starts": "all"} | _anchor(first)


def _anchor(cfg: StudyConfig) -> dict[str, Any]:
    """A study in anchored rounds (``anchor.rounds``): its rounds, first anchor, short list
    and trials per round, a key of the protocol (absent for one study, as results before it)."""
    a = cfg.anchor
    if not a.rounds:
        return {}
    start = a.start.label if a.start is not None else "uniform"
    return {"anchor": {"rounds": a.rounds, "start": start, "check": a.check,
                       "trials_per_round": cfg.n_trials}}


def measure(ev: Evaluator, cfg: StudyConfig, plan: Plan, other: str,
            windows: int) -> dict[str, Any]:
    """The study's verification (its sequential pruner, ``verify.calibration_seeds``, its
    threads), each draw's prune also scored on ``other`` (all of its evaluation part: the
    licences hold 39 windows); ``ppl`` and ``ppl_other`` are the means over the draws,
    ``draws`` each draw's numbers (paired across plans by seed)."""
    vc = dataclasses.replace(cfg.verify_config(), nsamples=windows, also=(other,))
    v = verify(ev, plan, vc)
    draws = [{"seed": d.seed, "ppl": d.ppl, "ppl_other": d.also[other].ppl, "prune_s": d.prune_seconds,
              "sparsity": d.achieved_sparsity} for d in v.draws]
    return {"ppl": v.ppl, "ppl_other": v.also_ppl[other], "tokens": v.tokens,
            "tokens_other": v.draws[0].also[other].tokens, "sparsity": v.achieved_sparsity,
            "prune_s": statistics.fmean(d.prune_seconds for d in v.draws), "budget": plan.budget(),
            "threads": v.threads, "draws": draws}


def _choose_priors(study: Any, cfg: StudyConfig, ev: Evaluator, target: float) -> dict[str, Any]:
    """Each family's best warm start in ``study`` (its prior trials), as the allocator gives it."""
    by_label = {ws.label: ws for ws in cfg.warm_start}
    scored: list[dict[str, Any]] = []
    for t in store.trials(study):
        label = t.prior
        if label not in by_label or not t.intermediate:
            continue
        assert label is not None
        first = min(t.intermediate)
        complete = t.state.name == "COMPLETE"
        scored.append({"label": label, "family": label.split()[0], "trial": t.number,
                       "complete": complete, "search_fitness": float(t.values[0]) if complete else None,
                       "first_fitness": float(t.intermediate[first])})
    best: dict[str, Any] = {}
    for family in PRIORS:
        rows = [r for r in scored if r["family"] == family]
        done = [r for r in rows if r["complete"]]
        pick = (min(done, key=lambda r: r["search_fitness"]) if done
                else min(rows, key=lambda r: r["first_fitness"]))
        ws = by_label[pick["label"]]
        plan = get_allocator(ws.method, **ws.params).allocate(ev.profile, target)
        best[family] = pick | {"plan": plan.to_dict()}
    return {"scored": scored, "best": best}


def prior_order(seed: int) -> tuple[str, ...]:
    """The order in which a process measures the priors: :data:`PRIORS` turned by its seed,
    so processes of other seeds that finish their searches together start on different
    priors (each takes what the others measured meanwhile) instead of all measuring all."""
    k = seed % len(PRIORS)
    return (*PRIORS[k:], *PRIORS[:k])


def suite_sparsegpt(args: argparse.Namespace, suite: str = "sparsegpt") -> dict[str, Any]:
    """``suite``: ``sparsegpt`` (per-block levels, studies/smollm2-<pct>-sparsegpt.yaml),
    ``sparsegpt_modules`` (per-module levels on the sequential-aware database,
    studies/smollm2-<pct>-sparsegpt-modules.yaml) or ``wanda_modules`` (per-module offsets on
    cached Wanda ranks, verified with sequential Wanda, studies/smollm2-<pct>-modules.yaml);
    the same protocol otherwise."""
    # The pretrained predictor's file joins the overrides: every study of the run starts from it.
    pretrained = pretrained_predictor(args, suite)
    extra = [f"predictor.file={pretrained}"] if pretrained is not None else []
    args = argparse.Namespace(**(vars(args) | {"set": [*args.set, *extra]}))
    # --report: summarise what the partial results hold (each target's measured seeds), no model.
    loaded = None if args.report else load_model(args.model, device=args.device, dtype=args.dtype)
    device = loaded.device.type if loaded is not None else resolve_device(args.device).type
    other = other_domain_file(RUNS)
    first = _config(args.targets[0], args.seeds[0], args, suite=suite)
    done: dict[str, Any] = {}
    for target in args.targets:  # one file per target: targets may run in parallel processes
        pct = str(round(target * 100))
        part = partial_path(suite, pct, args)
        done[pct] = ({} if args.fresh else load_partial(part, pct) if part.exists()
                     else committed_state(suite, pct, args, device, protocol(first, suite, args.offspring)))
        # A variant's own choice of priors (its seeds' warm starts) is kept when it has one.
        shared = shared_priors(suite, pct, args, device, vars(first.verify))
        done[pct] |= {k: v for k, v in shared.items() if k not in done[pct]}
        if "priors_from" in done[pct] and not still_borrowed(suite, pct, device, done[pct]):
            del done[pct]["priors_from"]  # measured by this variant since: not borrowed

    def save() -> None:
        for pct, state in done.items():
            save_partial(partial_path(suite, pct, args), pct, state)

    ev = None if loaded is None else Evaluator.build(loaded, first.evaluator, progress=False)
    windows = args.eval_windows or 40
    rows: list[dict[str, Any]] = []
    for target in args.targets:
        pct = str(round(target * 100))
        state = done.setdefault(pct, {})
        for seed in args.seeds:
            key = f"searched:s{seed}"
            if key in state or ev is None:
                continue
            scfg = _config(target, seed, args, suite=suite)
            t = time.perf_counter()
            run = search(scfg, ev, args.progress)
            search_s = time.perf_counter() - t
            if "priors" not in state:
                state["priors"] = _choose_priors(run.studies[0], scfg, ev, target) | code_state()
            trials = [tr for s in run.studies for tr in s.get_trials(deepcopy=False)]
            # A plan measured exactly between rounds reads the full fidelity of the search windows.
            exact: dict[str, Any] = {"exact_measurements": run.exact} if run.exact else {}
            if run.finalists is not None:
                exact["finalists"] = run.finalists
            state[key] = {"label": f"searched seed {seed}", "search_fitness": run.fitness,
                          "trials": len(trials), "warm_starts": len(scfg.warm_start), "search_s": search_s,
                          "offspring": args.offspring, **exact,
                          "complete": sum(1 for tr in trials if tr.state.name == "COMPLETE"),
                          "search_tokens": sum(tokens_read(s) for s in run.studies)
                          + run.exact * max(scfg.evaluator.fidelities),
                          **measure(ev, scfg, run.plan, other, windows), "plan": run.plan.to_dict(),
                          **code_state()}
            save()
            print(f"  {pct}% searched seed {seed}: fitness {state[key]['search_fitness']:.3f}  ppl "
                  f"{state[key]['ppl']:.3f}  other {state[key]['ppl_other']:.3f}", flush=True)
        cfg = _config(target, args.seeds[0], args, suite=suite)
        for family in prior_order(args.seeds[0]):
            key = f"measured:{family}"
            # Another process (other seeds) may have measured this prior since: take it.
            on_disk = load_partial(partial_path(suite, pct, args), pct)
            state |= {k: v for k, v in on_disk.items() if k.startswith("measured:") and k not in state}
            if key in state:
                continue
            if ev is None:
                raise SystemExit(f"--report: no measured {family} prior at {pct}%: run the suite first")
            chosen = state["priors"]["best"][family]
            fit = chosen["search_fitness"] if chosen["complete"] else None
            state[key] = {"label": chosen["label"], "search_fitness": fit,
                          **measure(ev, cfg, Plan.from_dict(chosen["plan"]), other, windows),
                          **code_state()}
            save()
        for family in PRIORS:
            key = f"measured:{family}"
            print(f"  {pct}% {state[key]['label']:24s} ppl {state[key]['ppl']:8.3f}  "
                  f"other {state[key]['ppl_other']:8.3f}", flush=True)
        rows += summarise(float(target), state, args.seeds if ev is not None else measured_seeds(state))
    if ev is not None:
        ev.close()
    seeds = args.seeds if ev is not None else sorted({n for st in done.values() for n in measured_seeds(st)})
    return {"suite": suite, "command": command_line(),
            "warm_starts": len(first.warm_start), "model": args.model, "device": device, "dtype": args.dtype,
            "seeds": seeds,
            **protocol(first, suite, args.offspring if ev is not None else _offspring(done)),
            "evaluation": {"part": "evaluation", "seqlen": 512, "windows": windows, "windows_other": "all",
                           "other_domain": "/usr/share/common-licenses (all files, concatenated)"},
            "left_out": "BESA (not among the study's warm starts: its own optimisation per plan)",
            "pretrained": pretrained_meta(pretrained),
            "environment": environment(), "rows": rows, "runs": done}


def _offspring(done: dict[str, Any]) -> int:
    """The searched trials beyond the warm starts that every measured study ran (--report)."""
    counts = {int(r.get("offspring", int(r["trials"]) - int(r["warm_starts"])))
              for st in done.values() for r in searched(st)}
    if len(counts) != 1:
        raise SystemExit(f"--report: the studies ran different numbers of trials: {sorted(counts)}")
    return counts.pop()


def summarise(target: float, state: dict[str, Any], seeds: list[int]) -> list[dict[str, Any]]:
    """One row per prior and one for the searched plans (median and spread over seeds), each
    with its ratio to the best prior measured (on each domain)."""
    c = compare(state, seeds)
    assert c is not None and len(c.priors) == len(PRIORS), "every prior is measured first"
    best, best_other, found = c.best, c.best_other, c.found
    by_search = min(c.priors, key=lambda r: r["search_fitness"] if r["search_fitness"] is not None else 1e300)
    rows = [{"target": target, "plan": r["label"], "seeds": 1, "search_fitness": r["search_fitness"],
             "ppl": r["ppl"], "ppl_other": r["ppl_other"], "ratio": r["ppl"] / best["ppl"],
             "ratio_other": r["ppl_other"] / best_other["ppl_other"]} for r in c.priors]
    if found:
        ppl = [r["ppl"] for r in found]
        other = [r["ppl_other"] for r in found]
        below = [lower_on(r, best, "ppl") for r in found]
        rows.append({
            "target": target, "plan": "searched (median)", "seeds": len(found),
            "search_fitness": statistics.median(r["search_fitness"] for r in found),
            "ppl": statistics.median(ppl), "ppl_min": min(ppl), "ppl_max": max(ppl),
            "ppl_other": statistics.median(other), "ppl_other_min": min(other),
            "ppl_other_max": max(other), "ratio": statistics.median(ppl) / best["ppl"],
            "ratio_other": statistics.median(other) / best_other["ppl_other"],
            "best_prior": best["label"], "best_prior_other": best_other["label"],
            "best_prior_on_search": by_search["label"],
            # Paired across calibration draws: a seed beats the best prior only when lower on
            # every draw they share (else its gain is within the noise of the draw).
            "lower_on": [list(b) for b in below],
            "lower_on_other": [list(lower_on(r, best_other, "ppl_other")) for r in found],
            "seeds_below_on_every_draw": sum(a == n for a, n in below),
        })
    return rows


def suite_sparsegpt_modules(args: argparse.Namespace) -> dict[str, Any]:
    return suite_sparsegpt(args, "sparsegpt_modules")


def suite_wanda_modules(args: argparse.Namespace) -> dict[str, Any]:
    return suite_sparsegpt(args, "wanda_modules")
