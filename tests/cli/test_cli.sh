#!/bin/sh
# The hawq command line: exit codes (0 ok, 1 bad input or usage, 2 internal), one-line error
# messages that name the file, no half-written outputs, and the summary/JSON formats.
# Run by ctest with HAWQ set to the binary; run from the repository root.
set -u
HAWQ=${HAWQ:?set HAWQ to the hawq binary}
MODEL=tests/models/torch/fmnist_resnet14.onnx
. tests/cli/cli_lib.sh

# Usage
expect 0 'usage: hawq' -- "$HAWQ" --help
expect 1 'usage: hawq' -- "$HAWQ"
expect 1 "unknown command 'frobnicate'" -- "$HAWQ" frobnicate
expect 0 'usage: hawq info' -- "$HAWQ" info --help
expect 1 "unknown option '--bogus'" -- "$HAWQ" info "$MODEL" --bogus
expect 1 "expected one MODEL" -- "$HAWQ" info
expect 1 "'--batch' is 0" -- "$HAWQ" eval "$MODEL" --data fashion-mnist --batch 0
expect 1 "'--threads' expects an integer" -- "$HAWQ" eval "$MODEL" --data fashion-mnist --threads two
expect 1 "--data is required" -- "$HAWQ" eval "$MODEL"
expect 1 "--split must be" -- "$HAWQ" eval "$MODEL" --data fashion-mnist --split validation
expect 1 "--mean" -- "$HAWQ" eval "$MODEL" --data fashion-mnist --mean 0.1,abc

# info
expect 0 'parameters' -- "$HAWQ" info "$MODEL"
expect 0 '"macs"' -- "$HAWQ" info "$MODEL" --json
if command -v python3 > /dev/null; then
  "$HAWQ" info "$MODEL" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["params"] > 0 and len(d["layers"]) > 10' \
    || fail "info --json is not the expected JSON"
fi

# Bad model files
expect 1 "missing.onnx: cannot open" -- "$HAWQ" info "$tmp/missing.onnx"
head -c 5000 "$MODEL" > "$tmp/truncated.onnx"
expect 1 "truncated.onnx: " -- "$HAWQ" info "$tmp/truncated.onnx"
: > "$tmp/empty.onnx"
expect 1 "empty.onnx: empty file" -- "$HAWQ" info "$tmp/empty.onnx"
# Flip one byte in the first weight tensor's header area.
cp "$MODEL" "$tmp/flipped.onnx"
printf '\377\377\377\377' | dd of="$tmp/flipped.onnx" bs=1 seek=40 conv=notrunc 2> /dev/null
expect 1 "flipped.onnx: " -- "$HAWQ" info "$tmp/flipped.onnx"
expect 1 "node 'tanh_1' \(Tanh, opset 13\): op 'Tanh' is not supported" -- "$HAWQ" info tests/cli/bad/unsupported_op.onnx
expect 1 "absurd_input.onnx: graph input 'input' has more than 2\^32 elements" -- "$HAWQ" info tests/cli/bad/absurd_input.onnx
expect 1 "absurd_input.onnx" -- "$HAWQ" eval tests/cli/bad/absurd_input.onnx --data fashion-mnist
expect 1 "is a directory|not a regular file|cannot" -- "$HAWQ" info "$tmp"

# Wrong input shape: a 3-channel 20x20 model on 1x28x28 images
expect 1 "convzoo_opset13.onnx: input 'input' expects 3x20x20 images \(CxHxW\), the fashion-mnist test split.* has 1x28x28" -- \
  "$HAWQ" eval tests/onnx/fixtures/convzoo_opset13.onnx --data fashion-mnist --limit 10

