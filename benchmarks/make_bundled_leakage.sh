#!/usr/bin/env bash
# Leakage of the nine bundled profile tables (data/profiles/*.json), written in place by `cli.py leakage`.
# Settings (recorded in each table's leakage_meta): random-init weights ("none"), the embedded
# scikit-image photographs, budget quick, seed 0, CPU; 64×64 images for ResNets/VGGs, 32×32 (native) for LeNets.
# Run from the repository root after `python cli.py profile --all --out data/profiles/`.
# Resumable: an interrupted run keeps finished split points; rerunning skips them (add --force to redo).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
DEVICE="${DEVICE:-cpu}"
THREADS="${THREADS:-2}"   # THREADS=1 is several times faster while other jobs share the 2 cores
for model in lenet7 lenet9 lenet12; do
  "$PY" cli.py leakage --model "$model" --budget quick --seed 0 --device "$DEVICE" --threads "$THREADS" "$@"
done
for model in resnet18 resnet34 resnet50 vgg13 vgg16 vgg19; do
  "$PY" cli.py leakage --model "$model" --image-size 64 --budget quick --seed 0 --device "$DEVICE" --threads "$THREADS" "$@"
done
