#!/usr/bin/env bash
# Install, then prune the embedded default (SmolLM2-135M) with Wanda at 50% on the
# embedded corpus, save it to pruned/, and measure its perplexity. ~6 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
VENV="${VENV:-.venv}"
"$VENV/bin/allocsearch" eval --model smollm2-135m --data embedded
"$VENV/bin/allocsearch" prune --model smollm2-135m --method wanda --sparsity 0.5 --out pruned/
"$VENV/bin/allocsearch" eval --model pruned/ --data embedded
