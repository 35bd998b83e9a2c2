#!/usr/bin/env bash
# Leakage of the nine bundled profile tables (data/profiles/*.json), written in place by `cli.py leakage`.
# Settings (recorded in each table's leakage_meta), budget quick (the default), seed 0, CPU, bf16:
#   LeNet-7/9/12: weights trained on Fashion-MNIST (data/weights/<model>-fashion-mnist.pt, made by
#     benchmarks/train_lenets.py), victim images = Fashion-MNIST test split, 32×32 (native; gray replicated
#     to the models' 3 input channels); needs benchmarks/get_fashion_mnist.sh once.
#   ResNet-18/34/50, VGG-13/16/19: random-init weights ("none"), the embedded scikit-image photographs, 64×64.
# Run from the repository root after `python cli.py profile --all --out data/profiles/`.
# Safe to interrupt and rerun: finished splits are read back from the tables themselves; a table switches
# to new settings only once every split is measured, and its earlier set stays in leakage_history.
# MODELS="resnet18 vgg16" limits the run to some models.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
DEVICE="${DEVICE:-cpu}"
PRECISION="${PRECISION:-bf16}"   # part of the settings key: the same on every CPU (auto would vary)
THREADS="${THREADS:-1}"   # 1 is several times faster while other jobs share the cores
MODELS="${MODELS:-lenet7 lenet9 lenet12 resnet18 resnet34 resnet50 vgg13 vgg16 vgg19}"
for model in $MODELS; do
  case "$model" in
    lenet*) "$PY" cli.py leakage --model "$model" --weights "data/weights/$model-fashion-mnist.pt" \
              --dataset fashion-mnist --budget quick --seed 0 --device "$DEVICE" --precision "$PRECISION" --threads "$THREADS" "$@" ;;
    *)      "$PY" cli.py leakage --model "$model" --image-size 64 --budget quick --seed 0 \
              --device "$DEVICE" --precision "$PRECISION" --threads "$THREADS" "$@" ;;
  esac
done
