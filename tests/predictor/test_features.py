"""Features of a plan: exact removal curves and rows on a hand-made two-block profile."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from allocsearch.data import DataConfig
from allocsearch.plan import ModelIdentity, ModuleChoice, Plan
from allocsearch.predictor import FeatureError, FeatureTable
from allocsearch.predictor.features import removal_curves
from allocsearch.profile import Profile

Q0, U0 = "model.layers.0.self_attn.q_proj", "model.layers.0.mlp.up_proj"
Q1, U1 = "model.layers.1.self_attn.q_proj", "model.layers.1.mlp.up_proj"
W = torch.tensor([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])  # (out 2, in 4)
SQ_NORM = torch.tensor([4.0, 1.0, 1.0, 1.0])  # ||X_j||^2: Wanda scores [[2,2,3,4],[8,3,2,1]]


def hand_profile() -> Profile:
    names = (Q0, U0, Q1, U1)
    ident = ModelIdentity("hand", "llama", 2, dict.fromkeys(names, (2, 4)))
    return Profile(ident, "hand", DataConfig(), 8, dict.fromkeys(names, SQ_NORM),
                   {Q0: 2.0, U0: 3.0, Q1: 4.0, U1: 5.0}, dense=dict.fromkeys(names, W))


def test_removal_curves_are_exact_on_a_hand_made_layer() -> None:
    scores = W.abs() * SQ_NORM.sqrt()
    curves = removal_curves(scores, W)
    assert curves.shape == (3, 101)
    # At 50% each row loses its 2 lowest scores: row 0 scores 2+2 of 11 (w 1, 2), row 1 1+2
    # of 14 (w 1, 2); squared weights 5+5 of 60; squared scores 8 of 33 and 5 of 78.
    assert curves[:, 50].tolist() == pytest.approx([7 / 25, 10 / 60, 13 / 111], abs=1e-7)
    assert curves[:, 0].tolist() == [0.0, 0.0, 0.0] and curves[:, 100].tolist() == [1.0, 1.0, 1.0]
    # At 25% one weight per row (scores 2 and 1; w 1 and 1).
    assert curves[:, 25].tolist() == pytest.approx([3 / 25, 2 / 60, 5 / 111], abs=1e-7)


def plan_of(prof: Profile, s: dict[str, float]) -> Plan:
    return Plan(prof.identity, 0.5, {n: ModuleChoice(v) for n, v in s.items()})


def test_feature_rows_are_exact_and_deterministic() -> None:
    prof = hand_profile()
    table = FeatureTable.from_profile(prof)
    plan = plan_of(prof, {Q0: 0.5, U0: 0.25, Q1: 0.75, U1: 0.5})
    row = dict(zip(table.names, table.features([plan])[0].tolist(), strict=True))
    assert len(row) == len(table.names) == 2 * 2 + 3 * 4 + 2 * 2 + 2 * 3 + 13
    assert (row["attn:0"], row["mlp:0"], row["attn:1"], row["mlp:1"]) == (0.5, 0.25, 0.75, 0.5)
    assert row[f"score:{Q0}"] == pytest.approx(7 / 25, abs=1e-7)
    assert row[f"score:{U0}"] == pytest.approx(3 / 25, abs=1e-7)
    assert row[f"sqw:{U1}"] == pytest.approx(10 / 60, abs=1e-7)
    assert row["budget"] == 0.5
    assert row["depth_centre"] == pytest.approx(0.625)  # block sparsities 0.375, 0.625
    assert row["depth_slope"] == pytest.approx(0.25)
    assert (row["block_first"], row["block_last"]) == (0.375, 0.625)
    assert row["alpha_weighted"] == pytest.approx((0.5 * 2 + 0.25 * 3 + 0.75 * 4 + 0.5 * 5) / 4)
    assert row["nm:0"] == 0.0 and row["dense:1"] == 0.0
    # Typed: per projection kind, removed score shares under bumps at depth 0, 0.5, 1 (width
    # 0.2); blocks 0 and 1 sit at depth 0 and 1.
    far, mid = math.exp(-1 / 0.08), math.exp(-0.25 / 0.08)
    assert row["typed:self_attn.q_proj:0"] == pytest.approx(row[f"score:{Q0}"] + far * row[f"score:{Q1}"])
    assert row["typed:mlp.up_proj:1"] == pytest.approx(mid * (row[f"score:{U0}"] + row[f"score:{U1}"]))
    assert row["typed:mlp.up_proj:2"] == pytest.approx(far * row[f"score:{U0}"] + row[f"score:{U1}"])
    # The same plan gives the same row, and so does a table read back from its JSON data.
    again = FeatureTable.from_dict(table.to_dict())
    assert np.array_equal(table.features([plan]), again.features([plan]))
    assert np.array_equal(table.features([plan, plan])[1], table.features([plan])[0])


def test_a_plan_of_another_model_is_refused() -> None:
    table = FeatureTable.from_profile(hand_profile())
    other = ModelIdentity("other", "llama", 1, {Q0: (2, 4), U0: (2, 4)})
    plan = Plan(other, 0.5, {Q0: ModuleChoice(0.5), U0: ModuleChoice(0.5)})
    with pytest.raises(FeatureError, match=r"plan is for model other .* trained on hand"):
        table.features([plan])


def test_a_table_of_another_feature_version_is_refused() -> None:
    data = FeatureTable.from_profile(hand_profile()).to_dict() | {"version": 0}
    with pytest.raises(FeatureError, match="retrain the predictor"):
        FeatureTable.from_dict(data)


def test_reconstruction_errors_of_a_level_database_become_features() -> None:
    prof = hand_profile()
    levels = (0.0, 0.5, 0.75)
    errors = {Q0: [0.0, 0.2, 0.4], U0: [0.0, 0.1, 0.3], Q1: [0.0, 0.3, 0.6], U1: [0.0, 0.05, 0.1]}
    table = FeatureTable.from_profile(prof, (levels, errors))
    plan = plan_of(prof, {Q0: 0.5, U0: 0.25, Q1: 0.75, U1: 0.5})
    row = dict(zip(table.names, table.features([plan])[0].tolist(), strict=True))
    assert len(table.names) == len(FeatureTable.from_profile(prof).names) + 4 + 1
    # At a level: the stored error; between levels: linear (U0 at 0.25 is half of 0.1).
    assert (row[f"recon:{Q0}"], row[f"recon:{Q1}"], row[f"recon:{U1}"]) == pytest.approx((0.2, 0.6, 0.05))
    assert row[f"recon:{U0}"] == pytest.approx(0.05)
    assert row["recon_weighted"] == pytest.approx((0.2 + 0.05 + 0.6 + 0.05) / 4)  # equal sizes
    again = FeatureTable.from_dict(table.to_dict())
    assert np.array_equal(table.features([plan]), again.features([plan]))
    with pytest.raises(FeatureError, match="one row per module"):
        FeatureTable.from_profile(prof, ((0.0, 0.5), errors))


def test_the_cache_stores_a_keyed_profiles_table_once_and_recomputes_a_damaged_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from allocsearch.predictor import feature_cache

    prof = hand_profile()  # key "hand": cached
    levels = (0.0, 0.5, 0.75)
    errors = {Q0: [0.0, 0.2, 0.4], U0: [0.0, 0.1, 0.3], Q1: [0.0, 0.3, 0.6], U1: [0.0, 0.05, 0.1]}
    first = feature_cache.cached_feature_table(prof, (levels, errors), cache_dir=tmp_path)
    (path,) = (tmp_path / "features").iterdir()
    assert path.name.startswith("hand-v")
    want = FeatureTable.from_profile(prof, (levels, errors))
    calls: list[Profile] = []
    real = FeatureTable.from_profile.__func__  # type: ignore[attr-defined]

    def counted(cls: type[FeatureTable], p: Profile, r: object = None) -> FeatureTable:
        calls.append(p)
        return real(cls, p, r)  # type: ignore[no-any-return]

    monkeypatch.setattr(FeatureTable, "from_profile", classmethod(counted))
    again = feature_cache.cached_feature_table(prof, (levels, errors), cache_dir=tmp_path)
    assert calls == []  # read back, not recomputed
    plan = plan_of(prof, {Q0: 0.5, U0: 0.25, Q1: 0.75, U1: 0.5})
    for table in (first, again):
        assert np.array_equal(table.features([plan]), want.features([plan]))
        assert table.names == want.names
    path.write_text("{")
    assert np.array_equal(feature_cache.cached_feature_table(prof, cache_dir=tmp_path).curves, want.curves)
    assert len(calls) == 1 and FeatureTable.load(path).curves.shape == want.curves.shape  # rewritten
    unkeyed = Profile(prof.identity, "", prof.data, prof.tokens, prof.sq_norm, prof.alpha, dense=prof.dense)
    feature_cache.cached_feature_table(unkeyed, cache_dir=tmp_path)
    assert len(calls) == 2 and len(list((tmp_path / "features").iterdir())) == 1  # nothing stored
