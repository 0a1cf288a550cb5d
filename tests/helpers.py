"""Test helpers: a tiny loaded model with a character tokenizer, and its profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from allocsearch.data import DataConfig
from allocsearch.evaluate import Evaluator, EvaluatorConfig
from allocsearch.models import LoadedModel, ModelAdapter
from allocsearch.plan import Plan
from allocsearch.profile import Profile, compute_profile
from tests.conftest import make_tiny


class CharTokenizer:
    """One token per byte (mod vocab): enough for window arithmetic without a hub."""

    def __init__(self, vocab: int = 128) -> None:
        self.vocab = vocab

    def __call__(self, text: str, return_tensors: str = "pt", **_: Any) -> Any:
        class Out:
            input_ids = torch.tensor([[ord(c) % self.vocab for c in text]])

        return Out()


def tiny_loaded(arch: str = "llama", seed: int = 0, blocks: int | None = None) -> LoadedModel:
    model = make_tiny(arch, seed, blocks)
    return LoadedModel(model, CharTokenizer(), ModelAdapter(model), f"tiny-{arch}", torch.device("cpu"))


def tiny_profile(arch: str = "llama", seed: int = 0, blocks: int | None = None) -> Profile:
    """The tiny model's profile on 4 random windows of 32 tokens; ``blocks`` overrides the
    block count (2)."""
    lm = tiny_loaded(arch, seed, blocks)
    windows = torch.randint(0, 128, (4, 32), generator=torch.Generator().manual_seed(seed))
    prof = compute_profile(lm, windows, progress=False)
    prof.data = DataConfig("embedded", 4, 32, seed)  # BESA draws its own windows from here
    return prof


def tiny_evaluator(config: EvaluatorConfig) -> Evaluator:
    """An Evaluator on the tiny llama and its profile, as the study tests share it."""
    prof = tiny_profile()
    assert prof.loaded is not None
    return Evaluator(prof.loaded, prof, config, progress=False)


def save_tiny_model(path: Path, *, hidden: int = 64, blocks: int = 2, seed: int = 0) -> Path:
    """A tiny random LLaMA with a byte-level tokenizer, saved as a model directory that
    ``load_model`` and the CLI read: for tests that start processes."""
    from allocsearch.models.random import save_random_llama

    return save_random_llama(path, hidden=hidden, blocks=blocks, seed=seed)


def tiny_study_file(tmp_path: Path, name: str, **over: Any) -> Path:
    """A study YAML on a saved tiny model (``tmp_path / "tiny"``) at 60%, small data and
    evaluator, output in ``tmp_path / "out"``; ``over`` replaces top-level keys."""
    import yaml

    save_tiny_model(tmp_path / "tiny")
    config = {"name": name, "model": str(tmp_path / "tiny"), "device": "cpu", "target": 0.6,
              "data": {"nsamples": 2, "seqlen": 32}, "evaluator": {"seqlen": 32, "fidelities": [64, 128]},
              "n_trials": 1, "output": str(tmp_path / "out")} | over
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def saved_tiny_with_ramp(tmp_path: Path, target: float) -> tuple[Path, LoadedModel, DataConfig, Plan]:
    """A saved tiny model (``tmp_path / "tiny"``), it loaded, the calibration the CLI tests
    pass as ``--nsamples 4 --seqlen 32 --seed 1``, and a ramp (slope 0.3) plan at ``target``
    on its profile, saved as ``tmp_path / "plan.json"``."""
    from allocsearch.allocation import get_allocator
    from allocsearch.models import load_model
    from allocsearch.profile import build_profile

    model = save_tiny_model(tmp_path / "tiny")
    lm = load_model(str(model), device="cpu")
    cal = DataConfig("embedded", 4, 32, 1)
    plan = get_allocator("ramp", slope=0.3).allocate(build_profile(lm, cal, progress=False), target)
    plan.save(tmp_path / "plan.json")
    return model, lm, cal, plan


def module_levels_study(out: Path, warm_start: list[dict[str, Any]], n_trials: int) -> dict[str, Any]:
    """A tiny per-module level study's config data: the shipped ``module_levels`` space, the
    EvoPress-style sampler, a SparseGPT database calibrated at the uniform plan (0.3..0.7)."""
    return {"name": "mods", "target": 0.5, "space": "module_levels", "n_trials": n_trials,
            "data": {"source": "embedded", "nsamples": 4, "seqlen": 32, "seed": 0},
            "evaluator": {"seqlen": 32, "fidelities": [64], "batch_size": 2, "masks": "database",
                          "pruner": "sparsegpt", "reference": "uniform", "levels": "0.3:0.7:0.05"},
            "sampler": {"name": "evopress", "params": {"step": 0.05}}, "pruner": "evopress",
            "warm_start": warm_start,
            "verify": {"pruner": "sparsegpt", "top": 1, "nsamples": 2, "seqlen": 32, "eval_windows": 2},
            "output": str(out)}
