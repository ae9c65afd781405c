#!/bin/sh
# The main job on the bundled model and data: installs what hawq needs, builds it, describes
# the bundled Fashion-MNIST ResNet-20 (trained by hawq train) and evaluates it on the
# Fashion-MNIST test set.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh release
build/release/hawq info models/fmnist_resnet20.onnx
build/release/hawq eval models/fmnist_resnet20.onnx --data fashion-mnist
