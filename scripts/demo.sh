#!/bin/sh
# The main job on the bundled model and data: installs what hawq needs, builds it, and runs the
# whole quantization pipeline on the bundled Fashion-MNIST ResNet-20 (trained by hawq train):
# fp32 and INT8 baselines, per-layer Hessian sensitivities, the per-layer latency table, the
# INT4/INT8 bit allocation at half the INT4-to-INT8 size range (ILP, the default budget), one
# epoch of quantization-aware fine-tuning, the integer-only model and its evaluation on the full
# test set, and an HTML report (build/demo/report.html). About 6.5 minutes on 2 cores; a rerun
# reuses the finished stages (build/demo/fmnist_resnet20_mixed.hqm.work/). The longer
# fine-tune of docs/benchmarks.md adds --finetune-epochs 3.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh release
mkdir -p build/demo
build/release/hawq quantize models/fmnist_resnet20.onnx --data fashion-mnist \
  -o build/demo/fmnist_resnet20_mixed.hqm -r build/demo/report.html
