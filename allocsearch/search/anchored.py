"""Sequential-aware search in rounds: one study per anchor plan.

Round r anchors the evaluator at plan A_r (masks scored with the norms a sequential prune at
A_r sees, on the verification's calibration windows), so A_r's fitness is that of its exact
sequential prune, and runs a study warm started from A_r. The anchored fitness is exact at
A_r only and drifts as trials move away from it, so the round's ``check`` best trials are
then measured exactly (each anchored at itself), and the best plan measured so far becomes
A_{r+1}: a round that found nothing better costs only its trials. Everything is chosen on the
search windows; the evaluation split is read only by the final verification.

Outputs in the study folder: ``anchor_r<r>.json`` (each anchor, written before its round so
a re-run resumes the same rounds), ``r<r>/`` (each round's study, a normal study folder for
``allocsearch study report``), ``anchors.json`` (every plan measured exactly, the choice and
its verification) and ``best_plan.json``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from allocsearch.evaluate import Evaluator
from allocsearch.evaluate.verification import verify as verify_exact
from allocsearch.io import atomic_write_text
from allocsearch.models.loading import LoadedModel
from allocsearch.plan import Plan
from allocsearch.search import store
from allocsearch.search.config import StudyConfig
from allocsearch.search.runner import (
    StudyRun,
    run_study,
    study_evaluator,
    warm_start_plan,
)
from allocsearch.search.settings import AnchorSettings, WarmStart


@dataclass
class AnchoredRun:
    config: StudyConfig
    rounds: list[StudyRun] = field(default_factory=list)
    #: One row per plan measured exactly (anchors and each round's short list): round,
    #: role, plan, exact fitness on the search windows (and the anchored fitness).
    measured: list[dict[str, Any]] = field(default_factory=list)
    best: Plan | None = None
    verified: dict[str, Any] = field(default_factory=dict)


def run_anchored(
    config: StudyConfig,
    *,
    loaded: LoadedModel | None = None,
    evaluator: Evaluator | None = None,
    progress: bool = True,
    verify: bool = True,
) -> AnchoredRun:
    """Run (or resume) ``config.anchor.rounds`` anchored rounds of ``config``'s study."""
    settings = config.anchor
    if settings.rounds < 1:
        raise ValueError(f"study {config.name!r} has no anchored rounds (anchor.rounds = 0)")
    ev = study_evaluator(config, loaded, evaluator, progress)
    try:
        return _run_rounds(config, ev, progress, verify)
    finally:  # an exception never leaves the caller's model pruned or the evaluator anchored
        if ev.anchor_plan is not None:
            ev.anchor(None)
        if evaluator is None:
            ev.close()
        else:
            ev.restore()


def _run_rounds(config: StudyConfig, ev: Evaluator, progress: bool, verify: bool) -> AnchoredRun:
    settings = config.anchor
    calibration = config.verify_config().calibration
    out = config.output
    out.mkdir(parents=True, exist_ok=True)
    result = AnchoredRun(config)
    by_key: dict[tuple[float, ...], tuple[float, Plan]] = {}  # sparsities -> exact, plan

    def key(plan: Plan) -> tuple[float, ...]:
        return tuple(round(v, 7) for v in plan.sparsities().values())

    def exact(plan: Plan, row: dict[str, Any]) -> None:
        """Anchor at ``plan`` and measure it, once: its exact sequential fitness."""
        if key(plan) in by_key:
            return
        ev.anchor(plan, calibration)
        value = ev.fitness(plan)
        by_key[key(plan)] = (value, plan)
        result.measured.append(row | {"fitness": value})
        if progress:
            tqdm.write(f"exact {config.evaluator.fitness} {value:.4g} on the search windows: "
                       f"{row['role']} {row['plan']}")

    anchor = ev.prepare(warm_start_plan(settings.start or WarmStart("uniform"), ev, config.target))
    for r in range(1, settings.rounds + 1):
        path = out / f"anchor_r{r}.json"
        if path.is_file():  # a re-run continues with the anchors it chose before
            anchor = Plan.load(path)
        else:
            anchor.save(path)
        exact(anchor, {"round": r, "role": "anchor", "plan": path.name})
        if ev.anchor_plan is None or key(ev.anchor_plan) != key(anchor):
            ev.anchor(anchor, calibration)
        warm = (WarmStart("plan", {}, str(path)),) + (config.warm_start if r == 1 else ())
        # A seed per round: the same seed would propose round 1's trials again.
        cfg_r = dataclasses.replace(config, name=f"{config.name}-r{r}", output=out / f"r{r}",
                                    warm_start=warm, anchor=AnchorSettings(),
                                    seed=config.seed + r - 1)
        run = run_study(cfg_r, evaluator=ev, progress=progress, verify=False)
        result.rounds.append(run)
        # The short list: anchored fitness is exact at the anchor only, so the round's best
        # few are measured exactly and the best plan measured so far anchors the next round.
        done = store.ranked(run.study)
        picked = 0
        for t in done:  # the best trials whose plans were not measured yet
            if picked == settings.check:
                break
            plan = store.trial_plan(run.study, t)
            if key(plan) in by_key:
                continue
            exact(plan, {"round": r, "role": "candidate", "plan": f"r{r} trial {t.number}",
                         "anchored_fitness": t.values[0]})
            picked += 1
        anchor = min(by_key.values(), key=lambda m: m[0])[1]

    value, best = min(by_key.values(), key=lambda m: m[0])
    best = Plan.from_dict(best.to_dict())  # a copy: its provenance gains the choice
    chosen = next(a for a in result.measured if a["fitness"] == value)
    best.provenance = {**best.provenance, "anchored": chosen["plan"],
                       "exact_search_fitness": value}
    result.best = best
    ev.anchor(None)
    if verify:
        vc = config.verify_config()
        for label, plan in (("best", best), ("start", Plan.load(out / "anchor_r1.json"))):
            v = verify_exact(ev, plan, vc)
            result.verified[label] = v.to_dict()
            if progress:
                tqdm.write(f"verified {label} plan with {vc.pruner}: evaluation perplexity "
                           f"{v.ppl:.3f}")
        best.provenance["verified_ppl"] = {vc.pruner: result.verified["best"]["ppl"]}
    best.save(out / "best_plan.json")
    atomic_write_text(out / "anchors.json", json.dumps(
        {"study": config.name, "fitness": config.evaluator.fitness, "measured": result.measured,
         "best": chosen["plan"], "verified": result.verified}, indent=1) + "\n")
    return result


def format_anchors(run: AnchoredRun) -> str:
    """Every plan measured exactly, the choice and its verification, as text."""
    name = run.config.evaluator.fitness
    lines = [f"study {run.config.name}: {len(run.rounds)} anchored rounds",
             f"{'round':>5}  {'role':9}  {'anchored':>9}  {'exact ' + name:>10}  plan"]
    best = run.best.provenance.get("anchored") if run.best is not None else None
    for a in run.measured:
        mark = "  <- best" if a["plan"] == best else ""
        anchored = f"{a['anchored_fitness']:9.4g}" if "anchored_fitness" in a else f"{'':9}"
        lines.append(f"{a['round']:>5}  {a['role']:9}  {anchored}  {a['fitness']:>10.4f}  "
                     f"{a['plan']}{mark}")
    for label, v in run.verified.items():
        lines.append(f"verified {label} ({v['pruner']}): evaluation perplexity {v['ppl']:.3f}")
    lines.append(f"best plan: {run.config.output / 'best_plan.json'}")
    return "\n".join(lines)
