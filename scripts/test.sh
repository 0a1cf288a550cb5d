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
# One pytest worker per core, each file on one worker (module fixtures built once), one
# torch thread per worker: two workers on 2 cores, twice as fast as one worker with two threads.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
"$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-auto}" --dist loadfile "$@"
