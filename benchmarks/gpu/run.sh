#!/usr/bin/env bash
# Device check: GPU tests and the device benchmark, from the working tree, installing nothing.
# Usage (on the GPU machine, repository root): OUT=/some/dir bash benchmarks/gpu/run.sh
# Budget: about 8 minutes on one H200 (torch and transformers preinstalled).
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
# 2. Timing mode at a 7B-shape target and a ~100M drafter: ~4 min.
timeout 300 "$PY" benchmarks/gpu/bench.py --out "$OUT" --shape 7b --drafter-shape 100m \
  --device cuda:0 --dtype bfloat16 > "$OUT/bench.txt" 2>&1
echo "bench rc=$?" >> "$OUT/bench.txt"
cat "$OUT/machine.txt" "$OUT/summary.txt" 2>/dev/null; tail -3 "$OUT/tests.txt"
