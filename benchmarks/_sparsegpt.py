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
``--seeds 1`` and ``--seeds 2``, and a last run with every seed writes the result); studies
live in results/runs/ (re-running resumes them).
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import statistics
import time
from pathlib import Path
from typing import Any

from _common import (
    RESULTS,
    RUNS,
    STUDIES,
    SUITE_STUDIES,
    code_state,
    command_line,
    environment,
    fresh_entries,
    other_domain_file,
    predictor_records,
    study_file,
)
from _sparsegpt_render import PRIORS, compare, lower_on

from allocsearch.allocation import get_allocator
from allocsearch.evaluate import Evaluator, verify
from allocsearch.io import atomic_write_text
from allocsearch.models import load_model
from allocsearch.models.loading import resolve_device
from allocsearch.plan import Plan
from allocsearch.predictor import Predictor, train_predictor
from allocsearch.predictor.base import DEFAULT_MODEL
from allocsearch.search import StudyConfig, run_study, store, tokens_read
from allocsearch.search.records import folder_records
from allocsearch.search.report import best_plan


def _config(target: float, seed: int, args: argparse.Namespace,
            winners: list[str] | None = None, suite: str = "sparsegpt") -> StudyConfig:
    """The study of ``target`` at ``seed``: all its warm starts, or only those labelled in
    ``winners``; ``args.offspring`` trials beyond them."""
    cfg = StudyConfig.load(study_file(suite, target), [*args.set, f"seed={seed}"])
    warm = tuple(w for w in cfg.warm_start if winners is None or w.label in winners)
    return dataclasses.replace(cfg, output=RUNS / f"{cfg.name}{_tag(args)}_s{seed}", warm_start=warm,
                               n_trials=len(warm) + args.offspring)


def _tag(args: argparse.Namespace) -> str:
    """A variant's suffix (``--tag``, with its ``--set`` overrides): its own studies and
    partial results beside the plain suite's."""
    return f"_{args.tag}" if args.tag else ""


def _pretrained(args: argparse.Namespace, suite: str) -> Path | None:
    """``--pretrain``: the predictor every study starts from (the default model), trained at
    those targets on the plain suite's studies (``--pretrain-from suite``: every seed that ran,
    its ``<name>_s<seed>`` folders in results/runs/, at their full fidelity) or on the committed
    Wanda predictor studies (``--pretrain-from records``: benchmarks/predictor_data.py's records,
    another pruner's fitness, so what carries across pruners is measured); trained once, kept in
    results/runs/ under a name listing its source (a resumed run reuses it)."""
    if not args.pretrain:
        return None
    if args.pretrain_from == "records":
        records = [r for r in predictor_records()[0] if any(abs(r.target - t) < 1e-9 for t in args.pretrain)]
        if not records:
            raise SystemExit(f"--pretrain-from records: no predictor records at {args.pretrain}")
        label = "records_" + "+".join(str(round(t * 100)) for t in args.pretrain)
    else:
        names = [StudyConfig.load(study_file(suite, t)).name for t in args.pretrain]
        folders = sorted(f for name in names for f in RUNS.glob(f"{name}_s[0-9]*")
                         if (f / "study.db").is_file())
        if not folders:
            raise SystemExit(f"--pretrain: run the plain {suite} suite at {args.pretrain} first")
        records, label = folder_records(folders), "+".join(f.name for f in folders)
    path = RUNS / f"predictor_{DEFAULT_MODEL}_{label}.json"
    if not path.exists():
        train_predictor(records, progress=False).save(path)
    return path


def _pretrained_meta(path: Path | None) -> dict[str, Any] | None:
    """What the pretrained predictor (``--pretrain``) was trained on, for the result."""
    if path is None:
        return None
    pred = Predictor.load(path)
    return {"file": path.name, "model": pred.model, "studies": list(pred.meta.studies),
            "records": pred.meta.n_train, "tokens": pred.meta.tokens}


def _partial(suite: str, pct: str, args: argparse.Namespace) -> Path:
    return RUNS / f"quality_{suite}{_tag(args)}_{pct}.partial.json"


def load_partial(path: Path, pct: str) -> dict[str, Any]:
    """The resume state of ``pct`` in ``path`` (empty without one), less the entries measured
    on other library code."""
    return fresh_entries(json.loads(path.read_text()).get(pct, {}), path.name) if path.exists() else {}


