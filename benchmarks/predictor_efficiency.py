"""Does short-listing save real evaluations? SmolLM2-135M at 70%, four arms side by side at
equal search tokens, and the EvoPress-style sampler at five times those tokens.

    python benchmarks/predictor_efficiency.py                  # resumable; hours on one CPU core
    python benchmarks/predictor_efficiency.py --arms tpe pretrained --seeds 0
    python benchmarks/predictor_efficiency.py --curves-only 0.6 0.7 &   # the damage arm's curves,
    python benchmarks/predictor_efficiency.py --curves-only 0.75        # split over two cores
    python benchmarks/predictor_efficiency.py --curves-only 0.7 --centres "ramp slope=0.3"
    python benchmarks/predictor_efficiency.py --variant probe --arms pretrained_damage_probe &
    python benchmarks/predictor_efficiency.py --variant probe --arms pretrained_damage

Arms (studies/smollm2-70.yaml, uniform warm start only, fitness = perplexity on ``--fidelity``
search tokens, ``--max-tokens`` search tokens each, TPE with 10 random start-up trials):

- ``tpe``: TPE alone;
- ``online``: TPE + short-list, the predictor (the default model) learning online from the
  study's trials after ``--warmup`` of them;
- ``pretrained``: TPE + short-list from the first searched trial, the predictor (default model)
  pretrained on the 50/60/75% studies of ``benchmarks/predictor_data.py`` (not 70%) and
  retrained on the study's trials as they come;
- ``pretrained_additive``: the same with the additive (ridge) model;
- ``pretrained_damage``: ``pretrained`` plus measured damage (``predictor.damage``): the block
  curves around the uniform plan and a steep ramp at 60/70/75% that
  ``benchmarks/predictor_damage.py`` measures with the same Evaluator, read from the library's
  cache (measured here, about 1.5 h of one core, where absent). Their search tokens are a
  one-off per model and Evaluator, shared by every study at those targets; each row reports
  them (``damage_tokens``, and ``damage_tokens_target``: the curves at the study's own target,
  the only ones its plans read) beside the study's own;
- ``pretrained_damage_probe``: ``pretrained_damage`` whose rounds measure their ``--probe``
  best candidates on the first search window and queue the ``k`` best by prediction and probe
  stacked (``predictor.probe``, :mod:`allocsearch.search.probing`); the probes' tokens count in
  its ``--max-tokens``, so it runs fewer trials;
- ``evopress``: the EvoPress-style sampler and its multi-step selection (fidelities 2048/8192),
  ``--evopress-tokens`` search tokens (491,520, as in the samplers suite).

Short-listing arms take ``--share`` of their searched trials from the short list. Reported
per run: real evaluations and search tokens until the best fitness reaches the ramp prior's
(slope 0.3, measured in the same run), the best fitness, and the best trial verified by a
sequential Wanda prune (the study config's verification, ``--draws`` calibration draws, 3 as
the study config's; each draw's pruned model also scored on another domain, the licences Debian
ships, unless ``--no-other-domain``).
Writes benchmarks/results/predictor_efficiency_<device>.json at the end. Each finished run goes
into benchmarks/results/pending/predictor_efficiency_<device>.json.partial (committed while the
benchmark is unfinished, so a fresh clone resumes it), and an interrupted benchmark resumes with
the first run it had not finished; that run's study starts again from its first trial, as in a
straight run, not from where it stopped (the partial file leaves the repository with the
commit of the finished result). When only the default predictor model changed, ``--keep tpe
evopress`` takes those arms' runs (which use no predictor) from the committed result, marked
``kept_from`` with the commit that measured them, if that result ran with the same settings and
verification on the same library code, less the predictor package's model code that those arms
never run (:func:`predictor_code`); the other arms run again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _code_state import code_state, library_changed_since, measured_elsewhere, predictor_code
from _common import (
    PENDING,
    RESULTS,
    RUNS,
    STUDIES,
    add_model_args,
    environment,
    other_domain_file,
    predictor_records,
    print_table,
    records_digest,
    start_afresh,
    write_json,
)

from allocsearch.allocation import get_allocator
from allocsearch.evaluate import Evaluator, Verification, verify
from allocsearch.io import atomic_write_text
from allocsearch.models import load_model
from allocsearch.predictor import Predictor
from allocsearch.predictor.base import DEFAULT_MODEL
from allocsearch.predictor.damage import CENTRES, DamageCurves, measure_damage
from allocsearch.predictor.features import FeatureTable
from allocsearch.search import StudyConfig, run_study, store

#: The runs' study folders, pretrained predictors and damage curves (git-ignored).
FOLDER = RUNS / "predictor_efficiency"
ARMS = ("tpe", "online", "pretrained", "pretrained_additive", "pretrained_damage", "pretrained_damage_probe",
        "evopress")
DAMAGE_ARMS = ("pretrained_damage", "pretrained_damage_probe")
#: Arms whose runs do not use a predictor: ``--keep`` may take them from the committed result
#: (same settings and verification, measured on the same library code) when only the default
#: model changed. A resumed result's manifest names only its last process's commit, so each
#: row records its own (``commit``): the TPE rows once kept as 568f618's had been measured at
#: 4e9544d (the result file's history), and one of them did not reproduce on later code.
KEEPABLE = ("tpe", "evopress")
#: Options that choose what a process does, not how the arms are measured: left out of the
#: result's settings, which a later ``--keep`` compares.
OPERATIONAL = ("progress", "arms", "seeds", "report", "keep", "curves_only", "centres", "variant")
#: Options added since results were first written, at their defaults: a committed result
#: without them ran as with these (``--keep`` compares settings).
ADDED = {"probe": 8}
#: What each arm's summary reports (the other domain's only where the verification scored one).
METRICS = ("evals_to_ramp", "tokens_to_ramp", "best_fitness", "best_wanda_ppl", "best_wanda_ppl_other")
PRETRAIN_TARGETS = (0.5, 0.6, 0.75)
#: The targets of the ``pretrained_damage`` arm's curves: the study's own and the nearest ones
#: the pretraining records read (benchmarks/predictor_damage.py's defaults).
DAMAGE_TARGETS = (0.6, 0.7, 0.75)
#: The short-list's predictor model of each arm that has one.
ARM_MODEL = {"online": DEFAULT_MODEL, "pretrained": DEFAULT_MODEL, "pretrained_additive": "additive",
             "pretrained_damage": DEFAULT_MODEL, "pretrained_damage_probe": DEFAULT_MODEL}


def arm_config(arm: str, seed: int, args: argparse.Namespace, files: dict[str, Path],
               damage: Path | None = None, other: str | None = None) -> StudyConfig:
    """The study of ``arm`` at ``seed``; ``other``: a source each verification draw also scores."""
    tokens = args.evopress_tokens if arm == "evopress" else args.max_tokens
    over = [f"seed={seed}", f"device={args.device}", f"dtype={args.dtype}", "warm_start=[{method: uniform}]",
            "verify.top=1", f"verify.calibration_seeds={list(range(args.draws))}", f"max_tokens={tokens}",
            "n_trials=100000"]
    if other is not None:
        over.append(f"verify.also=[{other}]")
    if arm == "evopress":
        over += ["sampler.name=evopress", "sampler.params={}", "pruner.name=evopress", "pruner.params={}"]
    else:
        over += [f"evaluator.fidelities=[{args.fidelity}]", "pruner.name=none", "pruner.params={}",
                 "sampler.params={n_startup_trials: 10}"]
    common = f"pool: {args.pool}, k: {args.k}, share: {args.share}"
    if arm == "online":
        over.append(f"predictor={{model: {DEFAULT_MODEL}, warmup: {args.warmup}, {common}}}")
    elif arm in DAMAGE_ARMS:
        if damage is None:
            raise ValueError(f"the {arm} arm needs the damage curves' file")
        probe = f", probe: {args.probe}" if arm == "pretrained_damage_probe" else ""
        over.append(f"predictor={{file: {files[arm]}, damage: {damage}, {common}{probe}}}")
    elif arm.startswith("pretrained"):
        over.append(f"predictor={{file: {files[arm]}, {common}}}")
    cfg = StudyConfig.load(STUDIES / "smollm2-70.yaml", over)
    name = f"eff-{arm}-s{seed}"
    return dataclasses.replace(cfg, name=name, output=FOLDER / name)


def pretrain(table: FeatureTable, device: str) -> dict[str, Path]:
    """The pretrained predictors (default model and additive) on the 50/60/75% studies."""
    records = [r for r in predictor_records(device)[0]
               if any(abs(r.target - t) < 1e-9 for t in PRETRAIN_TARGETS)]
    if not records:
        raise SystemExit("no 50/60/75% predictor studies: run benchmarks/predictor_data.py first")
    out = {}
    for arm, kind in ((a, m) for a, m in ARM_MODEL.items() if a.startswith("pretrained")):
        path = FOLDER / f"pretrained-{kind}-{records_digest(records)}.json"
        if not path.is_file():
            Predictor.train(table, records, model=kind, members=5, seed=0).save(path)
        out[arm] = path
    print(f"pretrained on {len(records)} plans of {len({r.study for r in records})} studies "
          f"at {PRETRAIN_TARGETS}", flush=True)
    return out


def measure_curves(ev: Evaluator, tokens: int, targets: Sequence[float],
                   centres: Sequence[str] = CENTRES) -> DamageCurves:
    """Block curves around ``centres`` (every one by default) at ``targets``, ``tokens`` search
    tokens each (read from the library's cache where measured before, written to it otherwise)."""
    return DamageCurves(tuple(measure_damage(ev, t, c, tokens=tokens, progress=True)
                              for t in targets for c in centres))


def damage_curves(ev: Evaluator, tokens: int) -> tuple[Path, DamageCurves]:
    """The ``pretrained_damage`` arm's curves (every centre at :data:`DAMAGE_TARGETS`, ``tokens``
    search tokens each), saved where its study config reads them."""
    curves = measure_curves(ev, tokens, DAMAGE_TARGETS)
    path = curves.save(FOLDER / f"damage-{tokens}.json")
    print(f"damage curves: {len(curves.entries)} (target, centre), {curves.tokens_read:,} search tokens",
          flush=True)
    return path, curves


def damage_tokens(curves: DamageCurves, target: float) -> dict[str, int]:
    """What the curves cost in search tokens: all of them, and those at ``target`` (what a
    study there reads; the others only weigh the pretraining records' damage)."""
    own = sum(e.curves.tokens_read for e in curves.entries if abs(e.target - target) < 1e-9)
    return {"damage_tokens": curves.tokens_read, "damage_tokens_target": own}


def other_ppl(verified: Verification) -> dict[str, float]:
    """``{"wanda_ppl_other": ...}``: the other domain's perplexity (mean over the draws) where
    the verification scored one, else empty."""
    return {"wanda_ppl_other": next(iter(verified.also_ppl.values()))} if verified.draws[0].also else {}


def reach(trials: list[store.StoredTrial], threshold: float) -> tuple[int | None, int | None]:
    """(search tokens, real evaluations) until the best fitness is at or below ``threshold``; a
    screening round's probes (read before its first proposal) count from that trial on."""
    tokens, rounds = 0, set()
    for n, t in enumerate(trials, 1):
        tokens += t.tokens
        if t.screened is not None and t.screened["round"] not in rounds:
            rounds.add(t.screened["round"])
            tokens += int(t.screened.get("probe_tokens", 0))
        if t.value is not None and t.value <= threshold:
            return tokens, n
    return None, None


def one_run(arm: str, seed: int, cfg: StudyConfig, ev: Evaluator, ramp_fitness: float,
            progress: bool) -> dict[str, Any]:
    """One study; the EvoPress-style arm (other fidelities) builds and closes its own evaluator."""
    t = time.perf_counter()
    shared = ev if arm != "evopress" else None
    if shared is None:
        # Its own evaluator takes the model's weights as they are for the dense ones: put the
        # dense weights back, whatever ``ev`` last wrote (the ramp's fitness leaves its masks;
        # the arms on ``ev`` need no restore: its backend knows what it wrote).
        ev.restore()
    run = run_study(cfg, loaded=ev.loaded, evaluator=shared, progress=progress, verify=True)
    trials = sorted((x for x in store.trials(run.study) if x.state.name in ("COMPLETE", "PRUNED")),
                    key=lambda x: x.number)
    best = store.ranked(run.study)[0]
    tokens, evals = reach(trials, ramp_fitness)
    verified = run.verified[best.number]
    other = {f"best_{k}": v for k, v in other_ppl(verified).items()}
    setup = store.setup_tokens(run.study)  # the probes of a probed short-list (0 in the other arms)
    return {"arm": arm, "seed": seed, "model": ARM_MODEL.get(arm), "trials": len(trials),
            "screened_trials": sum(x.screened is not None for x in trials),
            "search_tokens": sum(x.tokens for x in trials) + setup, "probe_tokens": setup,
            "tokens_to_ramp": tokens,
            "evals_to_ramp": evals, "best_fitness": best.value, "best_trial": best.number,
            "best_wanda_ppl": verified.ppl, "best_wanda_draws": verified.by_seed, **other,
            "seconds": time.perf_counter() - t, **code_state()}


def merge_partial(partial: Path, runs: list[dict[str, Any]], keep: Sequence[str],
                  ramp: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Write ``runs`` (and the ramp's figures) into the partial file, keeping the runs another
    process (other arms, one core each) wrote there meanwhile, less the rows an earlier
    ``--keep`` took for arms not in ``keep`` and the rows measured on other library code (they
    run again); returns the merged list."""
    earlier = json.loads(partial.read_text()) if partial.is_file() else {}
    merged = {(r["arm"], r["seed"]): r for r in [*earlier.get("runs", []), *runs]
              if (r["arm"] in keep if r.get("kept_from") else not measured_elsewhere(r))}
    out = sorted(merged.values(), key=lambda r: (r["seed"], ARMS.index(r["arm"])))
    partial.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(partial, json.dumps({"runs": out, "ramp": ramp or earlier.get("ramp")}, indent=1))
    return out


def kept_runs(path: Path, arms: list[str], settings: dict[str, Any],
              verify: dict[str, Any]) -> list[dict[str, Any]]:
    """The committed result's runs of ``arms`` (each marked with the commit that measured it),
    only when that result ran with these settings and this verification, and only the rows
    measured on the library code this run uses; else none."""
    if not arms or not path.is_file():
        return []
    old = json.loads(path.read_text())
    # A verification key added since the result was written counts as equal at its empty default.
    verify = {k: v for k, v in json.loads(json.dumps(verify)).items() if k in old.get("verify", {}) or v}
    settings = {k: v for k, v in settings.items() if k in old.get("settings", {}) or ADDED.get(k, v) != v}
    if old.get("settings") != settings or old.get("verify") != verify:
        print(f"not keeping runs from {path.name}: measured with other settings", flush=True)
        return []
    commit = old["manifest"]["commit"]
    rows = [r | {"kept_from": r.get("kept_from", r.get("commit", commit))}
            for r in old["runs"] if r["arm"] in arms]
    unrun = predictor_code()
    stale = sorted({r["kept_from"] for r in rows if library_changed_since(r["kept_from"], unrun)})
    if stale:
        print(f"not keeping runs measured at {', '.join(c[:10] for c in stale)}: the library has "
              "changed since", flush=True)
    return [r for r in rows if r["kept_from"] not in stale]


def summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for arm in dict.fromkeys(r["arm"] for r in runs):
        mine = [r for r in runs if r["arm"] == arm]
        for key in METRICS:
            if not any(key in r for r in mine):  # the other domain: only where verification scored one
                continue
            vals = [r[key] for r in mine if r.get(key) is not None]
            out.append({"arm": arm, "metric": key, "runs": len(mine), "reached": len(vals),
                        "median": statistics.median(vals) if vals else None,
                        "min": min(vals, default=None), "max": max(vals, default=None)})
    return out


def arm_rows(runs: list[dict[str, Any]], stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per arm (the table BENCHMARKS.md shows), from the runs and their ``summary``:
    seeds, how many reached the ramp's fitness and after how many real evaluations (median),
    best fitness and verified perplexity (median, and the verified range)."""
    by = {(s["arm"], s["metric"]): s for s in stats}
    out = []
    for arm in dict.fromkeys(r["arm"] for r in runs):
        mine = [r for r in runs if r["arm"] == arm]
        reach, ppl = by[(arm, "evals_to_ramp")], by[(arm, "best_wanda_ppl")]
        out.append({"arm": arm, "model": ARM_MODEL.get(arm), "seeds": len(mine),
                    "search_tokens": statistics.median(r["search_tokens"] for r in mine),
                    "reached_ramp": reach["reached"], "evals_to_ramp": reach["median"],
                    "best_fitness": by[(arm, "best_fitness")]["median"],
                    "verified": ppl["median"], "verified_min": ppl["min"], "verified_max": ppl["max"],
                    "kept": any(r.get("kept_from") for r in mine)}
                   | ({"verified_other": by[(arm, "best_wanda_ppl_other")]["median"]}
                      if (arm, "best_wanda_ppl_other") in by else {})
                   | {k: mine[0][k] for k in ("damage_tokens", "damage_tokens_target") if k in mine[0]})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--fidelity", type=int, default=2048)
    p.add_argument("--max-tokens", type=int, default=98304, help="one fifth of 491,520")
    p.add_argument("--evopress-tokens", type=int, default=491520)
    p.add_argument("--pool", type=int, default=2000)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--share", type=float, default=0.5)
    p.add_argument("--probe", type=int, default=ADDED["probe"],
                   help="candidates the pretrained_damage_probe arm probes per round (k of them queued)")
    p.add_argument("--variant", default=None,
                   help="write predictor_efficiency_<device>_<VARIANT>.json (and its own partial file): "
                        "a subset of arms measured again beside the full result, e.g. a new arm and "
                        "the one it is compared with")
    p.add_argument("--warmup", type=int, default=16)
    p.add_argument("--draws", type=int, default=3, help="calibration draws of the verification")
    p.add_argument("--other-domain", action=argparse.BooleanOptionalAction, default=True,
                   help="also score each draw's pruned model on another domain (Debian's licences)")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--keep", nargs="+", default=[], choices=KEEPABLE,
                   help="arms to take from the committed result instead of running them again (only "
                        "when it ran with the same settings and verification): the arms that use no "
                        "predictor, when only the default model changed")
    p.add_argument("--curves-only", type=float, nargs="+", default=None, metavar="TARGET",
                   help=f"measure the pretrained_damage arm's curves at these of its targets "
                        f"{list(DAMAGE_TARGETS)} into the library's cache, and stop: one process per "
                        f"share of them, before the arm runs")
    p.add_argument("--centres", nargs="+", default=None, choices=CENTRES,
                   help="with --curves-only: only the curves around these centres (a second process "
                        "can take a target's other centre while the first measures the one before)")
    p.add_argument("--report", action="store_true",
                   help="write the results JSON from the runs measured so far, without running more")
    args = p.parse_args()
    unknown = sorted(set(args.curves_only or ()) - set(DAMAGE_TARGETS))
    if unknown:
        p.error(f"--curves-only: the damage arm's curves are at {list(DAMAGE_TARGETS)}, not {unknown}")
    if args.centres and not args.curves_only:
        p.error("--centres chooses the curves --curves-only measures; the arms use every centre")

    name = f"predictor_efficiency_{result_device(args)}{'_' + args.variant if args.variant else ''}.json"
    partial = PENDING / f"{name}.partial"  # hours: committed between sessions
    FOLDER.mkdir(parents=True, exist_ok=True)
    other = other_domain_file(RUNS) if args.other_domain else None  # written once, read by every arm
    base = arm_config("tpe", 0, args, {}, other=other)
    if args.report:
        if not partial.is_file():
            raise SystemExit(f"no runs to report: {partial} is absent (a finished result's commit "
                             "removes it; run the benchmark to measure)")
        earlier = json.loads(partial.read_text())
        ramp = earlier.get("ramp") or json.loads((RESULTS / name).read_text())["ramp"]
        return write_report(args, name, base, merge_partial(partial, [], args.keep), ramp)
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    runs = merge_partial(partial, [], args.keep)
    keep = kept_runs(RESULTS / name, [a for a in args.keep if not any(r["arm"] == a for r in runs)],
                     settings_of(args), dataclasses.asdict(base.verify))
    if keep:
        runs = merge_partial(partial, keep, args.keep)
    ev = Evaluator.build(loaded, base.evaluator, progress=False)
    if args.curves_only:
        centres = args.centres or CENTRES
        curves = measure_curves(ev, args.fidelity, args.curves_only, centres)
        print(f"damage curves at {args.curves_only} around {list(centres)}: {curves.tokens_read:,} "
              "search tokens, in the library's cache", flush=True)
        return
    pretrained = any(a.startswith("pretrained") for a in args.arms)
    files = pretrain(FeatureTable.from_profile(ev.profile), loaded.device.type) if pretrained else {}
    damage, extra = None, {}
    if set(DAMAGE_ARMS) & set(args.arms):
        damage, curves = damage_curves(ev, args.fidelity)
        extra = damage_tokens(curves, base.target)
    plan = get_allocator("ramp", slope=0.3).allocate(ev.profile, base.target)
    checked = verify(ev, plan, base.verify_config())
    ramp = {"slope": 0.3, "fitness": ev.fitness(plan), "wanda_ppl": checked.ppl} | other_ppl(checked)
    print(f"ramp 0.3: fitness {ramp['fitness']:.3f} at {args.fidelity} tokens, verified "
          f"{ramp['wanda_ppl']:.3f}", flush=True)
    for seed in args.seeds:
        for arm in args.arms:
            if any((r["arm"], r["seed"]) == (arm, seed) for r in runs):
                continue
            cfg = arm_config(arm, seed, args, files, damage, other)
            start_afresh(cfg.output)  # not in the partial file: it did not finish
            runs.append(one_run(arm, seed, cfg, ev, ramp["fitness"], args.progress)
                        | (extra if arm in DAMAGE_ARMS else {}))
            r = runs[-1]
            print(f"  {arm:20s} seed {seed}: best {r['best_fitness']:.2f}, verified "
                  f"{r['best_wanda_ppl']:.2f}; ramp after {r['evals_to_ramp']} evaluations", flush=True)
            runs = merge_partial(partial, runs, args.keep, ramp)
    ev.close()
    write_report(args, name, base, merge_partial(partial, runs, args.keep, ramp), ramp)


def result_device(args: argparse.Namespace) -> str:
    """The device a result is named and recorded for (its file name, its records, its protocol)."""
    return "cuda" if args.device == "cuda" else "cpu"


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The options a result's runs were measured with."""
    return {k: v for k, v in vars(args).items() if k not in OPERATIONAL}


def write_report(args: argparse.Namespace, name: str, base: StudyConfig, runs: list[dict[str, Any]],
                 ramp: dict[str, Any]) -> None:
    rows = summary(runs)
    print_table(runs, ["arm", "seed", "trials", "screened_trials", "search_tokens", "evals_to_ramp",
                       "best_fitness", "best_wanda_ppl"])
    print_table(rows, ["arm", "metric", "runs", "reached", "median", "min", "max"])
    settings = settings_of(args)
    device = result_device(args)
    out = write_json(name, {"target": base.target, "settings": settings, "default_model": DEFAULT_MODEL,
                            "records_digest": records_digest(predictor_records(device)[0]),
                            "ramp": ramp, "verify": dataclasses.asdict(base.verify),
                            "rows": arm_rows(runs, rows), "runs": runs, "summary": rows,
                            "environment": environment()},
                     {"device": device, "dtype": args.dtype,
                      "model": args.model, "data": "embedded", "seeds": sorted({r["seed"] for r in runs})})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