# Bad data directories
mkdir -p "$tmp/data"
expect 1 "no such directory|t10k-images" -- "$HAWQ" eval "$MODEL" --data "$tmp/nodata" --limit 10
zcat /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz | head -c 100000 > "$tmp/data/t10k-images-idx3-ubyte"
zcat /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz > "$tmp/data/t10k-labels-idx1-ubyte"
expect 1 "t10k-images-idx3-ubyte: .*(truncated|short)" -- "$HAWQ" eval "$MODEL" --data "$tmp/data" --limit 10
zcat /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz > "$tmp/data/t10k-images-idx3-ubyte"
printf '\000\000\010\004' | dd of="$tmp/data/t10k-images-idx3-ubyte" bs=1 seek=0 conv=notrunc 2> /dev/null
expect 1 "t10k-images-idx3-ubyte: " -- "$HAWQ" eval "$MODEL" --data "$tmp/data" --limit 10

# eval: the summary line, JSON, and the logits file (written whole or not at all)
expect 0 '^top-1 [0-9.]+% \([0-9]+/200\)  top-5 [0-9.]+%  [0-9]+ img/s$' -- \
  "$HAWQ" eval "$MODEL" --data fashion-mnist --limit 200 --batch 64 --threads 2
expect 0 '"top1_correct"' -- "$HAWQ" eval "$MODEL" --data fashion-mnist --limit 50 --json
expect 0 'top-1' -- "$HAWQ" eval "$MODEL" --data fashion-mnist --limit 30 --logits "$tmp/logits.npy"
[ "$(head -c 6 "$tmp/logits.npy" | od -An -c | tr -d ' ')" = '223NUMPY' ] || fail "--logits did not write a .npy file"
expect 1 "nodir/logits.npy" -- "$HAWQ" eval "$MODEL" --data fashion-mnist --limit 30 --logits "$tmp/nodir/logits.npy"
ls "$tmp"/nodir* > /dev/null 2>&1 && fail "a failed --logits left a file behind"
# Overriding the preprocessing changes the result; the per-channel form is checked.
expect 1 "3 mean/std values for an input with 1 channels" -- \
  "$HAWQ" eval "$MODEL" --data fashion-mnist --limit 10 --mean 0.1,0.2,0.3

# meta: show, write a copy (read back by info/eval), refuse bad counts, write in place atomically
expect 0 'hawq.input.mean = 0.2860' -- "$HAWQ" meta "$MODEL"
expect 0 '"from_metadata":[[:space:]]*true' -- "$HAWQ" meta "$MODEL" --json
expect 0 'defaults' -- "$HAWQ" meta tests/onnx/fixtures/convzoo_opset13.onnx
expect 0 "wrote $tmp/cz.onnx" -- "$HAWQ" meta tests/onnx/fixtures/convzoo_opset13.onnx \
  --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 -o "$tmp/cz.onnx"
expect 0 'hawq.input.mean = 0.485,0.456,0.406' -- "$HAWQ" meta "$tmp/cz.onnx"
expect 0 'mean 0.485,0.456,0.406 std 0.229,0.224,0.225 \(model metadata\)' -- "$HAWQ" info "$tmp/cz.onnx"
expect 0 "wrote $tmp/cz.onnx" -- "$HAWQ" meta "$tmp/cz.onnx" --pixel-scale 0.5 -o "$tmp/cz.onnx"
expect 0 'hawq.input.pixel_scale = 0.5' -- "$HAWQ" meta "$tmp/cz.onnx"
ls "$tmp"/cz.onnx.tmp.* > /dev/null 2>&1 && fail "meta left a temporary file"
expect 1 '2 mean/std values for an input with 3 channels' -- \
  "$HAWQ" meta tests/onnx/fixtures/convzoo_opset13.onnx --mean 0.1,0.2 -o "$tmp/bad.onnx"
[ -e "$tmp/bad.onnx" ] && fail "a refused meta wrote its output"
expect 1 '-o OUT.onnx is needed' -- "$HAWQ" meta "$MODEL" --mean 0.5
expect 1 "'--std'.*must be > 0|--std: value" -- "$HAWQ" meta "$MODEL" --std 0 -o "$tmp/x.onnx"

if [ "$fails" -ne 0 ]; then
  echo "test_cli: $fails failures" >&2
  exit 1
fi
echo "test_cli: all checks passed"
