#!/usr/bin/env bash
# The main job on the embedded default, from a clean checkout: install, then a short study
# that searches per-block sparsity for SmolLM2-135M at 70% (the uniform plan and two ramps as
# warm starts, thirty trials in all on the search split, half of the searched ones
# short-listed by a predictor trained on earlier studies' measured plans), verifies the best
# plan and the best of each prior with a sequential Wanda prune on two calibration draws
# (evaluation split), writes the report table and plots, and exports the best plan as an
# llm-compressor recipe.
# Sized for about 15 minutes on 2 CPU cores, install included (`python benchmarks/demo.py`
# times it; the README shows the measurement); no internet beyond the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
VENV="${VENV:-.venv}"
OUT="${DEMO_OUT:-studies/smollm2-demo}"
mkdir -p "$OUT"
# What earlier studies learned (the 360 measured plans of benchmarks/predictor_data.py, at
# 50-75%): a predictor that short-lists half of the searched trials from the first one.
"$VENV/bin/allocsearch" predictor train --records benchmarks/results/predictor_records_cpu.jsonl \
    --kind additive --out "$OUT/predictor.json" --quiet
"$VENV/bin/allocsearch" search studies/smollm2-demo.yaml --output "$OUT" \
    --predictor-file "$OUT/predictor.json"
"$VENV/bin/allocsearch" export "$OUT/best_plan.json" --format llmcompressor --out "$OUT/recipe.yaml"
cat <<DONE

Outputs of the demo:
  study (SQLite, open with optuna-dashboard)  $OUT/study.db
  report (the table above, as JSON)           $OUT/report.json
  predictor (short-lists the searched trials) $OUT/predictor.json
  best plan (per-module sparsities)           $OUT/best_plan.json
  optimization history                        $OUT/history.png
  best plan vs. the priors, per block         $OUT/best_vs_priors.png
  llm-compressor recipe of the best plan      $OUT/recipe.yaml
Prune with it:  $VENV/bin/allocsearch prune --plan $OUT/best_plan.json --method wanda --nsamples 16 --seqlen 256 --out pruned70/
DONE