def save_partial(path: Path, pct: str, state: dict[str, Any]) -> None:
    """Write ``state`` over what ``path`` holds, under a lock: processes running other seeds
    of the same target at once each keep the entries the others finished (an entry this
    process holds wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        on_disk = json.loads(path.read_text()).get(pct, {}) if path.exists() else {}
        atomic_write_text(path, json.dumps({pct: on_disk | state}, indent=1))


#: The verification settings that decide a measured number (besides the plan and the code).
VERIFY_KEYS = ("pruner", "nsamples", "seqlen", "eval_windows", "inputs", "calibration_seeds", "threads",
               "batch_size")


def _same_verify(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(json.dumps(a.get(k)) == json.dumps(b.get(k)) for k in VERIFY_KEYS)


def _shared_priors(suite: str, pct: str, args: argparse.Namespace, device: str,
                   verify: dict[str, Any]) -> dict[str, Any]:
    """A tagged variant's measured prior rows, from the plain suite's partial results, else
    its current result file (a fresh checkout): the same plans pruned and measured with the
    same settings give the same numbers (the verification is deterministic at fixed
    threads), so they are not measured twice. Borrowed only when the plain suite verified
    with the same settings (``verify``, the variant's) on the same device."""
    if not args.tag:
        return {}
    plain = RUNS / f"quality_{suite}_{pct}.partial.json"
    result = RESULTS / f"quality_{suite}_{device}.json"
    if plain.exists():
        state, source = json.loads(plain.read_text()).get(pct, {}), plain.name
    else:
        stored = json.loads(result.read_text()) if result.exists() else None
        if stored is None or not _same_verify(stored["study"]["verify"], verify):
            return {}
        state, source = stored["runs"].get(pct, {}), result.name
    keep = fresh_entries({k: v for k, v in state.items() if k == "priors" or k.startswith("measured:")},
                         source)
    return keep | ({"priors_from": source} if keep else {})


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


def suite_sparsegpt(args: argparse.Namespace, suite: str = "sparsegpt") -> dict[str, Any]:
    """``suite``: ``sparsegpt`` (per-block levels, studies/smollm2-<pct>-sparsegpt.yaml),
    ``sparsegpt_modules`` (per-module levels on the sequential-aware database,
    studies/smollm2-<pct>-sparsegpt-modules.yaml) or ``wanda_modules`` (per-module offsets on
    cached Wanda ranks, verified with sequential Wanda, studies/smollm2-<pct>-modules.yaml);
    the same protocol otherwise."""
    # The pretrained predictor's file joins the overrides: every study of the run starts from it.
    pretrained = _pretrained(args, suite)
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
        done[pct] = {} if args.fresh else load_partial(_partial(suite, pct, args), pct)
        # A variant's own choice of priors (its seeds' warm starts) is kept when it has one.
        shared = _shared_priors(suite, pct, args, device, vars(first.verify))
        done[pct] |= {k: v for k, v in shared.items() if k not in done[pct]}

    def save() -> None:
        for pct, state in done.items():
            save_partial(_partial(suite, pct, args), pct, state)

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
            run = run_study(scfg, evaluator=ev, progress=args.progress, verify=False)
            search_s = time.perf_counter() - t
            if "priors" not in state:
                state["priors"] = _choose_priors(run.study, scfg, ev, target) | code_state()
            plan = best_plan(run.study)
            trials = run.study.get_trials(deepcopy=False)
            state[key] = {"label": f"searched seed {seed}", "search_fitness": plan.provenance["fitness"],
                          "trials": len(trials), "warm_starts": len(scfg.warm_start), "search_s": search_s,
                          "complete": sum(1 for tr in trials if tr.state.name == "COMPLETE"),
                          "search_tokens": tokens_read(run.study),
                          **measure(ev, scfg, plan, other, windows), "plan": plan.to_dict(), **code_state()}
            save()
            print(f"  {pct}% searched seed {seed}: fitness {state[key]['search_fitness']:.3f}  ppl "
                  f"{state[key]['ppl']:.3f}  other {state[key]['ppl_other']:.3f}", flush=True)
        cfg = _config(target, args.seeds[0], args, suite=suite)
        # Another process (other seeds) may have measured priors since this one started.
        state |= {k: v for k, v in load_partial(_partial(suite, pct, args), pct).items() if k not in state}
        for family in PRIORS:
            key = f"measured:{family}"
            if key not in state:
                if ev is None:
                    raise SystemExit(f"--report: no measured {family} prior at {pct}%: run the suite first")
                chosen = state["priors"]["best"][family]
                fit = chosen["search_fitness"] if chosen["complete"] else None
                state[key] = {"label": chosen["label"], "search_fitness": fit,
                              **measure(ev, cfg, Plan.from_dict(chosen["plan"]), other, windows),
                              **code_state()}
                save()
            print(f"  {pct}% {state[key]['label']:24s} ppl {state[key]['ppl']:8.3f}  "
                  f"other {state[key]['ppl_other']:8.3f}", flush=True)
        rows += summarise(float(target), state, args.seeds if ev is not None else _seeds(state))
    if ev is not None:
        ev.close()
    return {"suite": suite, "command": command_line(),
            "warm_starts": len(first.warm_start), "seed_warm_starts": "all", "model": args.model,
            "device": device, "dtype": args.dtype,
            "seeds": args.seeds if ev is not None else sorted(set().union(*map(_seeds, done.values()))),
            "offspring": args.offspring if ev is not None else _offspring(done),
            "study": {"config": str(STUDIES / SUITE_STUDIES[suite].replace("{pct}", "<pct>")),
                      "evaluator": first.evaluator.to_dict(), "verify": vars(first.verify),
                      "sampler": first.sampler, "space": first.space},
            "evaluation": {"part": "evaluation", "seqlen": 512, "windows": windows, "windows_other": "all",
                           "other_domain": "/usr/share/common-licenses (all files, concatenated)"},
            "left_out": "BESA (not among the study's warm starts: its own optimisation per plan)",
            "pretrained": _pretrained_meta(pretrained),
            "environment": environment(), "rows": rows, "runs": done}


def _seeds(state: dict[str, Any]) -> list[int]:
    """The seeds one target's state has measured."""
    return sorted(int(k.split(":s")[1]) for k in state if k.startswith("searched:s"))


def _offspring(done: dict[str, Any]) -> int:
    """The searched trials beyond the warm starts that every measured study ran (--report)."""
    counts = {int(r["trials"]) - int(r["warm_starts"]) for st in done.values() for k, r in st.items()
              if k.startswith("searched:s")}
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


def suite_sparsegpt_anchored(args: argparse.Namespace) -> dict[str, Any]:
    """One anchored round on the level database (exploratory): the database re-built on the
    activations of a sequential SparseGPT prune at the sparsegpt suite's best plan of each seed
    in --seeds (so the anchor's fitness is its exact sequential one), --offspring EvoPress
    trials from it, the best of {anchor, the round's best trial} (each measured exactly, which
    re-builds the database at it) pruned and measured as in the sparsegpt suite."""
    from allocsearch.search.anchored import run_anchored
    from allocsearch.search.settings import AnchorSettings, WarmStart

    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    other = other_domain_file(RUNS)
    ev: Evaluator | None = None
    rows: list[dict[str, Any]] = []
    for target in args.targets:
        pct = str(round(target * 100))
        state = json.loads((RUNS / f"quality_sparsegpt_{pct}.partial.json").read_text())[pct]
        for seed in args.seeds:
            start = RUNS / f"anchor_start_{pct}_s{seed}.json"
            Plan.from_dict(state[f"searched:s{seed}"]["plan"]).save(start)
            base = _config(target, seed, args, winners=[])
            cfg = dataclasses.replace(base, output=RUNS / f"{base.name}_anchored_s{seed}", warm_start=(),
                                      n_trials=args.offspring,
                                      anchor=AnchorSettings(1, WarmStart("plan", {}, str(start)), 1))
            if ev is None:
                ev = Evaluator.build(loaded, cfg.evaluator, progress=False)
            t = time.perf_counter()
            run = run_anchored(cfg, evaluator=ev, progress=args.progress, verify=False)
            assert run.best is not None
            row = {"target": float(target), "seed": seed, "start_ppl": state[f"searched:s{seed}"]["ppl"],
                   "start_ppl_other": state[f"searched:s{seed}"]["ppl_other"],
                   "measured": run.measured, "best_from": run.best.provenance["anchored"],
                   "search_s": time.perf_counter() - t,
                   **measure(ev, cfg, run.best, other, args.eval_windows or 40)}
            rows.append(row)
            print(f"  {pct}% seed {seed}: start {row['start_ppl']:.3f} -> anchored best "
                  f"({row['best_from']}) {row['ppl']:.3f}, other {row['ppl_other']:.3f}", flush=True)
    assert ev is not None
    ev.close()
    return {"suite": "sparsegpt_anchored", "command": command_line(),
            "model": args.model, "device": loaded.device.type, "dtype": args.dtype,
            "offspring": args.offspring, "environment": environment(), "rows": rows}
