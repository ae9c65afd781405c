#!/bin/sh
# hawq finetune: a short quantization-aware fine-tune of the bundled model at W4A4 (first and
# last layer at 8), lowered and evaluated: the integer model's test accuracy must reproduce the
# fake-quant model's within 0.1 points (ARCHITECTURE, "Simulation") on 1000 images, and hawq eval
# must give the integer accuracy finetune reports; bad input gets one line, exit 1, no output.
set -u
HAWQ=${HAWQ:?set HAWQ to the hawq binary}
MODEL=models/fmnist_resnet20.onnx
. tests/cli/cli_lib.sh
PY=/usr/bin/python3

expect 0 '"integer_top1"' -- "$HAWQ" finetune "$MODEL" --data fashion-mnist --bits 4 --steps 8 \
  --batch 64 --calib-images 256 --eval-limit 1000 --json -o "$tmp/m.hqm" --save-float "$tmp/f.onnx"
cp "$tmp/out" "$tmp/ft.json"
[ -s "$tmp/m.hqm" ] || fail "finetune wrote no model"
"$PY" - "$tmp/ft.json" <<'PY' || fail "finetune: integer and fake-quant accuracies differ: $(cat "$tmp/ft.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["steps"] == 8 and d["images"] == 1000, d
assert abs(d["integer_top1"] - d["fakequant_top1"]) <= 0.1 + 1e-9, d
assert d["integer_top1"] > 85, d
assert d["agreement"] >= 99.0, d
PY

# hawq eval on the written model gives the accuracy finetune measured.
expect 0 '"top1_correct"' -- "$HAWQ" eval "$tmp/m.hqm" --data fashion-mnist --limit 1000 --json
"$PY" - "$tmp/ft.json" "$tmp/out" <<'PY' || fail "hawq eval disagrees with finetune's integer accuracy"
import json, sys
ft, ev = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert ev["top1_correct"] == ft["integer_top1_correct"], (ev, ft)
PY
# The model records how it was made, and the fine-tuned float model is a model.
expect 0 'finetune' -- "$HAWQ" info "$tmp/m.hqm" --json
expect 0 'top-1' -- "$HAWQ" eval "$tmp/f.onnx" --data fashion-mnist --limit 200

# ---- bad input: one line, exit 1, nothing written ----
rm -f "$tmp/bad.hqm"
expect 1 '--bits is required' -- "$HAWQ" finetune "$MODEL" --data fashion-mnist -o "$tmp/bad.hqm"
expect 1 'bits' -- "$HAWQ" finetune "$MODEL" --data fashion-mnist --bits 9 -o "$tmp/bad.hqm"
expect 1 'nope.onnx' -- "$HAWQ" finetune "$tmp/nope.onnx" --data fashion-mnist --bits 8 -o "$tmp/bad.hqm"
expect 1 "optimizer" -- "$HAWQ" finetune "$MODEL" --data fashion-mnist --bits 8 --optimizer foo -o "$tmp/bad.hqm"
expect 1 "fewer than one batch" -- "$HAWQ" finetune "$MODEL" --data fashion-mnist --bits 8 --limit 10 -o "$tmp/bad.hqm"
expect 1 "distill" -- "$HAWQ" finetune "$MODEL" --data fashion-mnist --bits 8 --distill 2 -o "$tmp/bad.hqm"
echo '{"layers": {"no_such_conv": {"weight_bits": 4, "act_bits": 4}}}' > "$tmp/bits.json"
expect 1 "layer 'no_such_conv' is not a Conv or Gemm" -- "$HAWQ" finetune "$MODEL" --data fashion-mnist --bits "$tmp/bits.json" -o "$tmp/bad.hqm"
[ -e "$tmp/bad.hqm" ] && fail "a failed finetune left $tmp/bad.hqm"

[ "$fails" -eq 0 ] || exit 1
echo "test_finetune_cli: ok"
