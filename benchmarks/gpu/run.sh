#!/usr/bin/env bash
# Device check: GPU tests and the device benchmark suite, from the working tree, installing nothing.
# Usage (on the GPU machine, repository root): OUT=/some/dir bash benchmarks/gpu/run.sh
# Budget: about 8 minutes on one H100/H200 (torch, transformers, pytest-benchmark preinstalled).
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
timeout 240 "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu_cuda.py tests/test_gpu_runner.py \
  tests/test_gpu_kv_cache.py -x > "$OUT/tests.txt" 2>&1
echo "tests rc=$?" >> "$OUT/tests.txt"
# 2. Device timings (pytest-benchmark, CUDA-synchronised clock) at a 7B-shape target and a
#    ~100M drafter, bfloat16: pass costs, P passes at once, non-SI/SI/DSI beside their
#    predictions, DSI threads vs processes for P = 1, 2, 4: ~4 min. JSON kept in $OUT.
BENCH_SHAPE="${BENCH_SHAPE:-7b}" BENCH_DRAFTER="${BENCH_DRAFTER:-100m}" \
  timeout 300 "$PY" -m pytest -q -p no:cacheprovider benchmarks/gpu/test_bench_device.py \
  --benchmark-only --benchmark-json="$OUT/bench.json" --benchmark-columns=min,median,rounds \
  > "$OUT/bench.txt" 2>&1
echo "bench rc=$?" >> "$OUT/bench.txt"
"$PY" benchmarks/gpu/summary.py "$OUT/bench.json" > "$OUT/summary.txt" 2>&1
cat "$OUT/machine.txt" "$OUT/summary.txt" 2>/dev/null; tail -3 "$OUT/tests.txt" "$OUT/bench.txt"
