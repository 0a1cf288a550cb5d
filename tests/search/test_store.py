"""The study store: one plan codec for trial attributes, records and plan JSON; resume that
refuses a changed protocol before writing anything; verifications keyed by their settings."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from allocsearch.actions import BlockAction
from allocsearch.budget import identity_from_adapter
from allocsearch.data import DataConfig
from allocsearch.evaluate import Draw, Evaluator, Verification, VerifyConfig, verify
from allocsearch.plan import ModelIdentity, ModuleChoice, Plan, block_of
from allocsearch.predictor.records import PlanRecord, read_records, write_records
from allocsearch.pruners import Pattern
from allocsearch.search import ProtocolError, StudyConfig, load_study, run_study, store, trial_plan
from allocsearch.search.records import study_records
from allocsearch.search.report import verdicts
from allocsearch.search.store import StoredTrial
from tests.helpers import tiny_evaluator, tiny_loaded

EVAL = {"seqlen": 32, "fidelities": [64, 128], "batch_size": 2}


def _config(out: Path, extra: dict[str, Any] | None = None) -> StudyConfig:
    data = {"name": "tiny", "target": 0.6, "space": "blocks", "n_trials": 3, "evaluator": EVAL,
            "sampler": "random", "warm_start": [{"method": "uniform"}],
            "verify": {"top": 1, "nsamples": 2, "seqlen": 32, "eval_windows": 2},
            "output": str(out)} | (extra or {})
    return StudyConfig.from_dict(data, out / "tiny.yaml")


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return tiny_evaluator(StudyConfig.from_dict({"evaluator": EVAL}, Path("x.yaml")).evaluator)


def _nas_plan() -> Plan:
    """Block 0 dropped, block 1 narrowed (2 of 4 heads, 24 of 64 MLP channels), block 2
    unstructured at uneven ratios, one module 2:4."""
    lm = tiny_loaded(blocks=3)
    ident = identity_from_adapter(lm.adapter, lm.name)
    actions = {0: BlockAction(drop="block"), 1: BlockAction(heads=2, mlp_channels=24)}
    implied = ident.implied(actions)
    modules = {}
    for i, name in enumerate(ident.shapes):
        if name in implied:
            modules[name] = ModuleChoice(implied[name])
        elif name.endswith("up_proj"):
            modules[name] = ModuleChoice(0.5, Pattern.parse("2:4"))
        else:
            assert block_of(name) == 2
            modules[name] = ModuleChoice(0.3 + 0.05 * i / 3)
    plan = Plan(ident, 0.0, modules, {}, actions)
    plan.target = plan.budget()
    plan.validate()
    return plan


def _same(a: Plan, b: Plan) -> None:
    """Equal plans: modules, patterns, structured actions and target, bit for bit."""
    assert a.model.fingerprint == b.model.fingerprint and a.target == b.target
    assert a.blocks == b.blocks
    assert {n: (c.sparsity, str(c.pattern)) for n, c in a.modules.items()} == \
        {n: (c.sparsity, str(c.pattern)) for n, c in b.modules.items()}


def test_a_nas_plan_round_trips_through_attributes_records_and_plan_json(tmp_path: Path) -> None:
    plan = _nas_plan()
    assert plan.structured()[0].drop == "block" and plan.structured()[1].heads == 2
    # Study attributes.
    study = optuna.create_study()
    store.init_study(study, plan.model, _config(tmp_path).protocol(_space()), {"sampler": "random"})
    trial = study.ask()
    store.write_plan(trial, plan)
    store.write_trial(trial, tokens=128)
    study.tell(trial, 12.5)
    from_attrs = trial_plan(study, study.trials[0])
    _same(from_attrs, plan)
    # Records lines (via the study, then a file).
    [record] = study_records(study)
    _same(record.plan, plan)
    path = write_records([record, PlanRecord(plan, 3.0)], tmp_path / "r.jsonl")
    for back in read_records(path):
        _same(back.plan, plan)
    # Plan JSON.
    _same(Plan.load(plan.save(tmp_path / "plan.json")), plan)


def _space() -> Any:
    from allocsearch.search import find_space

    return find_space("blocks")


def _fingerprint(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file()}


@pytest.mark.parametrize(("change", "message"), [
    ({"evaluator": EVAL | {"fidelities": [128]}}, "fidelities: [64, 128] -> [128]"),
    ({"target": 0.5}, "target: 0.6 -> 0.5"),
    ({"space": "ramp"}, "space: 'blocks' -> 'ramp'"),
    ({"data": {"nsamples": 8}}, "profile.nsamples: 64 -> 8"),
])
def test_resume_with_another_protocol_is_refused_in_one_line_writing_nothing(
    change: dict[str, Any], message: str, evaluator: Evaluator, tmp_path: Path
) -> None:
    run_study(_config(tmp_path), evaluator=evaluator, progress=False, verify=False)
    before = _fingerprint(tmp_path)
    trials = len(load_study(tmp_path).trials)
    with pytest.raises(ProtocolError) as info:
        run_study(_config(tmp_path, change | {"n_trials": 6}), evaluator=evaluator, progress=False)
    text = str(info.value)
    assert "\n" not in text and message in text, text
    assert _fingerprint(tmp_path) == before
    assert len(load_study(tmp_path).trials) == trials


def test_resume_may_change_budget_and_bookkeeping(evaluator: Evaluator, tmp_path: Path) -> None:
    run_study(_config(tmp_path), evaluator=evaluator, progress=False, verify=False)
    more = {"n_trials": 5, "max_tokens": 10_000,
            "sampler": {"name": "tpe", "params": {"n_startup_trials": 2}},
            "verify": {"top": 2, "nsamples": 2, "seqlen": 32, "eval_windows": 2}}
    run = run_study(_config(tmp_path, more), evaluator=evaluator, progress=False, verify=False)
    assert len(run.study.get_trials(states=(TrialState.COMPLETE,))) == 5


def test_a_verification_is_redone_when_its_calibration_changes(
    evaluator: Evaluator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from allocsearch.search import runner

    calls: list[VerifyConfig] = []

    def counted(ev: Evaluator, plan: Plan, config: VerifyConfig) -> Verification:
        calls.append(config)
        return verify(ev, plan, config)

    monkeypatch.setattr(runner, "verify", counted)
    two_families = {"warm_start": [{"method": "uniform"}, {"method": "ramp", "grid": {"slope": [0.1, 0.3]}}],
                    "n_trials": 4}
    run = run_study(_config(tmp_path, two_families), evaluator=evaluator, progress=False)
    first = len(calls)
    # The best trial, and the best trial of each prior family (the lowest verified prior is
    # the report's best prior): ramp's better setting only, not both.
    ranked = store.ranked(run.study)
    families = {t.prior.split()[0]: t.number for t in reversed(ranked) if t.prior}
    searched = next(t.number for t in ranked if t.prior is None)
    assert first == len({ranked[0].number, searched, *families.values()})
    assert set(families) == {"uniform", "ramp"}
    run_study(_config(tmp_path, two_families), evaluator=evaluator, progress=False)
    assert len(calls) == first  # the same settings: read back, not redone
    verify_seed = {"verify": {"top": 1, "nsamples": 3, "seqlen": 32, "eval_windows": 2}}
    run = run_study(_config(tmp_path, two_families | verify_seed), evaluator=evaluator, progress=False)
    assert len(calls) == 2 * first and calls[-1].calibration.nsamples == 3
    stored = store.verifications(run.study)
    assert len(stored) == 2 * first and len({v.result.key for v in stored}) == 2 * first


def test_the_same_plan_verified_twice_gives_the_same_perplexity_to_the_last_bit(
    evaluator: Evaluator,
) -> None:
    plan = _blocks_plan(evaluator)
    config = VerifyConfig("sparsegpt", DataConfig("embedded", 2, 32, 0), seqlen=32, nsamples=3,
                          calibration_seeds=(0, 1, 2), threads=1)
    a, b = verify(evaluator, plan, config), verify(evaluator, plan, config)
    assert [d.ppl for d in a.draws] == [d.ppl for d in b.draws] and a.key == b.key
    assert a.threads == 1 and [d.seed for d in a.draws] == [0, 1, 2]
    # Another draw prunes on other windows: other masks, another number.
    assert len({d.ppl for d in a.draws}) == 3
    assert a.ppl == pytest.approx(sum(d.ppl for d in a.draws) / 3, rel=1e-12)
    assert a.ppl_spread == max(d.ppl for d in a.draws) - min(d.ppl for d in a.draws)
    # A model pruned outside the Evaluator (as `allocsearch prune` does) measures the same.
    from allocsearch.evaluate import verify_plan

    fresh = verify_plan(tiny_loaded(), plan, config, progress=False)
    assert [d.ppl for d in fresh.draws] == [d.ppl for d in a.draws]
    assert Verification.from_dict(a.to_dict()) == a


def _blocks_plan(ev: Evaluator) -> Plan:
    from allocsearch.allocation import get_allocator

    return get_allocator("ramp", slope=0.2).allocate(ev.profile, 0.6)


def _verified(ppl: dict[int, float]) -> Verification:
    return Verification("wanda", tuple(Draw(s, p, 10, 0.6, 0.0, 0.0) for s, p in ppl.items()),
                        settings_key="k")


def _trial(number: int, value: float, prior: str | None) -> StoredTrial:
    return StoredTrial(number, TrialState.COMPLETE, (value,), {}, {}, {}, prior)


def test_a_searched_plan_is_better_only_when_lower_on_every_draw() -> None:
    done = [_trial(0, 1.0, None), _trial(1, 2.0, "ramp slope=0.1"), _trial(2, 3.0, "uniform")]
    lower_everywhere = {0: {"wanda": _verified({0: 9.0, 1: 9.5, 2: 9.9})},
                        1: {"wanda": _verified({0: 10.0, 1: 10.0, 2: 10.0})},
                        2: {"wanda": _verified({0: 12.0, 1: 12.0, 2: 12.0})}}
    [v] = verdicts(done, lower_everywhere)
    assert (v.searched, v.prior, v.lower_on, v.draws, v.better) == (0, 1, 3, 3, True)
    assert "better" in v.describe() and "within noise" not in v.describe()
    lower_on_average = dict(lower_everywhere)
    lower_on_average[0] = {"wanda": _verified({0: 8.0, 1: 8.0, 2: 10.5})}
    [w] = verdicts(done, lower_on_average)
    assert w.ppl < w.prior_ppl and not w.better and w.lower_on == 2
    assert "within noise" in w.describe()
    higher = dict(lower_everywhere)
    higher[0] = {"wanda": _verified({0: 11.0, 1: 11.0, 2: 11.0})}
    [h] = verdicts(done, higher)
    assert h.lower_on == 0 and "worse on every draw" in h.describe()


def test_the_same_pair_is_judged_on_another_domain_too() -> None:
    """``verify.also``: the pair chosen on the evaluation part, compared again draw by draw on
    the other text both were scored on (here better on the main text, within noise there)."""
    from allocsearch.evaluate.verification import SourceScore

    def verified(ppl: dict[int, float], other: dict[int, float]) -> Verification:
        return Verification("sparsegpt", tuple(
            Draw(s, p, 10, 0.7, 0.0, 0.0, also={"licences.txt": SourceScore(other[s], 20)})
            for s, p in ppl.items()), settings_key="k")

    done = [_trial(0, 1.0, None), _trial(1, 2.0, "ramp slope=0.1")]
    both = {0: {"sparsegpt": verified({0: 9.0, 1: 9.0}, {0: 30.0, 1: 50.0})},
            1: {"sparsegpt": verified({0: 10.0, 1: 10.0}, {0: 40.0, 1: 40.0})}}
    main, other = verdicts(done, both)
    assert (main.source, main.lower_on, main.draws, main.label) == ("", 2, 2, "better")
    assert (other.source, other.searched, other.prior, other.lower_on) == ("licences.txt", 0, 1, 1)
    assert (other.ppl, other.prior_ppl, other.label) == (40.0, 40.0, "within noise")
    assert other.describe().startswith("sparsegpt on licences.txt: searched trial 0 40.000")


def test_verify_config_checks_its_settings() -> None:
    with pytest.raises(ValueError, match="repeat a seed"):
        VerifyConfig(calibration_seeds=(0, 0))
    with pytest.raises(ValueError, match="threads must be at least 1"):
        VerifyConfig(threads=0)
    assert VerifyConfig(calibration=DataConfig(seed=4)).seeds == (4,)


def test_a_legacy_study_is_compared_on_what_it_recorded(tmp_path: Path) -> None:
    study = optuna.create_study()
    ident = ModelIdentity.from_dict(_nas_plan().model.to_dict())
    study.set_user_attr("model", ident.to_dict())
    study.set_user_attr("target", 0.7)
    study.set_user_attr("fidelities", [64, 128])
    protocol = _config(tmp_path).protocol(_space())
    with pytest.raises(ProtocolError, match=r"target: 0.7 -> 0.6"):
        store.check_protocol(study, protocol)
    study.set_user_attr("target", 0.6)
    store.check_protocol(study, protocol)


def test_the_protocol_names_the_evaluator_backend_and_ignores_speed_settings(tmp_path: Path) -> None:
    a = _config(tmp_path).protocol(_space(), "f1")
    b = _config(tmp_path, {"evaluator": EVAL | {"batch_size": 8}}).protocol(_space(), "f1")
    assert a.differences(b.flat()) == []
    database = {"evaluator": EVAL | {"masks": "database", "pruner": "sparsegpt"}}
    c = _config(tmp_path, database).protocol(_space())
    # The database backend anchors at the uniform plan unless told otherwise: that changes too.
    assert sorted(c.differences(a.flat())) == [
        "evaluator.masks: 'ranks' -> 'database'", "evaluator.pruner: 'wanda' -> 'sparsegpt'",
        "evaluator.reference: 'none' -> 'uniform'"]
    one_shot = {"evaluator": EVAL | {"masks": "database", "pruner": "sparsegpt", "reference": "none"}}
    d = _config(tmp_path, one_shot).protocol(_space())
    assert {x.split(":")[0] for x in d.differences(a.flat())} == {"evaluator.masks", "evaluator.pruner"}
    assert a.differences(_config(tmp_path).protocol(_space(), "f2").flat()) == ["fingerprint: 'f2' -> 'f1'"]


def test_a_missing_or_broken_warm_start_plan_fails_when_the_config_loads(tmp_path: Path) -> None:
    from allocsearch.search import StudyConfigError

    with pytest.raises(StudyConfigError, match=r"warm start: .*none\.json: cannot read plan"):
        _config(tmp_path, {"warm_start": [{"plan": str(tmp_path / "none.json")}]})
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(StudyConfigError, match="not valid JSON"):
        _config(tmp_path, {"anchor": {"rounds": 1, "start": {"plan": str(tmp_path / "bad.json")}}})


def test_a_study_stored_before_the_reference_key_resumes_only_without_one(tmp_path: Path) -> None:
    """A stored protocol without ``evaluator.reference`` was measured one-shot: resuming it
    with a sequential-aware database (the default now) is refused, resuming it as it was
    (``reference: none``) is not."""
    one_shot = {"evaluator": EVAL | {"masks": "database", "pruner": "sparsegpt", "reference": "none"}}
    old = _config(tmp_path, one_shot).protocol(_space()).flat()
    del old["evaluator.reference"]
    same = _config(tmp_path, one_shot).protocol(_space())
    assert same.differences(old) == []
    default = {"evaluator": EVAL | {"masks": "database", "pruner": "sparsegpt"}}
    ref = _config(tmp_path, default).protocol(_space())
    assert ref.differences(old) == ["evaluator.reference: 'none' -> 'uniform'"]
    legacy = {"target": 0.6}  # a study from before the store kept the evaluator: not compared
    assert ref.differences(legacy) == []
