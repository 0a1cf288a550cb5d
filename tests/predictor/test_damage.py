"""Measured damage: exact interpolation and distance blending on hand-made curves, the
within-study scale, and the measurement on the tiny model (each rise is a single-block plan's
fitness over its centre's)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from allocsearch.allocation.curves import BlockCurves
from allocsearch.budget import random_plan
from allocsearch.evaluate import EvaluatorConfig
from allocsearch.evaluate.sensitivity import Around, single_block_plan
from allocsearch.predictor import FeatureTable, PlanRecord, Predictor
from allocsearch.predictor.damage import (
    CentredCurves,
    DamageCurves,
    blend_scale,
    damage_levels,
    measure_damage,
    pooled_within_std,
)
from allocsearch.predictor.model import PredictorError
from tests.helpers import tiny_evaluator, tiny_profile

CONFIG = EvaluatorConfig(seqlen=32, fidelities=(64, 128), topk=8, batch_size=2)


def _curves(levels: tuple[float, ...], delta: tuple[tuple[float, ...], ...], model: str = "m") -> BlockCurves:
    return BlockCurves(levels, delta, 64, model=model, around="c")


#: Two blocks around the uniform 0.5 plan: rises 1 and 2 per unit of sparsity above it, a
#: tenth of that below (levels 0.3 and 0.7).
UNIFORM = CentredCurves(0.5, "uniform", (0.5, 0.5), _curves((0.3, 0.7), ((-0.02, 0.2), (-0.04, 0.4))))
#: Around (0.4, 0.6): block 0 rises 3 per unit up to 0.8; block 1 rises to 0.1 at both 0.2 and 0.8.
RAMP = CentredCurves(0.5, "ramp", (0.4, 0.6), _curves((0.2, 0.8), ((0.1, 1.2), (0.1, 0.1))))


def test_levels_are_the_offsets_within_bounds_without_the_target() -> None:
    assert damage_levels(0.7) == (0.4, 0.5, 0.6, 0.8, 0.9, 0.95)
    assert damage_levels(0.75) == (0.45, 0.55, 0.65, 0.85, 0.95)
    assert damage_levels(0.2) == (0.01, 0.1, 0.3, 0.4, 0.5)


def test_rise_is_zero_at_the_centre_and_linear_between_levels() -> None:
    blocks = np.array([[0.5, 0.5], [0.6, 0.4], [0.9, 0.1], [0.4, 0.6]])
    rise = UNIFORM.rise(blocks)
    assert rise[0] == pytest.approx([0.0, 0.0], abs=1e-12)
    assert rise[1] == pytest.approx([0.1, -0.02], abs=1e-12)  # half way to 0.7; half way to 0.3
    assert rise[2] == pytest.approx([0.2, -0.04], abs=1e-12)  # beyond the levels: the end ones
    # Around the ramp the centre differs per block: block 0's 0.4 sits between 0.2 and 0.8.
    assert RAMP.rise(blocks)[3] == pytest.approx([0.0, 0.0], abs=1e-12)
    assert RAMP.rise(blocks)[0] == pytest.approx([0.3, 0.025], abs=1e-12)
    assert UNIFORM.distance(blocks) == pytest.approx([0.0, 0.01, 0.16, 0.01])


def test_damage_blends_the_centres_by_inverse_distance() -> None:
    dc = DamageCurves((UNIFORM, RAMP))
    blocks = np.array([[0.5, 0.5], [0.4, 0.6], [0.45, 0.55]])
    got = dc.damage(blocks, np.full(3, 0.5))
    u, r = UNIFORM.rise(blocks).sum(1), RAMP.rise(blocks).sum(1)
    assert got[0] == pytest.approx(u[0], abs=1e-9)  # on the uniform centre: its sum alone
    assert got[1] == pytest.approx(r[1], abs=1e-9)
    assert got[2] == pytest.approx((u[2] + r[2]) / 2, abs=1e-12)  # equally far from both
    # A plan at another target reads the nearest measured one; a second target's curves are
    # used only by plans nearest to it.
    high = CentredCurves(0.7, "uniform", (0.7, 0.7), _curves((0.5, 0.9), ((-1.0, 1.0), (-1.0, 1.0))))
    two = DamageCurves((UNIFORM, RAMP, high))
    assert two.targets == (0.5, 0.7) and two.nearest(0.58) == 0.5 and two.nearest(0.66) == 0.7
    again = two.damage(np.array([[0.45, 0.55], [0.8, 0.6]]), np.array([0.55, 0.7]))
    assert again == pytest.approx([got[2], 0.5 - 0.5], abs=1e-12)
    assert DamageCurves.from_dict(two.to_dict()) == two
    assert two.tokens_read == 3 * (2 * 2 + 1) * 64


def test_curves_must_be_of_one_model_and_once_per_target_and_centre() -> None:
    with pytest.raises(ValueError, match="no block curves"):
        DamageCurves(())
    with pytest.raises(ValueError, match="one model"):
        other = _curves((0.3, 0.7), ((0, 0), (0, 0)), model="o")
        DamageCurves((UNIFORM, CentredCurves(0.5, "x", (0.5, 0.5), other)))
    with pytest.raises(ValueError, match="one set"):
        DamageCurves((UNIFORM, UNIFORM))
    with pytest.raises(ValueError, match="blocks"):
        CentredCurves(0.5, "u", (0.5,), UNIFORM.curves)


def test_the_scale_matches_the_spreads_within_studies() -> None:
    groups = ["a", "a", "b", "b"]
    # Within a: +-1 around 10; within b: +-3 around -5. Pooled: sqrt((1 + 9) / 2).
    assert pooled_within_std(np.array([9.0, 11.0, -8.0, -2.0]), groups) == pytest.approx(math.sqrt(5.0))
    model = np.array([1.0, 3.0, 100.0, 102.0])  # spread 1 within each, whatever the levels
    damage = np.array([0.1, 0.2, 0.0, 0.1])  # spread 0.05 within each
    assert blend_scale(model, damage, groups) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="does not vary"):
        blend_scale(model, np.array([1.0, 1.0, 2.0, 2.0]), groups)
    with pytest.raises(ValueError, match="group labels"):
        pooled_within_std(model, groups[:3])


def test_measured_rises_are_single_block_plans_over_the_centre(tmp_path: Path) -> None:
    ev = tiny_evaluator(CONFIG)
    ev.cache_dir = tmp_path
    cc = measure_damage(ev, 0.5, "ramp slope=0.3", tokens=64, progress=False)
    centre = Around.reference("ramp slope=0.3", ev, 0.5).plan
    assert cc.centre == tuple(centre.block_sparsity()) and cc.centre[0] < cc.centre[1]
    assert cc.curves.levels == damage_levels(0.5) and cc.label == "ramp slope=0.3"
    moved = single_block_plan(ev.profile.identity, 1, 0.8, centre)
    rise = math.log(ev.fitness(moved, 64)) - math.log(ev.fitness(centre, 64))
    assert cc.curves.delta[1][cc.curves.levels.index(0.8)] == pytest.approx(rise, abs=1e-9)
    # Read back from the cache, not measured again.
    assert measure_damage(ev, 0.5, "ramp slope=0.3", tokens=64, progress=False) == cc
    assert len(list((tmp_path / "block_curves").glob("*.json"))) == 1


def test_a_predictor_with_damage_adds_it_at_the_fitted_scale_and_saves_it(tmp_path: Path) -> None:
    table = FeatureTable.from_profile(tiny_profile())
    fp = table.identity.fingerprint
    zig = BlockCurves((0.5, 0.6, 0.8, 0.9), ((0.3, -0.4, 0.5, -0.2), (-0.3, 0.6, -0.5, 0.2)), 64, model=fp)
    curves = DamageCurves((CentredCurves(0.7, "uniform", (0.7, 0.7), zig),))
    plans = [random_plan(table.identity, 0.7, block_spread=0.2, seed=i) for i in range(24)]
    damage = curves.of_plans(plans)
    records = [PlanRecord(p, float(np.exp(3.0 + d + 0.01 * i)), "ppl", 128, f"s{i % 2}", i, "random")
               for i, (p, d) in enumerate(zip(plans, damage, strict=True))]
    pred = Predictor.train(table, records, model="additive", members=2, damage=curves)
    plain = Predictor.train(table, records, model="additive", members=2)
    fit = plain.predict_rows(table.features(plans))[0]
    assert pred.damage_scale == pytest.approx(blend_scale(fit, damage, [r.study for r in records]), rel=1e-12)
    mean, std = pred.predict(plans[:5])
    base, base_std = plain.predict(plans[:5])
    assert mean == pytest.approx(base + pred.damage_scale * damage[:5], abs=1e-12)
    assert std == pytest.approx(base_std, abs=1e-12)  # the damage moves the mean only
    again = Predictor.load(pred.save(tmp_path / "p.json"))
    assert again.damage == curves and again.predict(plans[:5])[0] == pytest.approx(mean, abs=1e-12)
    assert json.loads((tmp_path / "p.json").read_text())["schema_version"] == 3
    assert pred.retrain(records[:4]).damage == curves
    with pytest.raises(PredictorError, match="without its training records"):
        Predictor(table, "additive", plain.members, plain.meta).with_damage(curves)
    # A file without damage (schema 2) still loads, as the plain predictor.
    old = plain.to_dict() | {"schema_version": 2}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert Predictor.load(tmp_path / "old.json").damage is None
    other = DamageCurves((CentredCurves(0.7, "uniform", (0.7, 0.7), replace(zig, model="other")),))
    with pytest.raises(PredictorError, match="another model"):
        Predictor.train(table, records, model="additive", members=2, damage=other)
    flat = DamageCurves((CentredCurves(0.7, "uniform", (0.7, 0.7), replace(zig, delta=((0, 0, 0, 0),) * 2)),))
    with pytest.raises(PredictorError, match="does not vary"):
        Predictor.train(table, records, model="additive", members=2, damage=flat)
