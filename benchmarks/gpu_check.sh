#!/usr/bin/env bash
# The prepared GPU check: on a CUDA machine, the CUDA tests and the GPU speed benchmark
# (in-house vs qpth on the same GPU, B = 1 ... 4096, n = 100 and 500, float32 and float64,
# CUDA graphs on and off), within 8 minutes, writing reports/performance/cuda.{md,json}.
# Without a CUDA device the CUDA part is skipped, and the script says so.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, qpbench importable
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: no CUDA device on this machine; the CUDA tests and the GPU benchmark are skipped."
    echo "gpu_check: smoke run of the benchmark's code on the CPU instead:"
    python benchmarks/gpu_speed.py --device cpu --quick --out "${TMPDIR:-/tmp}/gpu_check_smoke"
    exit 0
fi
python -c 'import torch; print("gpu_check:", torch.cuda.get_device_name(0), "torch", torch.__version__)'
# The tests that need a GPU (they skip elsewhere), then the benchmark (bounded to 420 s).
timeout 150 python -m pytest -q -p no:cacheprovider tests -k "cuda" || echo "gpu_check: CUDA tests failed (exit $?)"
timeout 450 python benchmarks/gpu_speed.py --device cuda --budget 400
