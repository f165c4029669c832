#!/usr/bin/env bash
# EcoFormer LRA-style benchmark, full preset, on one GPU (H100; torch 2.11 / triton 3.6). Must finish < 4 minutes.
# usage: benchmarks/gpu_ecoformer.sh OUTDIR
# writes OUTDIR/lra_results.json (with run_metadata), OUTDIR/lra_summary.png, OUTDIR/lra_tables.md, OUTDIR/log.txt
set -euo pipefail
OUT="${1:?usage: $0 OUTDIR}"
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
if [ -x .venv/bin/python ] && ! "$PY" -c "import linseq" 2>/dev/null; then PY=.venv/bin/python; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
# the whole run is capped: per-model training time is capped inside the preset as well
timeout 230 "$PY" -m linseq.cli.main lra --preset full --attn softmax,lightning,ecoformer --out "$OUT" 2>&1 \
  | tee "$OUT/log.txt"
