#!/usr/bin/env bash
# GPU checks for gfm inference on one GPU, under 8 minutes, installing nothing: class-map
# agreement CPU vs CUDA and fp32/bf16/fp16, model windows/s and Mpx/s (default weights and
# less_vit_base at C=13, windows 512 and 1024), a full 10980^2 12-band tile end to end.
#   bash bench/gpu.sh [--parts agree speed tile]      (method: docstring of bench/gpu.py)
# Without a visible GPU the CUDA rows print "skipped: ..." and only the CPU rows run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
exec timeout 470 "$PYTHON" bench/gpu.py "$@"
