"""Budget projection: exact, nearest, within bounds, and a clear error when impossible."""

from __future__ import annotations

import numpy as np
import pytest

from allocsearch.budget import project_to_budget


def test_shift_when_nothing_clips() -> None:
    x = project_to_budget([0.4, 0.6, 0.5], [1, 1, 2], 0.6, 0.0, 0.95)
    np.testing.assert_allclose(x, [0.5, 0.7, 0.6], atol=1e-12)


def test_clipped_modules_stay_at_their_bound() -> None:
    x = project_to_budget([0.9, 0.1], [1, 1], 0.7, 0.0, 0.95)
    np.testing.assert_allclose(x, [0.95, 0.45], atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_random_vectors_meet_target_to_1e9(seed: int) -> None:
    rng = np.random.default_rng(seed)
    v = rng.uniform(-0.5, 1.5, 200)
    w = rng.integers(1000, 2_000_000, 200).astype(float)
    lo = rng.uniform(0.0, 0.3, 200)
    x = project_to_budget(v, w, 0.62, lo, 0.9)
    assert abs(w @ x / w.sum() - 0.62) < 1e-9
    assert np.all(x >= lo - 1e-12) and np.all(x <= 0.9 + 1e-12)
    # Nearest: the KKT form x = clip(v + shift) holds for one shift.
    free = (x > lo + 1e-9) & (x < 0.9 - 1e-9)
    shifts = (x - v)[free]
    assert np.ptp(shifts) < 1e-9


def test_unreachable_target() -> None:
    with pytest.raises(ValueError, match="unreachable"):
        project_to_budget([0.5, 0.5], [1, 1], 0.97, 0.0, 0.95)
