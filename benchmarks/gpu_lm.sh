#!/usr/bin/env bash
# LM measurements on one GPU, at most ~4 minutes: GPU checks of the LM (cached decoding == full forward with the
# Triton backend), then quality / training throughput / generation for all-linear, hybrid and all-softmax models.
#   usage: benchmarks/gpu_lm.sh OUTDIR
# Writes OUTDIR/lm_tests.log, lm_bench.log, lm_bench.json (+ run_metadata), lm_*.png and lm_tables.md.
# Copy OUTDIR/lm_bench.json and the PNGs to benchmarks/results/lm/ and re-render docs tables with
#   python benchmarks/lm/render_table.py benchmarks/results/lm/lm_bench.json --out benchmarks/results/lm/lm_tables.md
set -uo pipefail
OUT=${1:?usage: benchmarks/gpu_lm.sh OUTDIR}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
status=0
timeout 45 "$PY" -m pytest -q -p no:cacheprovider tests/models/test_lm_gpu.py 2>&1 | tee "$OUT/lm_tests.log" || status=1
timeout 175 "$PY" benchmarks/lm/bench_lm.py --out "$OUT" --budget-s 120 2>&1 | tee "$OUT/lm_bench.log" || status=1
if [ -f "$OUT/lm_bench.json" ]; then
  "$PY" benchmarks/lm/render_table.py "$OUT/lm_bench.json" --out "$OUT/lm_tables.md" && cat "$OUT/lm_tables.md"
fi
exit $status
