#!/usr/bin/env bash
# Install, then run lint, type checks and the whole test suite (real-model tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The many-worker tests run against a real PostgreSQL server on loopback (Debian's package).
ALLOCSEARCH_TEST_POSTGRES="$(./scripts/postgres.sh)"
export ALLOCSEARCH_TEST_POSTGRES
VENV="${VENV:-.venv}"
"$VENV/bin/ruff" check allocsearch tests benchmarks
"$VENV/bin/mypy"
"$VENV/bin/python" -m pytest "$@"
