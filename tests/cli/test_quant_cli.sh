#!/bin/sh
# The integer-model commands: hawq calibrate / eval / info / run on a .hqm, the embedding example
# (examples/classify.c), and their errors: one line naming the file or option, non-zero exit, no
# half-written output. Uses the PyTorch fixture (a model hawq did not train) with a short
# calibration; the accuracy figures themselves are measured by bench/run_ptq.sh.
set -u
HAWQ=${HAWQ:?set HAWQ to the hawq binary}
MODEL=tests/models/torch/fmnist_resnet14.onnx
[ -d /usr/share/datasets/fashion-mnist ] || { echo "skipped: no dataset-fashion-mnist"; exit 77; }
. tests/cli/cli_lib.sh

Q="$tmp/m8.hqm"
expect 0 "wrote .*m8.hqm" -- "$HAWQ" calibrate "$MODEL" --data fashion-mnist --bits 8 --calib-images 128 -o "$Q"
expect 0 "wrote .*m4.hqm" -- "$HAWQ" calibrate "$MODEL" --data fashion-mnist --bits 4 --calib-images 128 --percentile 99.99 -o "$tmp/m4.hqm"

# info: bits, types, dyadic parameters, size and BOPS
expect 0 "integer-only model, 28x28x1 uint8 pixels -> 10 int32 logits" -- "$HAWQ" info "$Q"
expect 0 "BOPS per image" -- "$HAWQ" info "$Q"
expect 0 '"weight_bits":[[:space:]]*4' -- "$HAWQ" info "$tmp/m4.hqm" --json
expect 0 "dyadic\[0\] = [0-9]+ / 2\^[0-9]+" -- "$HAWQ" info "$Q" --verbose

# eval on the integer runtime; the JSON count equals the one-line summary's
expect 0 "top-1 [0-9.]+% \([0-9]+/300\).*integer runtime" -- "$HAWQ" eval "$Q" --data fashion-mnist --limit 300
correct=$(sed -n 's/.*(\([0-9]*\)\/300).*/\1/p' "$tmp/out")
[ "${correct:-0}" -ge 270 ] || fail "INT8 eval: $correct/300 correct, expected >= 270"
expect 0 '"top1_correct"' -- "$HAWQ" eval "$Q" --data fashion-mnist --limit 300 --json --threads 1
grep -q "\"top1_correct\":[[:space:]]*$correct," "$tmp/out" || fail "eval --json (1 thread) disagrees with the 2-thread summary ($correct)"

# run: one image by index, and the same image as a PNG
expect 0 "^class [0-9] \(label 9\)" -- "$HAWQ" run "$Q" --data fashion-mnist --index 0
cls=$(sed -n 's/^class \([0-9]*\).*/\1/p' "$tmp/out")
if /usr/bin/python3 -c "import numpy, zlib, struct" 2>/dev/null; then
  /usr/bin/python3 - "$tmp/img0.png" <<'PY'
import gzip, struct, sys, zlib
raw = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()[16:16 + 784]
rows = b"".join(b"\0" + raw[r * 28:(r + 1) * 28] for r in range(28))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
  expect 0 "^class $cls\$" -- "$HAWQ" run "$Q" --image "$tmp/img0.png"
fi
expect 0 '"class"' -- "$HAWQ" run "$Q" --data fashion-mnist --index 0 --json --logits

# the embedding example agrees with hawq eval
if [ -n "${HAWQ_CLASSIFY:-}" ]; then
  D=/usr/share/datasets/fashion-mnist
  "$HAWQ_CLASSIFY" "$Q" $D/t10k-images-idx3-ubyte.gz $D/t10k-labels-idx1-ubyte.gz --limit 300 > "$tmp/ex" 2> "$tmp/exerr" || fail "example failed: $(cat "$tmp/exerr")"
  grep -q "accuracy $correct/300" "$tmp/exerr" || fail "example: '$(cat "$tmp/exerr")', hawq eval had $correct/300"
  [ "$(sed -n '1p' "$tmp/ex")" = "0 $cls" ] || fail "example's class for image 0 is not hawq run's ($cls)"
fi

# a bit configuration file: one layer at W4A4 (its input requantized to 4 bits), the rest at 8
cat > "$tmp/mixed.json" <<'JSON'
{"weight_bits": 8, "act_bits": 8,
 "layers": {"/layers/layers.1/conv1/Conv": {"weight_bits": 4, "act_bits": 2}}}
JSON
expect 0 "wrote" -- "$HAWQ" calibrate "$MODEL" --data fashion-mnist --bits "$tmp/mixed.json" --calib-images 64 -o "$tmp/mixed.hqm"
"$HAWQ" info "$tmp/mixed.hqm" > "$tmp/info"
grep -Eq '/layers/layers.1/conv1/Conv +QConv +u4->' "$tmp/info" || fail "mixed: layers.1/conv1 does not read 4-bit storage: $(grep layers.1/conv1 "$tmp/info")"
[ "$(grep -Ec ' QConv +[a-z0-9]+->[a-z0-9]+ +4 ' "$tmp/info")" -eq 1 ] || fail "mixed: expected exactly one conv with 4-bit weights"
grep -q '"/layers/layers.1/conv1/Conv":{"weight_bits":4,"act_bits":2}' "$tmp/info" || fail "mixed: bits not recorded"

# errors
expect 1 "--bits is required" -- "$HAWQ" calibrate "$MODEL" --data fashion-mnist -o "$tmp/x.hqm"
expect 1 "--bits '9': bits must be in \[2, 8\]" -- "$HAWQ" calibrate "$MODEL" --data fashion-mnist --bits 9 -o "$tmp/x.hqm"
echo '{"layers": {"no_such_conv": {"weight_bits": 4, "act_bits": 4}}}' > "$tmp/bits.json"
expect 1 "layer 'no_such_conv' is not a Conv or Gemm" -- "$HAWQ" calibrate "$MODEL" --data fashion-mnist --bits "$tmp/bits.json" -o "$tmp/x.hqm"
echo '{"weight_bits": 12}' > "$tmp/bits2.json"
expect 1 "bits2.json: 'weight_bits' must be an integer in \[2, 8\]" -- "$HAWQ" calibrate "$MODEL" --data fashion-mnist --bits "$tmp/bits2.json" -o "$tmp/x.hqm"
[ ! -e "$tmp/x.hqm" ] || fail "a failed calibrate left $tmp/x.hqm"
head -c 1000 "$Q" > "$tmp/trunc.hqm"
expect 1 "trunc.hqm" -- "$HAWQ" eval "$tmp/trunc.hqm" --data fashion-mnist
expect 1 "trunc.hqm" -- "$HAWQ" info "$tmp/trunc.hqm"
cp "$MODEL" "$tmp/float.hqm"
expect 1 "float.hqm" -- "$HAWQ" info "$tmp/float.hqm"
expect 1 "give either --image FILE or --data D --index I" -- "$HAWQ" run "$Q"
expect 1 "img0.png|not a readable PNG" -- "$HAWQ" run "$Q" --image "$MODEL"
expect 1 "--mean/--std" -- "$HAWQ" eval "$Q" --data fashion-mnist --mean 0.5

[ "$fails" -eq 0 ] || { echo "$fails failures" >&2; exit 1; }
echo "test_quant_cli: all checks passed"
