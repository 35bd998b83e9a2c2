#!/usr/bin/env bash
# On a machine with a GPU (≤ 5 minutes): the tests that touch CUDA, then groups of R = 1 … 64 seeds
# (`train --seeds`) on --device cuda. CI never runs this; a CPU-only machine skips the CUDA tests.
#   bash benchmarks/device_check.sh [OUT]      # default OUT: results/device_check
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/device_check}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
"$PY" -c 'import torch; assert torch.cuda.is_available(), "no GPU here"; print(torch.cuda.get_device_name())' \
  | tee "$OUT/device.txt"
timeout 120 "$PY" -m pytest -q -k cuda tests/ 2>&1 | tail -5 | tee "$OUT/tests.txt"
timeout 150 "$PY" benchmarks/bench_group.py --device cuda --groups 1,4,16,64 --iterations 3 --out "$OUT" \
  | tee "$OUT/groups.txt"
