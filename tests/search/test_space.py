"""Search spaces: every shipped space builds budget-exact plans; bad spaces fail clearly."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from allocsearch.allocation import get_allocator
from allocsearch.allocation.base import unit_cost
from allocsearch.plan import ModelIdentity
from allocsearch.search.layout import SpaceLayout
from allocsearch.search.space import SearchSpace, SpaceError, find_space
from tests.helpers import tiny_profile

SPACES = Path(__file__).resolve().parents[2] / "spaces"
SHIPPED = sorted(p.stem for p in SPACES.glob("*.yaml"))


def _values(space: SearchSpace, identity: ModelIdentity, seed: int) -> dict[str, object]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return space.suggest(study.ask(), SpaceLayout.of(identity))


def test_the_required_spaces_ship() -> None:
    assert {"owl", "alpha", "ramp", "blocks", "blocks_types", "hybrid", "nas", "mixed"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("seed", range(3))
def test_every_shipped_space_meets_its_budget(name: str, seed: int) -> None:
    prof = tiny_profile("llama")
    space = find_space(SPACES / f"{name}.yaml")
    values = _values(space, prof.identity, seed)
    plan = space.build_plan(values, prof, 0.6)  # layer types the budget cannot absorb are undone
    target = space.target_of(values, 0.6)
    if "requested_target" in plan.provenance:  # structured alone: whole channels (tiny: 1/64)
        ident = prof.identity
        total = sum(ident.numel(n) for n in ident.shapes)
        assert abs(plan.budget() - target) <= unit_cost(ident, 0, "mlp") / total + 1e-12
    else:
        assert abs(plan.budget() - target) < 1e-6
    lo, hi = space.bounds
    implied = plan.model.implied(plan.blocks)  # structured modules carry the share removed
    assert all(lo - 1e-9 <= c.sparsity <= hi + 1e-9 or c.pattern.is_nm
               for n, c in plan.modules.items() if n not in implied)
    assert plan.provenance["space"] == space.name


def test_split_moves_sparsity_between_attention_and_mlp_at_equal_block_budget() -> None:
    prof = tiny_profile("llama")
    space = SearchSpace.from_dict({
        "parameters": {"split": {"type": "float", "low": -0.2, "high": 0.2, "per": "block"}},
        "plan": {"split": "split"},
    })
    plan = space.build_plan({"split_0": 0.1, "split_1": -0.05}, prof, 0.5)
    # tiny llama: attention 4 x (32x32 or 16x32 for k/v) = 3072 weights, MLP 3 x 2048 = 6144.
    for name, c in plan.modules.items():
        s = 0.1 if ".0." in name else -0.05
        want = 0.5 + s if "self_attn" in name else 0.5 - s * 3072 / 6144
        assert c.sparsity == pytest.approx(want, abs=1e-9), name
    assert plan.block_sparsity() == pytest.approx([0.5, 0.5], abs=1e-9)


def test_layer_types_dense_and_nm() -> None:
    prof = tiny_profile("llama")
    space = find_space(SPACES / "blocks_types.yaml")
    values: dict[str, object] = {"offset_0": 0.0, "offset_1": 0.0, "split_0": 0.0, "split_1": 0.0,
                                 "layer_type_0": "dense", "layer_type_1": "2:4"}
    plan = space.build_plan(values, prof, 0.25)
    assert all(c.sparsity == 0.0 for n, c in plan.modules.items() if ".0." in n)
    assert all(str(c.pattern) == "2:4" for n, c in plan.modules.items() if ".1." in n)
    assert abs(plan.budget() - 0.25) < 1e-6
    assert "unstructured_instead" not in plan.provenance
    # Block 0 dense + block 1 at 50% cannot reach 60%: the dense block goes back to unstructured.
    plan = space.build_plan(values, prof, 0.6)
    assert plan.provenance["unstructured_instead"] == [0]
    assert all(not c.pattern.is_nm and c.sparsity > 0.6 for n, c in plan.modules.items() if ".0." in n)
    assert all(str(c.pattern) == "2:4" for n, c in plan.modules.items() if ".1." in n)
    assert abs(plan.budget() - 0.6) < 1e-6


def test_priors_map_into_spaces() -> None:
    prof = tiny_profile("llama")
    ramp = get_allocator("ramp", slope=0.3).allocate(prof, 0.6)
    blocks = find_space(SPACES / "blocks.yaml")
    values = blocks.params_for_prior("ramp", {"slope": 0.3}, ramp)
    assert values is not None
    rebuilt = blocks.build_plan(values, prof, 0.6)
    for n, c in rebuilt.modules.items():
        assert c.sparsity == pytest.approx(ramp.modules[n].sparsity, abs=1e-6)
    in_ramp = find_space(SPACES / "ramp.yaml").params_for_prior("ramp", {"slope": 0.3}, ramp)
    assert in_ramp == {"slope": 0.3}
    assert find_space(SPACES / "ramp.yaml").params_for_prior("owl", {}, ramp) is None


@pytest.mark.parametrize(("data", "message"), [
    ({"bogus": 1}, "unknown key(s) ['bogus']"),
    ({"schema_version": 9}, "schema_version 9"),
    ({"parameters": {"x": {"type": "float", "low": 0.3, "high": 0.2}}}, "parameters.x: low (0.3)"),
    ({"parameters": {"x": {"type": "float", "low": 0, "high": 1, "lo": 0}}}, "parameters.x: unknown key"),
    ({"parameters": {"x": {"type": "number", "low": 0, "high": 1}}}, "parameters.x: type must be"),
    ({"parameters": {"x": {"type": "float", "low": 0, "high": 1, "per": "layer"}}}, "per must be"),
    ({"parameters": {"x": {"type": "categorical", "choices": []}}}, "non-empty choices"),
    ({"plan": {"offset": "nope"}}, "plan.offset: 'nope' names no declared parameter"),
    ({"parameters": {"x": {"type": "float", "low": 0, "high": 1}}, "plan": {"offset": "x"}},
     "must be a float with per: block"),
    ({"plan": {"base": {"allocator": "magic"}}}, "unknown allocator 'magic'"),
    ({"plan": {"base": {"allocator": "ramp", "params": {"slope": "$s"}}}}, "$s names no declared"),
    ({"plan": {"shuffle": 1}}, "unknown step(s) ['shuffle']"),
    ({"parameters": {"t": {"type": "categorical", "choices": ["3:2"], "per": "block"}},
      "plan": {"layer_type": "t"}}, "bad choice '3:2'"),
    ({"bounds": [0.5, 0.2]}, "bounds must be"),
])
def test_bad_spaces_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(SpaceError) as exc:
        SearchSpace.from_dict(data, "bad.yaml")
    assert message in str(exc.value) and "bad.yaml" in str(exc.value)


def test_malformed_yaml_and_unknown_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters: [unclosed")
    with pytest.raises(SpaceError, match="not valid YAML"):
        SearchSpace.load(bad)
    with pytest.raises(SpaceError, match=r"no search space .nope.; known: .*blocks"):
        find_space("nope")
