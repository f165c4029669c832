#!/usr/bin/env bash
# ICL-vs-weight-shifting experiment, `paper` preset at its GPU budget (batch 512, 5000 Adam steps, 5 seeds;
# n = 200 and 25, d = 20, d swept 5..40), on one CUDA GPU (torch 2.11 / triton 3.6).
# Estimated (not measured) at 5-10 minutes on an H100: 19 training runs of 5000 steps each.
# usage: benchmarks/gpu_icl.sh OUTDIR
# writes OUTDIR/results.json (with run_metadata: device, versions, commit, seed), the PNG figures, OUTDIR/log.txt
set -euo pipefail
OUT="${1:?usage: $0 OUTDIR}"
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
if [ -x .venv/bin/python ] && ! "$PY" -c "import linseq" 2>/dev/null; then PY=.venv/bin/python; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
"$PY" -m linseq.cli.main icl --preset paper --device cuda --out "$OUT" --no-progress 2>&1 | tee "$OUT/log.txt"
