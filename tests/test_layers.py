"""The package's layers only look down: no module imports from a layer above its own, not even
lazily inside a function (the design's one-direction data flow)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "allocsearch"

#: Layers from the bottom; a module may import its own layer and the ones before it.
LAYERS: list[tuple[str, ...]] = [
    ("_registry", "io", "models", "data", "pruners"),
    ("engine",),
    ("actions", "plan", "plan_codec", "budget", "profile", "database", "plan_view", "export"),
    ("structure", "apply"),
    ("allocation",),
    ("evaluate",),
    ("predictor",),
    ("search",),
    ("pipeline",),
    ("cli",),
]


def _layer(module: str) -> int:
    """Layer of ``allocsearch.<top>...``; the package root (``__init__``, version) is 0."""
    parts = module.split(".")
    if len(parts) < 2:
        return 0
    for i, names in enumerate(LAYERS):
        if parts[1] in names:
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def _imports(path: Path) -> list[str]:
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
    return [m for m in out if m == "allocsearch" or m.startswith("allocsearch.")]


FILES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_look_down(path: Path) -> None:
    module = "allocsearch." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    module = module.removesuffix(".__init__")
    mine = _layer(module)
    upward = [m for m in _imports(path) if _layer(m) > mine]
    assert not upward, f"{module} (layer {mine}) imports from above: {upward}"


def test_every_top_level_module_has_a_layer() -> None:
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in FILES}
    tops -= {"__init__"}
    assert tops <= {name for layer in LAYERS for name in layer}
