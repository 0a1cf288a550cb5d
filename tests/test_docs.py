"""The README and docs/ commands parse as written, and their links resolve."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from allocsearch.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _commands() -> list[tuple[str, str]]:
    """Every indented ``allocsearch ...`` line of the README and docs (continuations joined)."""
    out = []
    for doc in DOCS:
        text = re.sub(r"\\\n\s*", " ", doc.read_text())
        for line in text.splitlines():
            m = re.match(r"^\s{4,}allocsearch (.+)$", line)
            if m and "..." not in line:  # a placeholder such as postgresql://... is not a command
                out.append((doc.name, m.group(1).split("  #")[0].strip()))
    return out


@pytest.mark.parametrize(("doc", "command"), _commands(), ids=[f"{d}: {c[:50]}" for d, c in _commands()])
def test_documented_commands_parse(doc: str, command: str) -> None:
    args = build_parser().parse_args(shlex.split(command))
    assert callable(args.func)


def test_links_between_docs_resolve() -> None:
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text()):
            if not target.startswith("http") and not (doc.parent / target).exists():
                broken.append(f"{doc.name}: {target}")
    assert broken == []
