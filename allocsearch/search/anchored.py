"""Sequential-aware search in rounds: one study per anchor plan.

Round r anchors the evaluator at plan A_r (masks scored with the norms a sequential prune at
A_r sees, on the verification's calibration windows), measures A_r's fitness, which is then
that of its exact sequential prune, and runs a study warm started from A_r; the study's best
trial becomes A_{r+1}. After the last round A_{R+1} is measured the same way and the anchor
with the best exact fitness is the result, so a round that made things worse costs only its
trials. Everything is chosen on the search windows; the evaluation split is read only by the
final verification.

Outputs in the study folder: ``anchor_r<r>.json`` (each anchor plan, written before its round
so a re-run resumes the same rounds), ``r<r>/`` (each round's study, a normal study folder
for ``allocsearch study report``), ``anchors.json`` (exact fitness per anchor, the choice and
its verification) and ``best_plan.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import TrialState
from tqdm.auto import tqdm

from allocsearch.evaluate import Evaluator
from allocsearch.models.loading import LoadedModel
from allocsearch.plan import Plan
from allocsearch.search.config import AnchorSettings, StudyConfig, WarmStart
from allocsearch.search.runner import StudyRun, run_study, trial_plan

log = logging.getLogger(__name__)


@dataclass
class AnchoredRun:
    config: StudyConfig
    rounds: list[StudyRun] = field(default_factory=list)
    #: One row per anchor: round, file, exact fitness on the search windows.
    anchors: list[dict[str, Any]] = field(default_factory=list)
    best: Plan | None = None
    verified: dict[str, Any] = field(default_factory=dict)


def _start_plan(config: StudyConfig, ev: Evaluator) -> Plan:
    from allocsearch.allocation import get_allocator

    ws = config.anchor.start or WarmStart("uniform")
    if ws.plan is not None:
        plan = Plan.load(ws.plan)
        plan.check_model(ev.identity)
        return plan
    return get_allocator(ws.method, **ws.params).allocate(ev.profile, config.target)


def _best_trial_plan(run: StudyRun) -> Plan:
    done = run.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise ValueError(f"study {run.study.study_name} has no complete trial")
    return trial_plan(run.study, min(done, key=lambda t: t.values[0]))


def run_anchored(
    config: StudyConfig,
    *,
    loaded: LoadedModel | None = None,
    evaluator: Evaluator | None = None,
    progress: bool = True,
    verify: bool = True,
) -> AnchoredRun:
    """Run (or resume) ``config.anchor.rounds`` anchored rounds of ``config``'s study."""
    if config.anchor.rounds < 1:
        raise ValueError(f"study {config.name!r} has no anchored rounds (anchor.rounds = 0)")
    if loaded is None and evaluator is None:
        from allocsearch.models import load_model

        loaded = load_model(config.model, device=config.device, dtype=config.dtype)
    ev = evaluator or Evaluator.build(loaded, config.evaluator, progress=progress)  # type: ignore[arg-type]
    calibration = config.verify_config().calibration
    out = config.output
    out.mkdir(parents=True, exist_ok=True)
    result = AnchoredRun(config)
    anchor = _start_plan(config, ev)
    for r in range(1, config.anchor.rounds + 2):
        path = out / f"anchor_r{r}.json"
        if path.is_file():  # a re-run continues with the anchors it chose before
            anchor = Plan.load(path)
        else:
            anchor.save(path)
        ev.anchor(anchor, calibration)
        exact = ev.fitness(anchor)
        result.anchors.append({"round": r, "file": path.name, "fitness": exact,
                               "from": anchor.provenance.get("method", "")})
        if progress:
            tqdm.write(f"anchor {r}: exact {config.evaluator.fitness} {exact:.4g} on the search "
                       f"windows ({path.name})")
        if r > config.anchor.rounds:
            break  # the last round's best is measured, not searched from
        warm = (WarmStart("plan", {}, str(path)),) + (config.warm_start if r == 1 else ())
        cfg_r = dataclasses.replace(config, name=f"{config.name}-r{r}", output=out / f"r{r}",
                                    warm_start=warm, anchor=AnchorSettings())
        run = run_study(cfg_r, evaluator=ev, progress=progress, verify=False)
        result.rounds.append(run)
        anchor = _best_trial_plan(run)

    best_row = min(result.anchors, key=lambda a: a["fitness"])
    best = Plan.load(out / best_row["file"])
    best.provenance = {**best.provenance, "anchored_round": best_row["round"],
                       "exact_search_fitness": best_row["fitness"]}
    result.best = best
    ev.anchor(None)
    if verify:
        vc = config.verify_config()
        for label, plan in (("best", best), ("start", Plan.load(out / "anchor_r1.json"))):
            v = ev.verify(plan, vc)
            result.verified[label] = v.to_dict()
            if progress:
                tqdm.write(f"verified {label} anchor with {vc.pruner}: evaluation perplexity "
                           f"{v.ppl:.3f}")
        best.provenance["verified_ppl"] = {vc.pruner: result.verified["best"]["ppl"]}
    best.save(out / "best_plan.json")
    (out / "anchors.json").write_text(json.dumps(
        {"study": config.name, "fitness": config.evaluator.fitness, "anchors": result.anchors,
         "best_round": best_row["round"], "verified": result.verified}, indent=1) + "\n")
    if evaluator is None:
        ev.close()
    return result


def format_anchors(run: AnchoredRun) -> str:
    """The anchors' exact search fitness, the choice and its verification, as text."""
    name = run.config.evaluator.fitness
    lines = [f"study {run.config.name}: {len(run.rounds)} anchored rounds",
             f"{'anchor':>6}  {'exact ' + name:>12}  file"]
    best = run.best.provenance.get("anchored_round") if run.best is not None else None
    for a in run.anchors:
        mark = "  <- best" if a["round"] == best else ""
        lines.append(f"{a['round']:>6}  {a['fitness']:>12.4f}  {a['file']}{mark}")
    for label, v in run.verified.items():
        lines.append(f"verified {label} ({v['pruner']}): evaluation perplexity {v['ppl']:.3f}")
    lines.append(f"best plan: {run.config.output / 'best_plan.json'}")
    return "\n".join(lines)
