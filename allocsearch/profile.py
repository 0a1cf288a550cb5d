"""Per-module statistics computed once per (model weights, data, seed) and cached on disk.

A profile holds, for every prunable layer of the *dense* model: its shape, the squared
input-channel norms of its calibration inputs (Wanda's ||X_j||^2), their per-channel sums
(with the norms: mean and variance, for structured pruning) and the heavy-tail exponent of
its weight spectrum (AlphaPruning's Hill estimate); and for every block its influence
(ShortGPT: 1 - mean cosine similarity of the block's input and output residual, also per
attention and MLP sub-block). Wanda scores and outlier ratios are derived from those and the
dense weights, which the profile can hold a reference to while the model is loaded.

Cache layout: ``<cache>/profiles/<key>/{meta.json, norms.safetensors}``; the key hashes the
model fingerprint, a digest of its weights, the data source, window count and length,
and the seed, so a changed input never reuses a stale profile.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

from allocsearch.budget import identity_from_adapter
from allocsearch.data.windows import DataConfig, calibration_windows
from allocsearch.engine import block_stats, capture_block_inputs
from allocsearch.io import atomic_write_bytes, atomic_write_text
from allocsearch.models.loading import LoadedModel, default_cache_dir
from allocsearch.plan import ModelIdentity, block_of
from allocsearch.pruners.wanda_sparsify import wanda_scores

log = logging.getLogger(__name__)
PROFILE_VERSION = 2
#: The influences a profile holds per block: the whole block, and each sub-block.
INFLUENCE_KINDS = ("block", "attention", "mlp")


def hill_alpha(weight: torch.Tensor, tail: float = 0.5) -> float:
    """Power-law exponent of the eigenvalues of W^T W by the Hill estimator.

    With the nonzero eigenvalues sorted ascending and the top ``tail`` share as the tail
    (its smallest value ``x_min``): alpha = 1 + k / sum_i ln(lambda_i / x_min).
    Smaller alpha means a heavier tail, read by AlphaPruning as a better-trained layer.
    """
    eig = torch.linalg.svdvals(weight.double()).square().sort().values
    eig = eig[eig > 1e-12]
    start = int(eig.numel() * (1.0 - tail))
    t = eig[start:]
    logs = torch.log(t / t[0])
    return float(1.0 + t.numel() / logs.sum().clamp_min(1e-12))


def tensor_digest(weight: torch.Tensor) -> bytes:
    """A content digest of one weight (any shape, dtype, device): its first row and the sum of
    all its float32 bit patterns read as integers. An integer sum is exact whatever order the
    reduction takes; a float sum is not, and its order follows torch's thread count, so a
    digest from one would key the same weights apart under another ``OMP_NUM_THREADS``."""
    w = weight.detach().float().contiguous()  # (out, in)
    bits = int(w.view(torch.int32).to(torch.int64).sum())  # |sum| < 2^31 x numel: no overflow
    return w[0].cpu().numpy().tobytes() + bits.to_bytes(16, "little", signed=True)


def weights_digest(loaded: LoadedModel) -> str:
    """A cheap content digest of the prunable weights (:func:`tensor_digest` of each, by name):
    the same for any thread count and device."""
    h = hashlib.sha256()
    for name, layer in loaded.adapter.prunable_layers().items():
        h.update(name.encode())
        h.update(tensor_digest(loaded.adapter.get_weight(layer)))
    return h.hexdigest()[:16]


@dataclass
class Profile:
    identity: ModelIdentity
    key: str
    data: DataConfig
    tokens: int
    sq_norm: dict[str, torch.Tensor]  # name -> (in,) float32
    alpha: dict[str, float]
    total: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (in,) sum of inputs
    #: kind ("block", "attention", "mlp") -> per-block 1 - mean cos(input, output); the
    #: sub-block kinds only for LLaMA-like models
    influence: dict[str, list[float]] = field(default_factory=dict)
    #: The dense model, while it is loaded (Wanda scores, BESA); None for a bare profile.
    loaded: LoadedModel | None = field(default=None, repr=False)
    #: True when this profile was read from the disk cache rather than computed.
    from_cache: bool = False
    #: Dense weights to read instead of the live model's (set by the Evaluator, which
    #: writes masked weights into the model while a search runs).
    dense: Mapping[str, torch.Tensor] | None = field(default=None, repr=False)
    _layers: dict[str, torch.nn.Module] | None = field(default=None, init=False, repr=False)

    def numel(self, name: str) -> int:
        return self.identity.numel(name)

    def blocks(self) -> list[list[str]]:
        """Module names grouped by block, blocks in order."""
        out: list[list[str]] = [[] for _ in range(self.identity.num_blocks)]
        for name in self.identity.shapes:
            out[block_of(name)].append(name)
        return out

    def wanda_scores(self, name: str) -> torch.Tensor:
        """(out, in) Wanda scores of a dense layer; needs the model attached."""
        w = self.weight(name)
        return wanda_scores(w, self.sq_norm[name].to(w.device))

    def channel_moments(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(in,) mean and variance of a layer's calibration inputs, per channel."""
        if name not in self.total:
            raise ValueError(f"this profile has no input means for {name}; rebuild it")
        mean = self.total[name].double() / self.tokens
        var = (self.sq_norm[name].double() / self.tokens - mean.square()).clamp_min(0.0)
        return mean.float(), var.float()

    def weight(self, name: str) -> torch.Tensor:
        """(out, in) dense weight of a layer; needs the model attached."""
        if self.dense is not None:
            return self.dense[name]
        if self.loaded is None:
            raise ValueError("this profile has no model attached; build it with the model loaded")
        if self._layers is None:  # one module walk, not one per call (OWL asks 210 times)
            self._layers = self.loaded.adapter.prunable_layers()
        return self.loaded.adapter.get_weight(self._layers[name])


