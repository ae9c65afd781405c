#!/bin/sh
# Runs every libFuzzer target in build/fuzz for SECONDS each (default 30), seeded with the
# committed models and data files. Any crash, leak or sanitizer report fails the run.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-30}
corpus=build/fuzz/corpus
rm -rf "$corpus"
mkdir -p "$corpus/onnx" "$corpus/idx" "$corpus/npy" "$corpus/hqm"
cp tests/quant/fixtures/*.hqm "$corpus/hqm/"
# Inputs that once failed a target, kept so that every run replays them.
cp fuzz/regressions/hqm/* "$corpus/hqm/"
cp tests/onnx/fixtures/*.onnx tests/cli/bad/*.onnx "$corpus/onnx/"
[ -f tests/models/torch/fmnist_resnet14.onnx ] && cp tests/models/torch/fmnist_resnet14.onnx "$corpus/onnx/"
cp tests/onnx/fixtures/*.npy "$corpus/npy/"
cp models/*.npy "$corpus/npy/" 2>/dev/null || true
# Small IDX seeds: a few images and labels cut from the real files, raw and gzipped.
if [ -d /usr/share/datasets/fashion-mnist ]; then
  zcat /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz | head -c 24 > "$corpus/idx/labels"
  { printf '\000\000\010\003\000\000\000\002\000\000\000\034\000\000\000\034';
    zcat /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz | tail -c +17 | head -c 1568; } > "$corpus/idx/images"
  gzip -c "$corpus/idx/images" > "$corpus/idx/images.gz"
fi
status=0
for target in fuzz_onnx_import:onnx fuzz_idx:idx fuzz_npy:npy fuzz_qmodel:hqm; do
  name=${target%%:*}
  dir=${target#*:}
  bin=build/fuzz/fuzz/$name
  [ -x "$bin" ] || { echo "fuzz.sh: $bin not built" >&2; exit 1; }
  echo "fuzz.sh: $name for ${seconds}s"
  if ! "$bin" "$corpus/$dir" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 \
       -print_final_stats=1 > "build/fuzz/$name.log" 2>&1; then
    echo "fuzz.sh: $name FAILED; see build/fuzz/$name.log" >&2
    tail -40 "build/fuzz/$name.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units" "build/fuzz/$name.log" || true
  fi
done
exit $status
