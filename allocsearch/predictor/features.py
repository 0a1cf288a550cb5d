"""Plan + profile -> feature vector, without a forward pass.

A :class:`FeatureTable` is computed once per profile (it needs the dense weights) and holds,
per prunable module, three **removal curves** on a grid of sparsities: the share of the
module's Wanda-score mass, of its squared-weight mass and of its squared-score mass that a
Wanda mask at that ratio removes (weights ordered by Wanda score within each output row, as
the pruner and the Evaluator's cached masks order them). Plus each module's OWL outlier
ratio (share of scores above 5x the mean) and AlphaPruning exponent. The table is plain data:
it is saved inside a predictor file, so ranking plans needs no model.

:meth:`FeatureTable.features` turns plans into rows of one fixed layout (``names``):

- ``attn:<b>``, ``mlp:<b>``: parameter-weighted sparsity of block b's attention and MLP;
- ``score:<module>``, ``sqw:<module>``, ``sq_score:<module>``: the removal curves at the
  module's sparsity (linear interpolation on the grid);
- ``nm:<b>``, ``dense:<b>``: share of block b's parameters under an N:M pattern / kept dense
  (the layer-type choices);
- ``typed:<projection>:<k>``: per projection kind (``self_attn.q_proj``, ``mlp.down_proj``,
  ...), the removed Wanda-score shares of its modules summed with a smooth weight over depth
  (Gaussian bumps centred at ``TYPED_CENTRES`` of the relative depth): 21 columns for a
  LLaMA model that say where in depth each kind of projection loses mass, a layout that
  generalises across studies better than one column per module (the ``typed`` models);
- global: budget, parameter-weighted means of the three removed shares, sparsity-weighted
  outlier ratio and spectral exponent, and depth statistics of the block sparsities (centre
  of mass, linear slope, spread, min, max, first and last block).

With a level database behind the search (``EvaluatorConfig(masks="database")``), the table
also holds each module's relative reconstruction error at every level of the database's grid,
and the rows gain ``recon:<module>`` (the error at the module's sparsity, interpolated on the
grid) and ``recon_weighted`` (their parameter-weighted mean): the damage the user's pruner
actually does to each module, which the Wanda curves only approximate.

``FEATURE_VERSION`` changes whenever this layout or its meaning changes; a predictor refuses
plans of another model (fingerprint) or a table of another version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from allocsearch.io import atomic_write_text
from allocsearch.models.adapters import layer_kind, projection_kind
from allocsearch.plan import ModelIdentity, Plan, block_of
from allocsearch.profile import Profile
from allocsearch.pruners.wanda_sparsify import wanda_scores

FEATURE_VERSION = 2  # 2: typed:<projection>:<k> columns
GRID_POINTS = 101  # sparsity 0.00, 0.01, ..., 1.00
CURVES = ("score", "sqw", "sq_score")
OUTLIER_M = 5.0
TYPED_CENTRES = (0.0, 0.5, 1.0)  # relative depth of the typed features' bumps
TYPED_WIDTH = 0.2
GLOBALS = ("budget", "score_mean", "sqw_mean", "sq_score_mean", "outlier_weighted",
           "alpha_weighted", "depth_centre", "depth_slope", "block_std", "block_min",
           "block_max", "block_first", "block_last")


class FeatureError(ValueError):
    """A plan or table the features cannot be computed for, with the reason."""


def removal_curves(
    scores: torch.Tensor, weight: torch.Tensor, grid: int = GRID_POINTS
) -> NDArray[np.float64]:
    """(3, grid) shares of score, squared-weight and squared-score mass removed when each row
    of a (out, in) layer loses its round(s * in) lowest-scoring weights, s on the grid."""
    order = scores.double().argsort(dim=1, stable=True)  # (out, in), ascending scores
    s = scores.double().gather(1, order)
    w2 = weight.double().square().gather(1, order)
    cols = scores.shape[1]
    ks = torch.tensor([round(g * cols) for g in np.linspace(0.0, 1.0, grid)], dtype=torch.long)
    out = []
    for values in (s, w2, s.square()):
        cum = torch.cat([torch.zeros(values.shape[0], 1, dtype=values.dtype), values.cumsum(1)], 1)
        removed = cum[:, ks].sum(0)  # (grid,)
        out.append((removed / cum[:, -1].sum().clamp_min(1e-300)).numpy())
    return np.round(np.stack(out), 7)


@dataclass(frozen=True)
class FeatureTable:
    """Per-module curves and statistics of one profiled model (see the module docstring)."""

    identity: ModelIdentity
    curves: NDArray[np.float64]  # (modules, 3, GRID_POINTS), modules in identity order
    outlier: NDArray[np.float64]  # (modules,)
    alpha: NDArray[np.float64]  # (modules,)
    version: int = FEATURE_VERSION
    recon_levels: NDArray[np.float64] | None = None  # (levels,), ascending, from 0.0
    recon: NDArray[np.float64] | None = None  # (modules, levels) relative reconstruction error

    def __post_init__(self) -> None:
        m = len(self.identity.shapes)
        if self.curves.shape != (m, len(CURVES), GRID_POINTS) or self.outlier.shape != (m,) \
                or self.alpha.shape != (m,):
            raise FeatureError(f"feature table shapes do not match the model's {m} modules")
        if (self.recon is None) != (self.recon_levels is None) or (
                self.recon is not None and self.recon_levels is not None
                and self.recon.shape != (m, len(self.recon_levels))):
            raise FeatureError("reconstruction errors need one row per module and one column per level")

    # ------------------------------------------------------------ building
    @classmethod
    def from_profile(
        cls, profile: Profile,
        recon: tuple[Sequence[float], Mapping[str, Sequence[float]]] | None = None,
    ) -> FeatureTable:
        """Curves from the profile's input norms and dense weights (model attached);
        ``recon`` is a level grid and each module's reconstruction error on it (a level
        database's :meth:`error_table`), or None."""
        ident = profile.identity
        curves, outlier = [], []
        for name in ident.shapes:
            w = profile.weight(name).detach().float().cpu()
            sc = wanda_scores(w, profile.sq_norm[name].float().cpu())
            curves.append(removal_curves(sc, w))
            outlier.append(float((sc > OUTLIER_M * sc.mean()).float().mean()))
        alpha = [profile.alpha[n] for n in ident.shapes]
        table = cls(ident, np.stack(curves), np.round(np.array(outlier), 7), np.round(np.array(alpha), 7))
        return table.with_recon(recon)

    def with_recon(self, recon: tuple[Sequence[float], Mapping[str, Sequence[float]]] | None) -> FeatureTable:
        """This table with ``recon`` (a level grid and each module's error on it) attached."""
        if recon is None:
            return self
        errors = np.array([list(recon[1][n]) for n in self.identity.shapes], dtype=np.float64)
        return replace(self, recon_levels=np.array(recon[0], dtype=np.float64), recon=errors)

    # ----------------------------------------------------------- layout
    @property
    def names(self) -> list[str]:
        ident = self.identity
        blocks = range(ident.num_blocks)
        out = [f"{k}:{b}" for k in ("attn", "mlp") for b in blocks]
        out += [f"{c}:{n}" for c in CURVES for n in ident.shapes]
        out += [f"{k}:{b}" for k in ("nm", "dense") for b in blocks]
        out += [f"typed:{kind}:{k}" for kind in self._kinds for k in range(len(TYPED_CENTRES))]
        if self.recon is not None:
            out += [f"recon:{n}" for n in ident.shapes] + ["recon_weighted"]
        return out + list(GLOBALS)

    def check(self, plan: Plan) -> None:
        self.check_identity(plan.model, "plan is")

    def check_identity(self, model: ModelIdentity, what: str = "the study is") -> None:
        """A FeatureError unless ``model`` is the model this table was computed for."""
        if model.fingerprint != self.identity.fingerprint:
            raise FeatureError(
                f"{what} for model {model.name} (fingerprint {model.fingerprint}), but "
                f"this predictor was trained on {self.identity.name} (fingerprint "
                f"{self.identity.fingerprint}); train a predictor on that model's studies")

    def features(self, plans: Sequence[Plan]) -> NDArray[np.float64]:
        """(len(plans), len(names)) feature rows, deterministic."""
        for p in plans:
            self.check(p)
        ident = self.identity
        names = list(ident.shapes)
        s = np.array([[p.modules[n].sparsity for n in names] for p in plans], dtype=np.float64)
        nm = np.array([[p.modules[n].pattern.is_nm for n in names] for p in plans], dtype=np.float64)
        return self._rows(s, nm)

    @cached_property
    def _kinds(self) -> list[str]:
        ident = self.identity
        return list(dict.fromkeys(projection_kind(ident.architecture, m) for m in ident.shapes))

    @cached_property
    def _typed(self) -> NDArray[np.float64]:
        """(modules, kinds * bumps) weights of the typed features: a module's bump values at
        its relative depth, in its projection kind's columns."""
        ident = self.identity
        depth = np.array([block_of(m) for m in ident.shapes]) / max(ident.num_blocks - 1, 1)
        bumps = np.exp(-np.square(depth[:, None] - np.array(TYPED_CENTRES)[None]) / (2 * TYPED_WIDTH**2))
        kinds = [self._kinds.index(projection_kind(ident.architecture, m)) for m in ident.shapes]
        k = len(TYPED_CENTRES)
        out = np.zeros((len(kinds), len(self._kinds) * k))
        for i, kind in enumerate(kinds):
            out[i, kind * k:(kind + 1) * k] = bumps[i]
        return out

    @cached_property
    def _layout(self) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.float64]]:
        """Per module: parameter count (modules,), attention flag (modules,), and block one-hot
        (modules, blocks); fixed per model, so computed once (screening calls ``features``
        many times a round)."""
        ident = self.identity
        names = list(ident.shapes)
        n = np.array([ident.numel(m) for m in names], dtype=np.float64)
        attn = np.array([layer_kind(ident.architecture, m) == "attention" for m in names])
        onehot = np.zeros((len(names), ident.num_blocks))
        onehot[np.arange(len(names)), [block_of(m) for m in names]] = 1.0
        return n, attn, onehot

    def _rows(self, s: NDArray[np.float64], nm: NDArray[np.float64]) -> NDArray[np.float64]:
        """Rows from (plans, modules) sparsities and N:M flags."""
        ident = self.identity
        names = list(ident.shapes)
        n, attn, onehot = self._layout
        # Curves at each module's sparsity: linear interpolation on the grid, (plans, modules).
        pos = np.clip(s, 0.0, 1.0) * (GRID_POINTS - 1)
        lo = np.minimum(np.floor(pos).astype(int), GRID_POINTS - 2)
        frac = pos - lo
        idx = np.arange(len(names))
        removed = [self.curves[idx, c, lo] * (1 - frac) + self.curves[idx, c, lo + 1] * frac
                   for c in range(len(CURVES))]

        def per_block(values: NDArray[np.float64], mask: NDArray[np.bool_]) -> NDArray[np.float64]:
            w = n * mask
            return np.asarray((values * w) @ onehot / np.maximum(w @ onehot, 1.0))

        block_all = per_block(s, np.ones(len(names), dtype=bool))
        depth = np.linspace(0.0, 1.0, ident.num_blocks)
        centred = depth - depth.mean()
        total = n.sum()
        glob = np.stack([
            s @ n / total,
            *(r @ n / total for r in removed),
            (s * self.outlier) @ n / total,
            (s * self.alpha) @ n / total,
            block_all @ depth / np.maximum(block_all.sum(1), 1e-12),
            block_all @ centred / max(float(centred @ centred), 1e-12),
            block_all.std(1), block_all.min(1), block_all.max(1), block_all[:, 0], block_all[:, -1],
        ], axis=1)
        parts = [per_block(s, attn), per_block(s, ~attn), *removed,
                 per_block(nm, np.ones(len(names), dtype=bool)),
                 per_block((s == 0).astype(np.float64), np.ones(len(names), dtype=bool)),
                 removed[0] @ self._typed]
        if self.recon is not None and self.recon_levels is not None:
            levels, errs = self.recon_levels, self.recon
            rec = np.stack([np.interp(s[:, i], levels, errs[i]) for i in idx], axis=1)  # (plans, modules)
            parts += [rec, (rec @ n / total)[:, None]]
        return np.concatenate([*parts, glob], axis=1)

    # ------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        out = {"version": self.version, "model": self.identity.to_dict(), "grid_points": GRID_POINTS,
               "curves": self.curves.tolist(), "outlier": self.outlier.tolist(),
               "alpha": self.alpha.tolist()}
        if self.recon is not None and self.recon_levels is not None:
            out |= {"recon_levels": self.recon_levels.tolist(), "recon": self.recon.tolist()}
        return out

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON (atomically), for training without loading the model."""
        return atomic_write_text(Path(path), json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> FeatureTable:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise FeatureError(f"{path}: not a feature table ({exc})") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureTable:
        if data.get("version") != FEATURE_VERSION:
            raise FeatureError(f"feature table version {data.get('version')!r}; this allocsearch "
                               f"computes version {FEATURE_VERSION}: retrain the predictor")
        recon = data.get("recon")
        levels = np.array(data["recon_levels"], dtype=np.float64) if recon is not None else None
        return cls(ModelIdentity.from_dict(data["model"]), np.array(data["curves"], dtype=np.float64),
                   np.array(data["outlier"], dtype=np.float64), np.array(data["alpha"], dtype=np.float64),
                   recon_levels=levels,
                   recon=np.array(recon, dtype=np.float64) if recon is not None else None)
