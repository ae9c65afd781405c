#!/bin/sh
# Float engine benchmarks, each against ONNX Runtime in the same run:
#   - ResNet18 / ResNet50 / InceptionV3 fp32 (torchvision, random weights), batch 1, 1 and 2
#     threads: hawq (bench_float) and onnxruntime-node 1.30 (CPU EP) on the same .onnx file,
#     interleaved, ROUNDS rounds of RUNS runs each, medians;
#   - evaluation throughput of the bundled model on the Fashion-MNIST test set, 1 and 2 threads.
# One thread is pinned to core 0, two threads to cores 0-1. Writes build/bench/float.md.
# Needs: a release build (scripts/build.sh), Debian's python3-torch python3-torchvision
# python3-onnx for the models, nodejs + npm for ONNX Runtime (../shared/anchors set-up).
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
WARMUP=${WARMUP:-5}
ROUNDS=${ROUNDS:-2}
MODELS=${MODELS:-"resnet18 resnet50 inception_v3"}
ANCHORS=${ANCHORS:-../shared/anchors}
out=build/bench
mkdir -p "$out" build/models

[ -x build/release/bench/bench_float ] || ./scripts/build.sh release > /dev/null
for m in $MODELS; do
  if [ ! -f "build/models/${m}_fp32.onnx" ]; then
    /usr/bin/python3 tools/make_models.py bench -o build/models > /dev/null 2>&1 || {
      echo "run_float.sh: cannot export models: apt-get install python3-torch python3-torchvision python3-onnx" >&2
      exit 1
    }
  fi
done
if [ ! -d build/anchors/node/node_modules/onnxruntime-node ]; then
  rm -rf build/anchors
  cp -r "$ANCHORS" build/anchors
  (cd build/anchors/node && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund > /dev/null 2>&1) || {
    echo "run_float.sh: npm ci failed in build/anchors/node (needs nodejs and npm)" >&2
    exit 1
  }
fi

. bench/common.sh

{
  echo "# Float engine benchmarks ($(date -u +%Y-%m-%d), $(cpu_name))"
  echo
  echo "Batch 1, median of $RUNS runs after $WARMUP warm-up runs, per round; $ROUNDS rounds, engines"
  echo "interleaved; the ratio is of the medians over rounds."
  echo
  echo "| model | threads | hawq ms (rounds) | ONNX Runtime ms (rounds) | hawq / ORT |"
  echo "|---|---:|---:|---:|---:|"
} > "$out/float.md"

for m in $MODELS; do
  size=224
  [ "$m" = inception_v3 ] && size=299
  for t in 1 2; do
    cpus=0
    [ "$t" = 2 ] && cpus=0,1
    h_list="" o_list=""
    r=0
    while [ $r -lt "$ROUNDS" ]; do
      h=$(OMP_NUM_THREADS=$t taskset -c $cpus build/release/bench/bench_float "build/models/${m}_fp32.onnx" \
            --threads "$t" --runs "$RUNS" --warmup "$WARMUP" | field median_ms)
      o=$(HAWQ_BENCH_INPUT=3,$size,$size taskset -c $cpus node bench/ort_time.js \
            "build/models/${m}_fp32.onnx" --threads "$t" --runs "$RUNS" --warmup "$WARMUP" | field median_ms)
      h_list="$h_list $h"
      o_list="$o_list $o"
      r=$((r + 1))
    done
    ratio=$(echo "scale=2; $(median $h_list) / $(median $o_list)" | bc -l)
    line="| $m | $t | $(echo $h_list | tr ' ' '/') | $(echo $o_list | tr ' ' '/') | $ratio |"
    echo "$line" >> "$out/float.md"
    echo "$line"
  done
done

{
  echo
  echo "Bundled model (models/fmnist_resnet20.onnx), Fashion-MNIST test set, \`hawq eval\` (batch 100):"
  echo
  echo "| threads | images/s | top-1 |"
  echo "|---:|---:|---:|"
} >> "$out/float.md"
for t in 1 2; do
  cpus=0
  [ "$t" = 2 ] && cpus=0,1
  json=$(taskset -c $cpus build/release/hawq eval models/fmnist_resnet20.onnx --data fashion-mnist \
           --threads "$t" --json 2> /dev/null)
  ips=$(echo "$json" | field images_per_second | cut -d. -f1)
  top1=$(echo "$json" | field top1)
  echo "| $t | $ips | $top1 % |" >> "$out/float.md"
  echo "eval threads $t: $ips img/s, top-1 $top1 %"
done
echo "run_float.sh: wrote $out/float.md"
