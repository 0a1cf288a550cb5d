"""Plans: round trip, budget, and a clear error for every bad input (writing nothing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from allocsearch.budget import identity_from_adapter, plan_from_values
from allocsearch.cli import main
from allocsearch.export import to_evopress, to_llmcompressor
from allocsearch.plan import Plan, PlanError
from allocsearch.pruners import Pattern
from tests.helpers import tiny_loaded


@pytest.fixture()
def plan() -> Plan:
    lm = tiny_loaded("llama")
    ident = identity_from_adapter(lm.adapter, "tiny-llama")
    names = list(ident.shapes)
    values = {n: 0.3 + 0.4 * i / len(names) for i, n in enumerate(names)}
    return plan_from_values(ident, 0.6, values, patterns={names[5]: Pattern(2, 4)},
                            provenance={"method": "test", "seed": 3})


def test_round_trip(plan: Plan, tmp_path: Path) -> None:
    path = plan.save(tmp_path / "p.json")
    again = Plan.load(path)
    assert again.sparsities() == plan.sparsities()
    assert again.modules == plan.modules
    assert again.model == plan.model
    assert again.provenance == {"method": "test", "seed": 3}
    assert abs(again.budget() - 0.6) < 1e-9
    data = json.loads(path.read_text())
    assert data["schema_version"] == 2
    assert data["modules"]["model.layers.0.mlp.up_proj"]["pattern"] == "2:4"  # names[5]
    assert data["modules"]["model.layers.0.mlp.gate_proj"]["pattern"] == "unstructured"


def test_budget_is_parameter_weighted(plan: Plan) -> None:
    total = sum(plan.model.numel(n) for n in plan.modules)
    manual = sum(c.sparsity * plan.model.numel(n) for n, c in plan.modules.items()) / total
    assert plan.budget() == pytest.approx(manual, abs=1e-15)
    assert plan.budget() == pytest.approx(0.6, abs=1e-9)


def _corrupt(plan: Plan, edit: Any) -> dict[str, Any]:
    data = plan.to_dict()
    edit(data)
    return data


def _first(data: dict[str, Any]) -> str:
    return str(next(iter(data["modules"])))


CASES = [
    ("unknown module", lambda d: d["modules"].__setitem__("model.layers.9.mlp.up_proj",
                                                          {"sparsity": 0.5}), "unknown module names"),
    ("missing module", lambda d: d["modules"].pop(_first(d)), "missing module names"),
    ("sparsity 1.0", lambda d: d["modules"][_first(d)].__setitem__("sparsity", 1.0),
     "outside [0, 1)"),
    ("negative", lambda d: d["modules"][_first(d)].__setitem__("sparsity", -0.1), "outside [0, 1)"),
    ("bad N:M", lambda d: d["modules"][_first(d)].__setitem__("pattern", "5:4"), "invalid N:M"),
    ("N:M mismatch", lambda d: d["modules"][_first(d)].__setitem__("pattern", "1:4"),
     "implies sparsity 0.75"),
    ("budget", lambda d: d.__setitem__("target", 0.65), "misses its target"),
    ("version", lambda d: d.__setitem__("schema_version", 7), "unsupported schema_version 7"),
    ("fingerprint", lambda d: d["model"].__setitem__("fingerprint", "0" * 16), "fingerprint"),
    ("no modules", lambda d: d.pop("modules"), "missing key 'modules'"),
]


@pytest.mark.parametrize(("label", "edit", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_plans_fail_clearly(plan: Plan, tmp_path: Path, label: str, edit: Any,
                                message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_corrupt(plan, edit)))
    with pytest.raises(PlanError, match=message.replace("[", r"\[").replace(")", r"\)")):
        Plan.load(path)
    # The CLI refuses it too, before loading any model, and writes nothing.
    out = tmp_path / "out"
    assert main(["prune", "--plan", str(path), "--out", str(out), "--quiet"]) == 2
    assert main(["export", str(path), "--format", "evopress", "--out", str(out), "--quiet"]) == 2
    assert not out.exists()


def test_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"schema_version": 1, "model": ')
    with pytest.raises(PlanError, match=r"not valid JSON \(line 1"):
        Plan.load(path)


def test_plan_for_another_model(plan: Plan) -> None:
    other = tiny_loaded("opt")
    with pytest.raises(PlanError, match="plan is for another model"):
        plan.check_model(identity_from_adapter(other.adapter, "tiny-opt"))


def test_save_refuses_an_invalid_plan(plan: Plan, tmp_path: Path) -> None:
    plan.target = 0.9
    with pytest.raises(PlanError, match="misses its target"):
        plan.save(tmp_path / "p.json")
    assert not list(tmp_path.iterdir())


def test_exports(plan: Plan) -> None:
    import yaml

    text = to_llmcompressor(plan, "wanda")
    recipe = yaml.safe_load(text)
    mods = recipe["sparsity_stage"]["sparsity_modifiers"]
    assert set(mods) == {"WandaPruningModifier", "WandaPruningModifier_1"}
    flat = {n: s for m in mods.values() for n, s in zip(m["targets"], m["sparsity"], strict=True)}
    assert flat == pytest.approx({n: round(c.sparsity, 6) for n, c in plan.modules.items()})
    assert all(m["ignore"] == ["re:.*lm_head"] for m in mods.values())
    assert sorted(m["mask_structure"] for m in mods.values()) == ["0:0", "2:4"]
    lines = to_evopress(plan).splitlines()
    assert len(lines) == len(plan.modules)
    name, value = lines[0].split(": ")
    assert float(value) == pytest.approx(plan.modules[name].sparsity, abs=1e-6)


def test_plan_show_writes_table_and_png(plan: Plan, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = plan.save(tmp_path / "p.json")
    assert main(["plan", "show", str(path), "--compare", str(path)]) == 0
    out = capsys.readouterr().out
    assert "block" in out and "budget 0.600000" in out
    png = tmp_path / "p.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
