"""NAS sub-networks in the search: the structure step, priors expressed in spaces, and
studies with measured latency as the second objective."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from optuna.trial import TrialState

from allocsearch.actions import BlockAction
from allocsearch.allocation import get_allocator
from allocsearch.evaluate import Evaluator
from allocsearch.plan import Plan
from allocsearch.profile import Profile
from allocsearch.search import StudyConfig, StudyConfigError, run_study, store, trial_plan
from allocsearch.search.report import build_report
from allocsearch.search.space import SearchSpace, SpaceError, find_space
from tests.helpers import tiny_evaluator, tiny_profile

SPACES = Path(__file__).resolve().parents[2] / "spaces"
EVAL = {"seqlen": 32, "fidelities": [64], "batch_size": 2}
LATENCY = {"metric": "decode", "prefill": 16, "prompt": 4, "decode": 4, "repeats": 1}


@pytest.mark.parametrize("method", ["block_influence", "flap"])
@pytest.mark.parametrize("target", [0.3, 0.5])
def test_free_structure_space_reproduces_structured_priors(method: str, target: float) -> None:
    prof = tiny_profile()
    space = find_space(SPACES / "nas_free.yaml")
    prior = get_allocator(method).allocate(prof, target)
    values = space.params_for_prior(method, {}, prior)
    assert values is not None
    again = space.build_plan(values, prof, prior.target)
    assert again.structured() == prior.structured()
    assert again.budget() == pytest.approx(prior.budget(), abs=1e-12)


def test_spaces_that_cannot_express_a_prior_say_so() -> None:
    prof = tiny_profile()
    flap = get_allocator("flap").allocate(prof, 0.3)
    uniform = get_allocator("uniform").allocate(prof, 0.3)
    assert find_space(SPACES / "blocks.yaml").params_for_prior("flap", {}, flap) is None
    assert find_space(SPACES / "nas_free.yaml").params_for_prior("uniform", {}, uniform) is None
    assert find_space(SPACES / "nas.yaml").params_for_prior("uniform", {}, uniform) is None


def test_drops_the_budget_cannot_absorb_are_undone_most_important_first() -> None:
    prof = tiny_profile()
    space = find_space(SPACES / "nas_free.yaml")
    values = {"depth": 2, "importance_0": 0.9, "importance_1": 0.1, "attention_0": 1.0,
              "attention_1": 1.0, "mlp_0": 1.0, "mlp_1": 1.0}
    plan = space.build_plan(values, prof, 0.5)  # one block is exactly half the parameters
    assert plan.structured() == {1: BlockAction(drop="block")}
    assert plan.provenance["unstructured_instead"] == [0]
    plan = space.build_plan(values, prof, 0.3)  # no drop fits: the MLPs narrow instead
    assert all(a.drop is None for a in plan.structured().values())
    assert plan.provenance["unstructured_instead"] == [0, 1]
    assert all(c.sparsity == 0.0 for n, c in plan.modules.items() if "self_attn" in n)


def test_structure_step_errors_name_the_fault() -> None:
    params = {"depth": {"type": "int", "low": 0, "high": 3},
              "m": {"type": "float", "low": 0.0, "high": 1.0, "per": "block"}}
    with pytest.raises(SpaceError, match="depth and importance go together"):
        SearchSpace.from_dict({"parameters": params, "plan": {"structure": {"depth": "depth"}}})
    with pytest.raises(SpaceError, match=r"unknown role\(s\) \['width'\]"):
        SearchSpace.from_dict({"parameters": params, "plan": {"structure": {"width": "m"}}})
    with pytest.raises(SpaceError, match="must be a float with per: block"):
        SearchSpace.from_dict({"parameters": params, "plan": {"structure": {"mlp": "depth"}}})
    bad = {"lt": {"type": "categorical", "choices": ["drop_head"], "per": "block"}}
    with pytest.raises(SpaceError, match="known: unstructured, dense, drop, drop_attention, drop_mlp"):
        SearchSpace.from_dict({"parameters": bad, "plan": {"layer_type": "lt"}})


def test_layer_type_drops_mix_structure_with_unstructured_sparsity() -> None:
    prof = tiny_profile()
    space = find_space(SPACES / "mixed.yaml")
    values = {"offset_0": 0.0, "offset_1": 0.0, "layer_type_0": "drop_mlp",
              "layer_type_1": "unstructured"}
    plan = space.build_plan(values, prof, 0.5)
    assert plan.structured() == {0: BlockAction(drop="mlp")}
    assert abs(plan.budget() - 0.5) < 1e-6
    free = plan.unstructured_modules()
    assert free and all(0.0 < c.sparsity < 0.95 for c in free.values())


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return tiny_evaluator(StudyConfig.from_dict({"evaluator": EVAL}, Path("x.yaml")).evaluator)


def test_nsga2_with_measured_latency(evaluator: Evaluator, tmp_path: Path) -> None:
    data = {"name": "nas", "target": 0.5, "space": "nas", "n_trials": 6, "evaluator": EVAL,
            "objectives": ["fitness", "latency"], "latency": LATENCY,
            "sampler": {"name": "nsga2", "params": {"population_size": 4}},
            "warm_start": [{"method": "block_influence"}, {"method": "flap"}], "output": str(tmp_path)}
    run = run_study(StudyConfig.from_dict(data, tmp_path / "nas.yaml"), evaluator=evaluator,
                    progress=False, verify=False)
    done = run.study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 6
    assert [t.prior for t in store.trials(run.study)[:2]] == ["block_influence", "flap"]
    for t in done:
        plan = trial_plan(run.study, t)
        assert plan.structured() and t.values[1] > 0
    report = build_report(run.study, tmp_path, plots=True)
    front = [(r.second[1], r.fitness) for r in report.rows if r.second is not None]
    assert len(front) == len(report.rows) and {r.second[0] for r in report.rows if r.second} == {"latency"}
    assert front == sorted(front)
    assert all(nxt[1] < prev[1] for prev, nxt in itertools.pairwise(front))  # slower must be better
    for r in report.rows:
        assert Plan.load(tmp_path / "front" / f"trial_{r.trial}.json").structured()
    assert (tmp_path / "pareto.png").stat().st_size > 5000


def test_latency_config_errors(tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError, match=r"latency\.metric"):
        StudyConfig.from_dict({"latency": {"metric": "fast"}}, tmp_path / "s.yaml")
    with pytest.raises(StudyConfigError, match=r"unknown latency key\(s\) \['batch'\]"):
        StudyConfig.from_dict({"latency": {"batch": 2}}, tmp_path / "s.yaml")
    with pytest.raises(StudyConfigError, match="objectives"):
        StudyConfig.from_dict({"objectives": ["fitness", "speed"]}, tmp_path / "s.yaml")


def _guided(prof: Profile, **fixed: float) -> dict[str, float]:
    values: dict[str, float] = {"depth": 0, "attention_drops": 0}
    for role in ("depth_offsets", "attention_offsets", "mlp_offsets"):
        values |= {f"{role}_{b}": 0.0 for b in range(prof.identity.num_blocks)}
    return values | fixed


def test_guided_space_reproduces_both_priors() -> None:
    prof = tiny_profile(blocks=4)
    space = find_space(SPACES / "nas.yaml")
    depth = get_allocator("block_influence").allocate(prof, 0.5)  # exactly two blocks
    values = space.params_for_prior("block_influence", {}, depth)
    assert values == _guided(prof, depth=2)
    assert space.build_plan(values, prof, 0.5).structured() == depth.structured()
    for target in (0.2, 0.45):
        flap = get_allocator("flap").allocate(prof, target)
        values = space.params_for_prior("flap", {}, flap)
        assert values is not None
        again = space.build_plan(values, prof, target)
        assert again.structured() == flap.structured() and again.budget() == flap.budget()


def test_guided_offsets_move_the_ranking() -> None:
    prof = tiny_profile(blocks=4)
    space = find_space(SPACES / "nas.yaml")
    order = [int(b) for b in np.argsort(prof.influence["block"], kind="stable")]
    plan = space.build_plan(_guided(prof, depth=1), prof, 0.25)
    assert plan.structured() == {order[0]: BlockAction(drop="block")}  # lowest influence
    # Raise the lowest block's key above every other: the second lowest goes instead.
    plan = space.build_plan(_guided(prof, depth=1, **{f"depth_offsets_{order[0]}": 2.0}), prof, 0.25)
    assert plan.structured() == {order[1]: BlockAction(drop="block")}
    # Attention drops take the lowest attention influence among the blocks left.
    attn = [int(b) for b in np.argsort(prof.influence["attention"], kind="stable")]
    plan = space.build_plan(_guided(prof, attention_drops=1), prof, 1 / 12)
    assert plan.structured() == {attn[0]: BlockAction(drop="attention")}
    # A low MLP offset puts a block's channels first in line for the rest of the budget:
    # 7 channels of 96 weights out of 36,864.
    plan = space.build_plan(_guided(prof, **{"mlp_offsets_2": -10.0}), prof, 7 * 96 / 36864)
    assert plan.structured() == {2: BlockAction(mlp_channels=64 - 7)}
