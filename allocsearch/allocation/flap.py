"""Width pruning by fluctuation (FLAP-like): remove the heads and channels whose input varies
least, with bias compensation, under one global standardised ranking.

Every output-projection column gets the fluctuation ``Var(X_j) * ||W[:, j]||^2``
(:mod:`allocsearch.pruners.structured_sparsify`; squared for attention columns, as FLAP
does), standardised within its layer (zero mean, unit spread per o_proj / down_proj). A unit
scores the mean standardised value of its columns: a KV group of heads all of its o_proj
columns, an MLP channel its down_proj column. Then one global ranking across layers and
modules (FLAP's adaptive structure search): units are removed in ascending order while they
fit in the target's parameters (each costs what it holds); a unit that would overshoot is
skipped for cheaper ones, so the target is met to within one channel. The bias
compensation itself happens when the plan is applied (:mod:`allocsearch.structure`).
"""

from __future__ import annotations

from dataclasses import dataclass

from allocsearch.actions import BlockAction
from allocsearch.allocation.base import (
    AllocatorParams,
    StructuredAllocator,
    counts_to_actions,
    subblock_mass,
    unit_cost,
)
from allocsearch.models.adapters import out_proj_name
from allocsearch.profile import Profile
from allocsearch.pruners.structured_sparsify import fluctuation, group_scores


@dataclass(frozen=True)
class FlapParams(AllocatorParams):
    #: which sub-blocks may narrow: "both", "attention" or "mlp"
    kinds: str = "both"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kinds not in ("both", "attention", "mlp"):
            raise ValueError(f"kinds must be 'both', 'attention' or 'mlp', got {self.kinds!r}")


class FlapAllocator(StructuredAllocator):
    name = "flap"
    Params = FlapParams
    needs_model = True

    def _actions(self, profile: Profile, target: float) -> dict[int, BlockAction]:
        s = profile.identity.structure
        assert s is not None
        p = self.params
        assert isinstance(p, FlapParams)
        kinds = ("attention", "mlp") if p.kinds == "both" else (p.kinds,)
        mass = subblock_mass(profile.identity)
        want = target * sum(m["attention"] + m["mlp"] for m in mass)
        heads, channels = remove_lowest(profile, unit_scores(profile, kinds), want)
        return counts_to_actions(s, heads, channels)


@dataclass(frozen=True)
class Unit:
    """One removable unit: a KV group of heads (``attention``) or an MLP channel."""

    score: float  # mean standardised fluctuation of its columns
    block: int
    kind: str
    cost: float  # the parameters it holds


def unit_scores(profile: Profile, kinds: tuple[str, ...] = ("attention", "mlp")) -> list[Unit]:
    """Every unit of the given kinds with its FLAP-like score, in block and unit order."""
    ident = profile.identity
    s = ident.structure
    assert s is not None
    out: list[Unit] = []
    for kind in kinds:
        width = s.group * s.head_dim if kind == "attention" else 1
        for b in range(ident.num_blocks):
            name = out_proj_name(ident.architecture, b, kind)
            _, var = profile.channel_moments(name)
            cols = fluctuation(profile.weight(name), var).double()  # (in,) per column
            if kind == "attention":
                cols = cols.square()  # as FLAP scores heads
            z = (cols - cols.mean()) / cols.std().clamp_min(1e-12)  # within this layer
            cost = unit_cost(ident, b, kind)
            out.extend(Unit(float(v), b, kind, cost) for v in group_scores(z, width) / width)
    return out


def remove_lowest(profile: Profile, units: list[Unit], want: float,
                  removed: float = 0.0) -> tuple[list[int], list[int]]:
    """Kept (heads, channels) per block after removing units lowest score first while the
    removed parameters (``removed`` already) stay within ``want`` (+ half a channel); a unit
    that would overshoot is skipped for cheaper ones."""
    ident = profile.identity
    s = ident.structure
    assert s is not None
    heads = [s.heads] * ident.num_blocks
    channels = [s.intermediate] * ident.num_blocks
    half_channel = 0.5 * min(unit_cost(ident, b, "mlp") for b in range(ident.num_blocks))
    for u in sorted(units, key=lambda u: (u.score, u.block, u.kind)):
        if removed + u.cost > want + half_channel:
            continue
        removed += u.cost
        if u.kind == "attention":
            heads[u.block] -= s.group
        else:
            channels[u.block] -= 1
    return heads, channels
