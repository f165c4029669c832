#!/usr/bin/env bash
# Speech enhancement on one GPU, in one call of about 8 minutes (SPEECH_MINUTES=5):
#   test set from the carried pools -> FullSubNet, Fast FullSubNet m=2, m=8 and the Lightning m=2 variant trained
#   concurrently for the same wall time -> evaluation of the four + noisy + spectral gating -> GPU real-time factors
#   -> OUT_DIR/results.json, results.md, speech_results.png, checkpoints/<SPEECH_KEEP>/, train/, eval/, logs/.
# usage: benchmarks/gpu_speech.sh OUT_DIR        (also STAGES=speech benchmarks/gpu_check.sh, which tars OUT_DIR)
# needs: data/speech_pools/ carried (linseq speech build-data), and in .whl/ the wheels of soundfile, cffi,
#        pycparser, pystoi plus the pesq sdist (PyPI has no pesq wheel; it is built here if a compiler is present).
# env: SPEECH_MINUTES (5), SPEECH_TOTAL_S (510), SPEECH_MODELS, SPEECH_KEEP (all), SPEECH_TEST_N (150),
#      SPEECH_ALLOW_NO_METRICS=1 (train even when pesq or pystoi is missing: validation by SI-SDR alone);
#      see benchmarks/speech_gpu.py.
set -uo pipefail
OUT="${1:?usage: $0 OUT_DIR}"
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
"$PY" -c "import linseq" 2>/dev/null || export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
# the wheels in .whl/ (gpu_check.sh installs them already; a direct call does it here)
if ! "$PY" -c "import soundfile, pystoi" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site_speech .whl/*.whl \
    && export PYTHONPATH="/tmp/site_speech${PYTHONPATH:+:$PYTHONPATH}"
fi
# pesq ships only as an sdist: build it for this Python (needs gcc, the Python headers, Cython and numpy)
if ! "$PY" -c "import pesq" 2>/dev/null; then
  sdist=$(ls .whl/pesq-*.tar.gz 2>/dev/null | head -1)
  if [ -n "$sdist" ]; then
    rm -rf /tmp/pesq_src && mkdir -p /tmp/pesq_src && tar -xzf "$sdist" -C /tmp/pesq_src
    src=$(ls -d /tmp/pesq_src/pesq-*)
    sed -i "s/, *'pytest-runner'//" "$src/setup.py"   # a setup_requires that would be downloaded
    if (cd "$src" && timeout 240 "$PY" setup.py -q build_ext --inplace) >"$OUT/pesq_build.log" 2>&1; then
      mkdir -p /tmp/site_pesq && cp -r "$src/pesq" /tmp/site_pesq/
      export PYTHONPATH="/tmp/site_pesq${PYTHONPATH:+:$PYTHONPATH}"
    fi
  fi
fi
if "$PY" -c "import pesq, pystoi" 2>/dev/null; then
  echo "metrics: pesq and pystoi available"
else
  echo "metrics: pesq or pystoi missing (see $OUT/pesq_build.log)"
  # without them a trainer's validation ranks its checkpoints by SI-SDR alone, so its best/ is not chosen as in
  # every other run (runs 21 and 22 of 2026-12-07 were); refuse unless asked for
  if [ "${SPEECH_ALLOW_NO_METRICS:-0}" != 1 ]; then
    echo "refusing to train: carry .whl/pystoi-*.whl and .whl/pesq-*.tar.gz (docs/speech_data.md), or set" \
         "SPEECH_ALLOW_NO_METRICS=1 to validate by SI-SDR alone"
    exit 3
  fi
fi
"$PY" benchmarks/speech_gpu.py "$OUT" 2>&1 | tee "$OUT/log.txt"
exit "${PIPESTATUS[0]}"
