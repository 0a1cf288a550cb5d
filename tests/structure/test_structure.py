"""Structured actions on tiny models: masked == physical, exact accounting, saving/reloading,
and bad actions refused before anything is written."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from allocsearch.actions import BlockAction
from allocsearch.budget import plan_from_actions
from allocsearch.cli import main
from allocsearch.export import export_plan
from allocsearch.models import LoadedModel, ModelAdapter
from allocsearch.models.loading import STRUCTURE_FILE, load_structured
from allocsearch.plan import Plan, PlanError
from allocsearch.plan_view import plan_table
from allocsearch.profile import Profile
from allocsearch.structure import StructureMasks, remove_structure, save_structured, select_structure
from tests.helpers import tiny_profile

# tiny llama/qwen3: 2 blocks, 4 query heads in 2 KV groups (GQA, group of 2), 64 MLP channels.
ACTIONS: dict[str, dict[int, BlockAction]] = {
    "drop_block": {0: BlockAction(drop="block")},
    "drop_attention": {1: BlockAction(drop="attention")},
    "drop_mlp": {0: BlockAction(drop="mlp")},
    "heads": {0: BlockAction(heads=2)},
    "channels": {1: BlockAction(mlp_channels=10)},
    "mixed": {0: BlockAction(heads=2, mlp_channels=7), 1: BlockAction(drop="attention", mlp_channels=33)},
    "all_but_one_block": {1: BlockAction(drop="block"), 0: BlockAction(mlp_channels=1)},
}
IDS = torch.randint(0, 128, (2, 24), generator=torch.Generator().manual_seed(1))


class _SavingTokenizer:
    def save_pretrained(self, path: str | Path) -> None:
        Path(path, "tokenizer_stub.txt").write_text("char")


def _copy(prof: Profile) -> LoadedModel:
    assert prof.loaded is not None
    model = copy.deepcopy(prof.loaded.model)
    return LoadedModel(model, _SavingTokenizer(), ModelAdapter(model), "copy", torch.device("cpu"))


def _prunable_weights(adapter: ModelAdapter) -> int:
    return sum(adapter.get_weight(m).numel() for m in adapter.prunable_layers().values())


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
@pytest.mark.parametrize("case", sorted(ACTIONS))
def test_physical_removal_matches_the_masked_model(arch: str, case: str) -> None:
    prof = tiny_profile(arch)
    assert prof.loaded is not None
    plan = plan_from_actions(prof.identity, ACTIONS[case])
    selection = select_structure(plan.structured(), prof, prof.loaded.adapter)
    with torch.no_grad():
        dense = prof.loaded.model(input_ids=IDS).logits
        with StructureMasks(prof.loaded.adapter, selection):
            masked = prof.loaded.model(input_ids=IDS).logits
        after = prof.loaded.model(input_ids=IDS).logits
        small = _copy(prof)
        remove_structure(small, selection)
        physical = small.model(input_ids=IDS).logits
    assert torch.equal(after, dense)  # the hooks are gone
    assert not torch.allclose(masked, dense, atol=1e-4)  # the action did something
    torch.testing.assert_close(physical, masked, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("case", sorted(ACTIONS))
def test_parameter_accounting_is_exact(case: str) -> None:
    prof = tiny_profile()
    plan = plan_from_actions(prof.identity, ACTIONS[case])
    small = _copy(prof)
    before = _prunable_weights(small.adapter)
    remove_structure(small, select_structure(plan.structured(), prof, small.adapter))
    removed = before - _prunable_weights(small.adapter)
    # The plan's budget counts exactly the weights the physical removal deletes.
    assert removed == round(plan.budget() * before)
    assert abs(removed / before - plan.budget()) < 1e-12


def test_gqa_groups_stay_consistent() -> None:
    prof = tiny_profile()
    plan = plan_from_actions(prof.identity, {0: BlockAction(heads=2)})
    small = _copy(prof)
    remove_structure(small, select_structure(plan.structured(), prof, small.adapter))
    q, k, v = small.adapter.in_projs(0, "attention")
    o = small.adapter.out_proj(0, "attention")
    # 2 query heads of width 8 share 1 KV head: q 16 rows, k/v 8 rows, o 16 columns.
    assert q.weight.shape == (16, 32) and k.weight.shape == (8, 32)
    assert v.weight.shape == (8, 32) and o.weight.shape == (32, 16)
    assert o.bias is not None  # the compensation of the removed group


def test_depth_pruned_model_reloads_with_transformers_alone(tmp_path: Path) -> None:
    prof = tiny_profile()
    small = _copy(prof)
    remove_structure(small, select_structure({1: BlockAction(drop="block")}, prof, small.adapter))
    assert save_structured(small, tmp_path)  # a plain checkpoint
    assert not (tmp_path / STRUCTURE_FILE).exists()
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert again.config.num_hidden_layers == 1
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=IDS).logits, small.model(input_ids=IDS).logits)
        out = again.generate(IDS[:1, :4], max_new_tokens=5, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 9)


def test_uniform_width_with_bias_is_a_plain_llama_checkpoint(tmp_path: Path) -> None:
    prof = tiny_profile()
    small = _copy(prof)
    actions = {b: BlockAction(heads=2, mlp_channels=40) for b in range(2)}
    remove_structure(small, select_structure(actions, prof, small.adapter))
    with torch.no_grad():
        want = small.model(input_ids=IDS).logits
    assert save_structured(small, tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert (again.config.num_attention_heads, again.config.num_key_value_heads) == (2, 1)
    assert again.config.intermediate_size == 40 and again.config.mlp_bias
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=IDS).logits, want)


def test_heterogeneous_model_saves_a_structure_file_and_rebuilds(tmp_path: Path) -> None:
    prof = tiny_profile()
    small = _copy(prof)
    remove_structure(small, select_structure(ACTIONS["mixed"], prof, small.adapter))
    with torch.no_grad():
        want = small.model(input_ids=IDS).logits
    assert not save_structured(small, tmp_path)
    shapes = json.loads((tmp_path / STRUCTURE_FILE).read_text())["blocks"]
    assert shapes == [{"kv_heads": 1, "channels": 7, "attention_bias": True, "mlp_bias": True},
                      {"kv_heads": 0, "channels": 33, "attention_bias": True, "mlp_bias": True}]
    model, adapter = load_structured(tmp_path, torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=IDS).logits, want)
        out = model.generate(IDS[:1, :4], max_new_tokens=5, do_sample=False, pad_token_id=0)  # type: ignore[operator]
    assert out.shape == (1, 9) and adapter.num_blocks == 2


BAD = {
    "unknown sub-block": ({"drop": "attn"}, "cannot drop 'attn'"),
    "more heads than exist": ({"heads": 6}, "heads=6 is outside 1..4"),
    "head count splitting a KV group": ({"heads": 3}, "splits a KV group"),
    "contradiction": ({"drop": "block", "heads": 2}, "contradicts"),
    "too many channels": ({"mlp_channels": 65}, "outside 1..64"),
    "unknown key": ({"width": 3}, "unknown key"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_actions_are_refused_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    entry, message = BAD[case]
    prof = tiny_profile()
    good = plan_from_actions(prof.identity, {0: BlockAction(heads=2)})
    data = good.to_dict()
    data["blocks"] = {"0": entry}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(PlanError, match=message):
        Plan.load(path)
    if case != "unknown key":
        good.blocks = {0: BlockAction.from_dict(entry, 0)}
        with pytest.raises(PlanError, match=message):
            good.save(tmp_path / "out.json")
        assert not (tmp_path / "out.json").exists()


def test_structured_module_sparsity_must_match_its_action() -> None:
    prof = tiny_profile()
    plan = plan_from_actions(prof.identity, {0: BlockAction(heads=2)})
    name = "model.layers.0.self_attn.q_proj"
    data = plan.to_dict()
    data["modules"][name]["sparsity"] = 0.25
    with pytest.raises(PlanError, match=r"removes 0\.500000 of it"):
        Plan.from_dict(data)


def test_old_per_module_action_is_refused() -> None:
    prof = tiny_profile()
    data = plan_from_actions(prof.identity, {}).to_dict()
    data["schema_version"] = 1
    Plan.from_dict(data)  # schema 1 still loads
    data["modules"]["model.layers.0.mlp.up_proj"]["action"] = "drop"
    with pytest.raises(PlanError, match="structured actions are per block"):
        Plan.from_dict(data)


def test_models_without_structure_refuse_actions() -> None:
    prof = tiny_profile("gpt2")
    assert prof.identity.structure is None
    with pytest.raises(PlanError, match="only LLaMA-like models"):
        plan_from_actions(prof.identity, {0: BlockAction(drop="block")})


def test_cli_refuses_a_bad_plan_before_loading_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prof = tiny_profile()
    data = plan_from_actions(prof.identity, {0: BlockAction(heads=2)}).to_dict()
    data["blocks"] = {"0": {"heads": 3}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "never"
    assert main(["prune", "--plan", str(path), "--out", str(out), "--quiet"]) == 2
    assert "splits a KV group" in capsys.readouterr().err
    assert not out.exists()


def test_export_refuses_structured_plans() -> None:
    prof = tiny_profile()
    plan = plan_from_actions(prof.identity, {1: BlockAction(drop="block")})
    for fmt in ("llmcompressor", "evopress"):
        with pytest.raises(ValueError, match="cannot express; apply it with `allocsearch prune"):
            export_plan(plan, fmt)


def test_plan_table_lists_structured_actions() -> None:
    prof = tiny_profile()
    plan = plan_from_actions(prof.identity, {1: BlockAction(drop="attention", mlp_channels=33)})
    rows = plan_table(plan).splitlines()
    assert rows[-2].split() == ["1", "1.000", "0.484", "0.656", "drop=attention", "mlp_channels=33"]
    assert rows[-3].split() == ["0", "0.000", "0.000", "0.000"]
