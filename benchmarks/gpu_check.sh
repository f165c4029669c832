#!/usr/bin/env bash
# One call on the GPU machine: install linseq and the peers (wheels carried in .whl/), run the GPU tests and
# the benchmarks, write logs, JSON and plots under $1 (or $OUT when no argument is given: the device sets
# $OUT, so a folder given as $1, e.g. $OUT/lightning, must win over it).
#   STAGES="accuracy profile tests bench bench-quick sweep lm ecoformer icl speech"  selects the parts (default: accuracy tests bench)
#   LINSEQ_COMMIT=<sha>                    stamps results (the device copy has no .git)
#   TESTS_ARGS="--maxfail 3"               extra pytest arguments of the tests stage (split on spaces)
#   TESTS_K="split or packed"              a pytest -k expression for the tests stage (a subset on a short call)
set -uo pipefail
export GPU_CALL_T0=${GPU_CALL_T0:-$(date +%s)}  # stage scripts count their deadlines from the call's start
OUT=${1:-${OUT:-/tmp/linseq-gpu}}
STAGES=${STAGES:-"accuracy tests bench"}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)'
} 2>&1 | tee "$OUT/env.txt"

if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
# linseq itself: an editable install when pip can build it offline, else straight from the source tree
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null 2>&1 \
  || export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
python3 -c 'import linseq, sys; print("linseq from", linseq.__file__)'

status=0
for stage in $STAGES; do
  case $stage in
    accuracy)
      timeout "${ACCURACY_TIMEOUT:-240}" python3 benchmarks/gpu_accuracy.py 2>&1 | tee "$OUT/accuracy.log" ;;
    sweep)
      timeout "${SWEEP_TIMEOUT:-300}" python3 benchmarks/lightning_sweep.py "$OUT/sweep.json" ${SWEEP_ARGS:-} 2>&1 | tee "$OUT/sweep.log" ;;
    profile)
      # Nsight Compute on the Lightning kernels at T=4K (unsplit and split), one launch each, plus timings
      python3 benchmarks/lightning_profile.py 4096 2>&1 | tee "$OUT/profile_times.log"
      timeout 240 ncu --clock-control none --kernel-name regex:lightning --launch-count 8 --set full \
        -f -o "$OUT/lightning_4k" python3 benchmarks/lightning_profile.py 4096 --no-time > "$OUT/ncu.log" 2>&1
      ncu --import "$OUT/lightning_4k.ncu-rep" --page details --csv > "$OUT/lightning_4k_details.csv" 2>&1
      tail -3 "$OUT/ncu.log" ;;
    tests)
      timeout "${TESTS_TIMEOUT:-300}" python3 -m pytest -q -m gpu -rs ${TESTS_K:+-k "$TESTS_K"} ${TESTS_ARGS:-} tests 2>&1 | tee "$OUT/gpu_tests.log" | tail -25
      [ "${PIPESTATUS[0]}" = 0 ] || status=1 ;;
    bench|bench-quick)
      extra=""; [ "$stage" = bench-quick ] && extra="--quick"
      timeout "${BENCH_TIMEOUT:-420}" python3 -m linseq bench $extra --out "$OUT/bench" 2>&1 | grep -v '^bench:' | tee "$OUT/bench.log" | tail -60 ;;
    *)
      script="benchmarks/gpu_${stage}.sh"
      if [ -f "$script" ]; then
        mkdir -p "/tmp/stage_$stage"
        bash "$script" "/tmp/stage_$stage" 2>&1 | tail -30
        tar -czf "$OUT/$stage.tar.gz" -C "/tmp/stage_$stage" .
        # the device returns files of at most 16 MiB: larger archives come back in parts (cat them to reassemble)
        if [ "$(stat -c %s "$OUT/$stage.tar.gz")" -gt $((15 * 1024 * 1024)) ]; then
          split -b 15M "$OUT/$stage.tar.gz" "$OUT/$stage.tar.gz.part-" && rm "$OUT/$stage.tar.gz"
        fi
      else
        echo "no $script"
      fi ;;
  esac
done
exit $status