def profile_key(identity: ModelIdentity, digest: str, data: DataConfig) -> str:
    raw = json.dumps(
        [PROFILE_VERSION, identity.fingerprint, digest, data.source, data.nsamples,
         data.seqlen, data.seed]
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def build_profile(
    loaded: LoadedModel,
    data: DataConfig,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
    batch_size: int = 1,
) -> Profile:
    """Profile a dense model, or reuse the cached profile for the same inputs (and say so)."""
    identity = identity_from_adapter(loaded.adapter, loaded.name)
    key = profile_key(identity, weights_digest(loaded), data)
    folder = (cache_dir or default_cache_dir()) / "profiles" / key
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        try:
            cached = _load_cached(folder, identity, key, data, loaded)
        except Exception as exc:  # any damage to a cache entry means: recompute it
            log.warning("cached profile %s is unreadable (%s: %s); recomputing it", folder,
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        else:
            log.info("reusing cached profile %s", folder)
            return cached

    windows = calibration_windows(loaded.tokenizer, data.source, data.nsamples, data.seqlen, data.seed)
    start = time.perf_counter()
    prof = compute_profile(loaded, windows, data, progress=progress, batch_size=batch_size)
    prof.key = key
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in prof.sq_norm.items()}
    tensors |= {f"total:{k}": v.contiguous() for k, v in prof.total.items()}
    atomic_write_bytes(folder / "norms.safetensors", save(tensors))
    meta = {
        "version": PROFILE_VERSION, "model": loaded.name, "fingerprint": identity.fingerprint,
        "data": vars(data), "tokens": prof.tokens, "alpha": prof.alpha,
        "influence": prof.influence, "seconds": time.perf_counter() - start,
    }
    atomic_write_text(meta_path, json.dumps(meta, indent=1))  # last: it marks the profile done
    log.info("profiled %s in %.1fs; cached at %s", loaded.name, meta["seconds"], folder)
    return prof


def _load_cached(folder: Path, identity: ModelIdentity, key: str, data: DataConfig,
                 loaded: LoadedModel) -> Profile:
    meta = json.loads((folder / "meta.json").read_text())
    tensors = load_file(str(folder / "norms.safetensors"))
    alpha = {k: float(v) for k, v in meta["alpha"].items()}
    norms = {k: v for k, v in tensors.items() if not k.startswith("total:")}
    totals = {k[6:]: v for k, v in tensors.items() if k.startswith("total:")}
    if set(norms) != set(identity.shapes):
        raise ValueError(f"it holds {len(norms)} modules, the model has {len(identity.shapes)}")
    return Profile(identity, key, data, int(meta["tokens"]), norms, alpha, totals,
                   dict(meta["influence"]), loaded, from_cache=True)


def compute_profile(
    loaded: LoadedModel,
    windows: torch.Tensor,
    data: DataConfig | None = None,
    *,
    progress: bool = True,
    batch_size: int = 1,
) -> Profile:
    """Profile a dense model on given (n, seqlen) windows, without the disk cache."""
    identity = identity_from_adapter(loaded.adapter, loaded.name)
    norms, totals, influence, tokens = _dense_pass(loaded, windows, batch_size, progress)
    layers = loaded.adapter.prunable_layers()
    alpha = {
        n: hill_alpha(loaded.adapter.get_weight(m).to(loaded.device))  # offloaded: off CPU
        for n, m in tqdm(layers.items(), desc="spectra", disable=not progress)
    }
    if data is None:
        data = DataConfig("windows", int(windows.shape[0]), int(windows.shape[1]), 0)
    return Profile(identity, "", data, tokens, {k: v.cpu() for k, v in norms.items()}, alpha,
                   {k: v.cpu() for k, v in totals.items()}, influence, loaded)


def _keep_input(store: list[torch.Tensor], _module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
    """Pre-hook body: keep the (B, T, H) residual a module receives."""
    store.append(args[0].detach())


def _cosine_gap(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """1 - mean over tokens of cos(a_t, b_t); a, b: batches of (B, T, H) residuals."""
    total, count = 0.0, 0
    for x, y in zip(a, b, strict=True):
        cos = torch.nn.functional.cosine_similarity(x.float(), y.float(), dim=-1)  # (B, T)
        total += float(cos.sum())
        count += cos.numel()
    return 1.0 - total / max(count, 1)


def _dense_pass(
    loaded: LoadedModel, windows: torch.Tensor, batch_size: int, progress: bool
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, list[float]], int]:
    """One dense pass block by block: hooks accumulate every layer's input norms and sums,
    and each block's (and sub-block's) influence is read off its residual stream."""
    adapter = loaded.adapter
    batches = capture_block_inputs(loaded.model, adapter, windows, batch_size)
    norms: dict[str, torch.Tensor] = {}
    totals: dict[str, torch.Tensor] = {}
    structured = adapter.structure() is not None
    kinds = INFLUENCE_KINDS if structured else INFLUENCE_KINDS[:1]
    influence: dict[str, list[float]] = {k: [] for k in kinds}
    for index in tqdm(range(adapter.num_blocks), desc="profile", disable=not progress):
        before = [b.hidden for b in batches]  # keep_outputs rebinds, never writes in place
        mids: list[torch.Tensor] = []
        handle = adapter.mid_norm(index).register_forward_pre_hook(
            functools.partial(_keep_input, mids)) if structured else None
        try:
            with adapter.resident(index):
                stats, _ = block_stats(adapter, index, batches, norms=True, hessian=False,
                                       keep_outputs=True)
        finally:
            if handle is not None:
                handle.remove()
        after = [b.hidden for b in batches]
        influence["block"].append(_cosine_gap(before, after))
        if structured:
            influence["attention"].append(_cosine_gap(before, mids))
            influence["mlp"].append(_cosine_gap(mids, after))
        for name, st in stats.items():
            norms[name] = st.require_sq_norm("profile")
            assert st.total is not None
            totals[name] = st.total
    return norms, totals, influence, int(windows.numel())
