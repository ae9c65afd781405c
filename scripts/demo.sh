#!/bin/sh
# The main job on the bundled model and data: installs what hawq needs, builds it, describes
# the bundled Fashion-MNIST ResNet-20 (trained by hawq train) and evaluates it on the
# Fashion-MNIST test set, then quantizes it to an integer-only INT8 model (post-training,
# build/demo/fmnist_resnet20_int8.hqm) and evaluates that with the integer runtime.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh release
build/release/hawq info models/fmnist_resnet20.onnx
build/release/hawq eval models/fmnist_resnet20.onnx --data fashion-mnist
mkdir -p build/demo
build/release/hawq calibrate models/fmnist_resnet20.onnx --data fashion-mnist --bits 8 \
  -o build/demo/fmnist_resnet20_int8.hqm
build/release/hawq eval build/demo/fmnist_resnet20_int8.hqm --data fashion-mnist
