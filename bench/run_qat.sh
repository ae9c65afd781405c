#!/bin/sh
# Quantization-aware fine-tuning (issue 7's acceptance figures). For each model: fp32 accuracy;
# then INT8, the Hessian-guided INT4/8 mix at size budget 0.5 (hawq sensitivity + hawq allocate)
# and uniform W4A4 (first and last layer at 8), each by post-training calibration and by hawq
# finetune; every accuracy from the integer runtime on the full Fashion-MNIST test set (finetune
# also reports its fake-quant model's, which must agree within 0.1 points), with weight bytes,
# BOPS, one-thread latency (hawq bench, median) and fine-tuning time; and PyTorch 1.13's int8
# post-training quantization of the same model (bench/torch_ptq.py).
# Writes build/bench/qat.md; the models and JSON go to build/bench/qat/.
#   EPOCHS=3 EPOCHS_INT8=1 SIZE=0.5 MODELS="..." ./bench/run_qat.sh
#   SKIP_LATENCY=1: accuracy only (latency wants an otherwise idle machine).
set -eu
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-3}
EPOCHS_INT8=${EPOCHS_INT8:-1}
SIZE=${SIZE:-0.5}
MODELS=${MODELS:-"models/fmnist_resnet20.onnx tests/models/torch/fmnist_resnet14.onnx"}
SKIP_LATENCY=${SKIP_LATENCY:-}
out=build/bench/qat
mkdir -p "$out"
[ -x build/release/hawq ] || ./scripts/build.sh release > /dev/null
HAWQ=build/release/hawq
. bench/common.sh
top() { grep -v "$(printf '^\t\t')" | field "$1"; }
pct() { awk '{printf "%.2f", $1}'; }

latency() { # median one-thread latency of an integer model, ms
  if [ -n "$SKIP_LATENCY" ]; then echo "-"; return; fi
  "$HAWQ" bench "$1" --threads 1 --runs 50 --warmup 5 --json 2> /dev/null |
    sed -n 's/.*"median_ms":[[:space:]]*\([0-9.]*\).*/\1/p' | head -1 | awk '{printf "%.3f", $1}'
}

report=build/bench/qat.md
{
  echo "# Quantization-aware fine-tuning ($(date -u +%Y-%m-%d), $(cpu_name))"
  echo
  echo "Fashion-MNIST test set (10000 images), integer runtime. PTQ: hawq calibrate (1024"
  echo "images, min/max). QAT: hawq finetune (SGD, cosine from lr 0.002, batch 128; ranges from"
  echo "the same calibration, then EMA for the first half of the steps), $EPOCHS epochs for the"
  echo "4-bit configurations and $EPOCHS_INT8 for INT8. Mixed: hawq allocate --size $SIZE over"
  echo "{4, 8} from hawq sensitivity. Latency: hawq bench, one thread, batch 1, median of 50."
  echo
  echo "| model | config | method | top-1 (integer) | fake-quant top-1 | weight bytes | BOPS | latency ms | fine-tuning s |"
  echo "|---|---|---|---|---|---|---|---|---|"
} > "$report"

for model in $MODELS; do
  name=$(basename "$model" .onnx)
  fp=$("$HAWQ" eval "$model" --data fashion-mnist --json 2> /dev/null)
  params=$("$HAWQ" info "$model" --json | top params)
  echo "| $name | fp32 | - | $(echo "$fp" | field top1 | pct)% | - | $((params * 4)) | - | - | - |" >> "$report"
  sens="$out/$name.sens.json"
  [ -s "$sens" ] || "$HAWQ" sensitivity "$model" --data fashion-mnist -o "$sens" > /dev/null
  "$HAWQ" allocate --sensitivity "$sens" --size "$SIZE" -o "$out/$name.mixed.json" > /dev/null
  for config in int8 mixed w4a4; do
    case $config in
      int8) bits=8 epochs=$EPOCHS_INT8 ;;
      mixed) bits="$out/$name.mixed.json" epochs=$EPOCHS ;;
      w4a4) bits=4 epochs=$EPOCHS ;;
    esac
    p="$out/${name}_${config}_ptq.hqm"
    "$HAWQ" calibrate "$model" --data fashion-mnist --bits "$bits" -o "$p" > /dev/null 2>&1
    r=$("$HAWQ" eval "$p" --data fashion-mnist --json 2> /dev/null)
    i=$("$HAWQ" info "$p" --json)
    echo "| $name | $config | PTQ | $(echo "$r" | field top1 | pct)% | - | $(echo "$i" | top weight_bytes) | $(echo "$i" | top bops) | $(latency "$p") | - |" >> "$report"
    q="$out/${name}_${config}_qat.hqm"
    "$HAWQ" finetune "$model" --data fashion-mnist --bits "$bits" --epochs "$epochs" --json \
      -o "$q" > "$out/${name}_${config}_qat.json" 2> "$out/${name}_${config}_qat.log"
    f=$(tr -d '\n' < "$out/${name}_${config}_qat.json")
    i=$("$HAWQ" info "$q" --json)
    echo "| $name | $config | QAT $epochs ep | $(echo "$f" | field integer_top1 | pct)% | $(echo "$f" | field fakequant_top1 | pct)% | $(echo "$i" | top weight_bytes) | $(echo "$i" | top bops) | $(latency "$q") | $(echo "$f" | field seconds | awk '{printf "%.0f", $1}') |" >> "$report"
    echo "$name $config: PTQ $(echo "$r" | field top1)%, QAT $(echo "$f" | field integer_top1)%" >&2
  done
  if /usr/bin/python3 -c 'import torch' 2> /dev/null; then
    /usr/bin/python3 bench/torch_ptq.py "$model" --calib-images 1024 --json "$out/${name}_torch.json" > /dev/null
    c=$(tr -d '\n' < "$out/${name}_torch.json" | field int8_correct)
    echo "| $name | int8 | PyTorch 1.13 PTQ (FX, onednn) | $(echo "$c" | awk '{printf "%.2f", $1 / 100}')% | - | - | - | - | - |" >> "$report"
  fi
done
echo >> "$report"
echo "Reproduce: \`EPOCHS=$EPOCHS EPOCHS_INT8=$EPOCHS_INT8 SIZE=$SIZE ./bench/run_qat.sh\`" >> "$report"
cat "$report"
