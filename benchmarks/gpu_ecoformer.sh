#!/usr/bin/env bash
# EcoFormer LRA-style benchmark on one GPU (H100, 16 CPU cores; torch 2.11 / triton 3.6), preset `gpu`: data in 16
# processes, the six trainings (2 tasks x 3 attentions) at once in 6 processes on the GPU, each capped at 240 s of
# training after an untimed warm-up step, then the scaling sweep on the idle GPU. About 6 minutes; capped at 450 s.
# usage: benchmarks/gpu_ecoformer.sh OUTDIR
# writes OUTDIR/lra_results.json (with run_metadata), OUTDIR/lra_summary.png, OUTDIR/lra_tables.md, OUTDIR/log.txt
#   LRA_PRESET=gpu|full|ci  LRA_JOBS=N  LRA_ATTN=softmax,lightning,ecoformer  LRA_TIMEOUT=450  LRA_ARGS="..."
#   e.g. a CPU check of this script: LRA_PRESET=ci LRA_JOBS=2 LRA_ARGS="--steps 20" benchmarks/gpu_ecoformer.sh /tmp/lra
set -euo pipefail
OUT="${1:?usage: $0 OUTDIR}"
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
if [ -x .venv/bin/python ] && ! "$PY" -c "import linseq" 2>/dev/null; then PY=.venv/bin/python; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PRESET="${LRA_PRESET:-gpu}"
JOBS="${LRA_JOBS:-6}"
# the whole run is capped; per-model training time is capped inside the preset as well
# shellcheck disable=SC2086  # LRA_ARGS is a list of extra arguments
timeout "${LRA_TIMEOUT:-450}" "$PY" -m linseq.cli.main lra --preset "$PRESET" --jobs "$JOBS" \
  --attn "${LRA_ATTN:-softmax,lightning,ecoformer}" --out "$OUT" ${LRA_ARGS:-} 2>&1 | tee "$OUT/log.txt"
