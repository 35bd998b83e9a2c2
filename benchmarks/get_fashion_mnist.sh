#!/usr/bin/env bash
# Install Fashion-MNIST (Zalando, MIT licence) from Debian's package `dataset-fashion-mnist`:
# /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
# Needed only to retrain the bundled LeNet weights (benchmarks/train_lenets.py) or to measure
# `leakage --dataset fashion-mnist`; never by the test suite (tests make their own images).
set -euo pipefail
if [ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "Fashion-MNIST already installed in /usr/share/datasets/fashion-mnist"; exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update
$SUDO apt-get install -y dataset-fashion-mnist
ls -l /usr/share/datasets/fashion-mnist
