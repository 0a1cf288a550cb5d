"""Which features can only make a plan worse as they grow: the monotone constraints the
extrapolating models put on their trees.

More removed mass (of Wanda scores, squared weights, squared scores, or a level database's
reconstruction error) never predicts a better plan, nor does more sparsity in a block's
attention or MLP; the constraints say so to the trees, which then cannot learn a spurious
dip from noise in a few hundred plans. Sign +1: the predicted log-fitness is non-decreasing
in the feature; 0: unconstrained.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Feature-name prefixes (``<prefix>:<module or block>``) constrained to +1.
INCREASING_PREFIXES = ("score:", "sqw:", "sq_score:", "recon:", "attn:", "mlp:", "typed:")
#: Global features constrained to +1.
INCREASING_GLOBALS = ("score_mean", "sqw_mean", "sq_score_mean", "recon_weighted", "budget")


def monotone_signs(names: Sequence[str]) -> list[int]:
    """+1 for the removed-mass and sparsity features of ``names``, 0 for the others."""
    return [1 if n.startswith(INCREASING_PREFIXES) or n in INCREASING_GLOBALS else 0 for n in names]


def removed_mass_columns(names: Sequence[str], prefix: str = "score:") -> list[int]:
    """The columns named ``<prefix>...``: ``score:<module>`` (the additive baseline's inputs)
    or ``typed:<projection>:<k>`` (the typed model's)."""
    cols = [i for i, n in enumerate(names) if n.startswith(prefix)]
    if not cols:
        raise ValueError(f"this model needs {prefix}* features")
    return cols
