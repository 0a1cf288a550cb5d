"""Feature tables cached on disk beside the profile they come from.

A table's curves sort every weight of every module by its Wanda score (seconds for
SmolLM2-135M on a CPU, minutes for a 7B model); they depend only on the dense weights and the
profile's input norms, so each profiled (model, data) computes them once:
``<cache>/features/<profile key>-v<FEATURE_VERSION>.json``, written atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from allocsearch.data.windows import DataConfig
from allocsearch.models.loading import default_cache_dir
from allocsearch.predictor.features import FEATURE_VERSION, FeatureError, FeatureTable
from allocsearch.profile import Profile, build_profile

log = logging.getLogger(__name__)


def cached_feature_table(
    profile: Profile,
    recon: tuple[Sequence[float], Mapping[str, Sequence[float]]] | None = None,
    *,
    cache_dir: Path | None = None,
) -> FeatureTable:
    """:meth:`FeatureTable.from_profile`, its reconstruction-free part read from the cache when
    the profile has a key (one built by :func:`allocsearch.profile.build_profile`) and an
    earlier run stored it; computed and stored otherwise. A damaged entry is recomputed."""
    if not profile.key:
        return FeatureTable.from_profile(profile, recon)
    path = (cache_dir or default_cache_dir()) / "features" / f"{profile.key}-v{FEATURE_VERSION}.json"
    if path.is_file():
        try:
            table = FeatureTable.load(path)
            table.check_identity(profile.identity, "the profile is")
            return table.with_recon(recon)
        except FeatureError as exc:
            log.warning("cached feature table %s is unusable (%s); recomputing it", path, exc)
    table = FeatureTable.from_profile(profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.save(path)
    return table.with_recon(recon)


def build_feature_table(model: str, data: DataConfig, *, device: str = "auto", dtype: str = "float32",
                        progress: bool = True) -> FeatureTable:
    """Load ``model``, reuse (or compute) its profile on ``data``, and its feature table."""
    from allocsearch.models import load_model

    loaded = load_model(model, device=device, dtype=dtype)
    return cached_feature_table(build_profile(loaded, data, progress=progress))
