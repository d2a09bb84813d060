#!/usr/bin/env bash
# Device check: GPU tests and the device benchmark suite, from the working tree, installing nothing.
# Usage (on the GPU machine, repository root): OUT=/some/dir bash benchmarks/gpu/run.sh
# Budget: at most about 8.5 minutes (timeouts 200 + 150 + 180 s) on one H100/H200 (torch,
# transformers and pytest-benchmark preinstalled).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-out/gpu}"
mkdir -p "$OUT"
export PYTHONPATH=. HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY="${PYTHON:-python3}"
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)"
} > "$OUT/machine.txt" 2>&1
# 1. The runner's tests, CPU and CUDA (the CUDA ones skip without a GPU): ~2 min.
timeout 200 "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu_cuda.py tests/test_gpu_runner.py \
  tests/test_gpu_kv_cache.py -x > "$OUT/tests.txt" 2>&1
echo "tests rc=$?" >> "$OUT/tests.txt"
# 2. Device timings (pytest-benchmark, CUDA-synchronised clock) at a 7B-shape target and a
#    ~100M drafter, bfloat16, in two calls so that one timing out keeps the other's JSON:
#    (a) pass costs, P passes at once, DSI threads vs processes for P = 1, 2, 4, and at
#        P = 2 the safe vs paper policy with layer cancellation on and off: ~2.5 min;
#    (b) non-SI/SI/DSI at a = 0.5, 0.8 beside their predictions: ~2 min.
bench() {  # NAME TIMEOUT -k EXPR
  BENCH_SHAPE="${BENCH_SHAPE:-7b}" BENCH_DRAFTER="${BENCH_DRAFTER:-100m}" timeout "$2" \
    "$PY" -m pytest -q -p no:cacheprovider benchmarks/gpu/test_bench_device.py "${@:3}" \
    --benchmark-only --benchmark-json="$OUT/$1.json" --benchmark-columns=min,median,rounds \
    > "$OUT/$1.txt" 2>&1
  echo "$1 rc=$?" >> "$OUT/$1.txt"
}
bench bench-passes 150 -k "not test_run_threads"
bench bench-runs 180 -k test_run_threads
for f in bench-passes bench-runs; do
  [ -f "$OUT/$f.json" ] && "$PY" benchmarks/gpu/summary.py "$OUT/$f.json" >> "$OUT/summary.txt" 2>&1
done
cat "$OUT/machine.txt" "$OUT/summary.txt" 2>/dev/null
tail -n 3 "$OUT/tests.txt" "$OUT/bench-passes.txt" "$OUT/bench-runs.txt"
