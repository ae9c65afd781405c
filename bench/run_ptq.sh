#!/bin/sh
# Post-training quantization accuracy (issue 4's acceptance figures): for each model, the fp32
# accuracy, then hawq calibrate at W8A8, W4A8, W8A4 and W4A4 (first and last layer at 8 bits) on
# the first CALIB training images, evaluated by the integer runtime on the full Fashion-MNIST test
# set, with weight size and BOPS from hawq info; and PyTorch 1.13's own int8 PTQ (FX, onednn) of
# the same model calibrated on the same images (bench/torch_ptq.py).
# Writes build/bench/ptq.md (and the .hqm files next to it).
set -eu
cd "$(dirname "$0")/.."
CALIB=${CALIB:-1024}
MODELS=${MODELS:-"models/fmnist_resnet20.onnx tests/models/torch/fmnist_resnet14.onnx"}
BITS=${BITS:-"8 w4a8 w8a4 4"}
EXTRA=${EXTRA:-} # more hawq calibrate options, e.g. "--percentile 99.99"
out=build/bench
mkdir -p "$out"
[ -x build/release/hawq ] || ./scripts/build.sh release > /dev/null
HAWQ=build/release/hawq
. bench/common.sh
# top NAME: field NAME of a pretty-printed JSON object's top level (one tab of indent).
top() { grep -v "$(printf '^\t\t')" | field "$1"; }

{
  echo "# Post-training quantization ($(date -u +%Y-%m-%d), $(cpu_name))"
  echo
  echo "Fashion-MNIST test set (10000 images), integer runtime; calibration on the first $CALIB"
  echo "training images${EXTRA:+ ($EXTRA)}. Size: packed weights + int32 biases. BOPS per image:"
  echo "MACs x weight bits x activation bits, summed over the layers."
  echo
  echo "| model | config | top-1 | correct | weights (bytes) | BOPS | command |"
  echo "|---|---|---|---|---|---|---|"
} > "$out/ptq.md"

for model in $MODELS; do
  name=$(basename "$model" .onnx)
  fp=$("$HAWQ" eval "$model" --data fashion-mnist --json 2> /dev/null)
  params=$("$HAWQ" info "$model" --json | top params)
  echo "| $name | fp32 | $(echo "$fp" | field top1)% | $(echo "$fp" | field top1_correct) | $((params * 4)) | - | hawq eval $model --data fashion-mnist |" >> "$out/ptq.md"
  for bits in $BITS; do
    q="$out/${name}_$bits.hqm"
    # shellcheck disable=SC2086
    "$HAWQ" calibrate "$model" --data fashion-mnist --bits "$bits" --calib-images "$CALIB" $EXTRA -o "$q" > /dev/null 2>&1
    r=$("$HAWQ" eval "$q" --data fashion-mnist --json 2> /dev/null)
    i=$("$HAWQ" info "$q" --json)
    echo "| $name | $bits | $(echo "$r" | field top1)% | $(echo "$r" | field top1_correct) | $(echo "$i" | top weight_bytes) | $(echo "$i" | top bops) | hawq calibrate $model --data fashion-mnist --bits $bits --calib-images $CALIB $EXTRA |" >> "$out/ptq.md"
    echo "$name $bits: $(echo "$r" | field top1)%" >&2
  done
  if /usr/bin/python3 -c 'import torch' 2> /dev/null; then
    /usr/bin/python3 bench/torch_ptq.py "$model" --calib-images "$CALIB" --json "$out/${name}_torch.json" > /dev/null
    t=$(tr -d '\n' < "$out/${name}_torch.json")
    c=$(echo "$t" | field int8_correct)
    echo "| $name | PyTorch int8 (FX, onednn) | $(echo "$c" | awk '{printf "%.2f", $1 / 100}')% | $c | - | - | bench/torch_ptq.py $model --calib-images $CALIB |" >> "$out/ptq.md"
  fi
done
cat "$out/ptq.md"
