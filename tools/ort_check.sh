#!/bin/sh
# Cross-checks hawq's float engine against ONNX Runtime on one model (not part of the test suite:
# it needs Node and onnxruntime-node in build/anchors/node, which bench/run_float.sh installs).
#
#   tools/ort_check.sh MODEL.onnx [N]
#       the first N (default 1000) Fashion-MNIST test images: `hawq eval --logits` against
#       ONNX Runtime on the same images, preprocessed from the model's metadata as hawq does
#   tools/ort_check.sh MODEL.onnx --input X0.npy [--input X1.npy ...] --expect Y0.npy
#       [--expect Y1.npy ...]
#       given inputs (logical layout) and hawq's outputs for them (test_onnx_export leaves such
#       sets in DIR with HAWQ_EXPORT_DUMP=DIR)
#
# Prints the largest absolute difference per output and exits 1 if any is over TOL (default
# 1e-4), 2 on errors. HAWQ selects the hawq binary (default build/release/hawq). Paths are
# taken relative to the current directory.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
HAWQ=${HAWQ:-$root/build/release/hawq}
TOL=${TOL:-1e-4}
if [ $# -lt 1 ]; then
  echo "usage: tools/ort_check.sh MODEL.onnx [N] | MODEL.onnx --input X.npy ... --expect Y.npy ..." >&2
  exit 2
fi
if [ ! -d "$root/build/anchors/node/node_modules/onnxruntime-node" ]; then
  echo "ort_check.sh: onnxruntime-node is not installed in build/anchors/node (see bench/run_float.sh)" >&2
  exit 2
fi
model=$1
shift
case "${1:-}" in
  --*) exec node "$root/tools/ort_logits.js" "$model" --tol "$TOL" "$@" ;;
esac
n=${1:-1000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: > "$tmp/eval.log"
if ! "$HAWQ" meta "$model" --json > "$tmp/meta.json" ||
  ! "$HAWQ" eval "$model" --data fashion-mnist --limit "$n" --threads 1 --logits "$tmp/hawq.npy" \
    > "$tmp/eval.log" 2>&1; then
  cat "$tmp/eval.log" >&2
  exit 2
fi
node "$root/tools/ort_logits.js" "$model" --tol "$TOL" --fmnist "$n" --preprocess "$tmp/meta.json" \
  --expect "$tmp/hawq.npy"
