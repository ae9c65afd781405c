#!/bin/sh
# hawq sensitivity on the bundled ResNet-20, kept short (96 images, a short last batch, 6 draws):
# sens.json has every Conv/Gemm layer with finite traces and standard errors, delta and Omega
# for 2..8 bits consistent with each other, and the two projection-shortcut ties; --json prints
# the file's document; the same seed gives the same document. Errors (bad flags, no data, a
# missing model) are one line, exit 1, and write nothing. The accuracy of the traces is
# tests/search/test_hessian.c's.
set -u
HAWQ=${HAWQ:?set HAWQ to the hawq binary}
MODEL=models/fmnist_resnet20.onnx
[ -d /usr/share/datasets/fashion-mnist ] || { echo "skipped: no dataset-fashion-mnist"; exit 77; }
. tests/cli/cli_lib.sh
PY=""
if /usr/bin/python3 -c "import json" 2>/dev/null; then PY=/usr/bin/python3; fi

RUN="--data fashion-mnist --images 96 --batch 64 --min-draws 4 --max-draws 6 --seed 3"
expect 0 "wrote .*sens.json" -- "$HAWQ" sensitivity "$MODEL" $RUN -o "$tmp/sens.json"
grep -Eq "^layer3.0.downsample.0 +2048 " "$tmp/out" || fail "no table row for layer3.0.downsample.0: $(cat "$tmp/out")"
grep -Eq "^tie: layer2.0.conv1 layer2.0.downsample.0$" "$tmp/out" || fail "no tie line"
grep -Eq "^summed trace .*, 6 draws \(max draws reached\), 96 images, [0-9.]+ s$" "$tmp/out" || fail "no summary line: $(tail -2 "$tmp/out")"
grep -q "^sensitivity: 6/6 (100%) trace " "$tmp/err" || fail "no progress lines: $(cat "$tmp/err")"

expect 0 '"format":[[:space:]]*"hawq-sensitivity"' -- "$HAWQ" sensitivity "$MODEL" $RUN --json -o "$tmp/again.json"
cp "$tmp/out" "$tmp/stdout.json"

if [ -n "$PY" ]; then
  "$PY" - "$tmp/sens.json" "$tmp/again.json" "$tmp/stdout.json" <<'PY' || fail "sens.json: see above"
import json, math, sys
doc = json.load(open(sys.argv[1]))
again, printed = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
assert printed == again, "--json printed something else than it wrote"
for d in (doc, again):
    d.pop("seconds")
assert doc == again, "the same seed gave another document"
assert doc["format"] == "hawq-sensitivity" and doc["version"] == 1
assert doc["images"] == 96 and doc["draws"] == 6 and doc["seed"] == 3 and doc["tol"] == 1e-3
assert doc["converged"] is False and doc["epsilon"] > 0
assert doc["model"] == "models/fmnist_resnet20.onnx" and doc["data"] == "fashion-mnist"
L = doc["layers"]
names = [l["name"] for l in L]
convs = ["conv1"] + ["layer%d.%d.conv%d" % (s, b, c) for s in (1, 2, 3) for b in range(3) for c in (1, 2)]
want = convs[:7] + ["layer2.0.conv1", "layer2.0.conv2", "layer2.0.downsample.0"] + convs[9:13] + \
    ["layer3.0.conv1", "layer3.0.conv2", "layer3.0.downsample.0"] + convs[15:] + ["fc"]
assert names == want, names
assert sum(l["params"] for l in L) == 270608
total = 0
for l in L:
    assert l["op"] == ("Gemm" if l["name"] == "fc" else "Conv"), l
    assert l["params"] > 0 and l["macs"] >= l["params"], l
    t, se = l["trace"], l["trace_se"]
    assert math.isfinite(t) and math.isfinite(se) and se > 0, l
    # 6 draws on 96 images are noisy: no trace may be significantly negative
    assert t > -3 * se, (l["name"], t, se)
    total += t
    d, o = l["delta"], l["omega"]
    assert sorted(d) == [str(b) for b in range(2, 9)] and sorted(o) == sorted(d)
    for b in range(2, 9):
        assert d[str(b)] > 0 and (b == 2 or d[str(b)] < d[str(b - 1)]), (l["name"], b)
        assert abs(o[str(b)] - t / l["params"] * d[str(b)]) <= 1e-12 * abs(o[str(b)]), (l["name"], b)
assert total > 0, total
assert doc["ties"] == [["layer2.0.conv1", "layer2.0.downsample.0"],
                       ["layer3.0.conv1", "layer3.0.downsample.0"]], doc["ties"]
PY
fi

# ---- errors: one line, exit 1, no output file ----
OUT="$tmp/none.json"
expect 1 "--data is required" -- "$HAWQ" sensitivity "$MODEL" -o "$OUT"
expect 1 "-o FILE.json is required" -- "$HAWQ" sensitivity "$MODEL" --data fashion-mnist
expect 1 "option '--tol' expects a finite number, got 'abc'" -- "$HAWQ" sensitivity "$MODEL" --data fashion-mnist --tol abc -o "$OUT"
expect 1 "option '--max-draws' is 0" -- "$HAWQ" sensitivity "$MODEL" --data fashion-mnist --max-draws 0 -o "$OUT"
expect 1 "--min-draws 50 is more than --max-draws 20" -- "$HAWQ" sensitivity "$MODEL" --data fashion-mnist --min-draws 50 --max-draws 20 -o "$OUT"
expect 1 "--split must be 'train' or 'test'" -- "$HAWQ" sensitivity "$MODEL" --data fashion-mnist --split valid -o "$OUT"
expect 1 "unknown option '--draws'" -- "$HAWQ" sensitivity "$MODEL" --data fashion-mnist --draws 5 -o "$OUT"
expect 1 "expected one MODEL argument" -- "$HAWQ" sensitivity --data fashion-mnist -o "$OUT"
expect 1 "no_such_model.onnx" -- "$HAWQ" sensitivity "$tmp/no_such_model.onnx" --data fashion-mnist -o "$OUT"
expect 1 "no_such_dir" -- "$HAWQ" sensitivity "$MODEL" --data "$tmp/no_such_dir" -o "$OUT"
expect 1 "cannot write to directory" -- "$HAWQ" sensitivity "$MODEL" --data fashion-mnist -o "$tmp/no_such_dir/sens.json"
expect 1 "unsupported_op.onnx" -- "$HAWQ" sensitivity tests/cli/bad/unsupported_op.onnx --data fashion-mnist -o "$OUT"
expect 1 "--mean" -- "$HAWQ" sensitivity "$MODEL" --data fashion-mnist --mean x -o "$OUT"
[ -e "$OUT" ] && fail "a failed run wrote $OUT"
ls "$tmp" | grep -q '\.tmp\.' && fail "a temporary file was left behind: $(ls "$tmp")"

expect 0 "usage: hawq sensitivity" -- "$HAWQ" sensitivity --help
expect 0 "sensitivity +per-layer Hessian traces" -- "$HAWQ" --help

[ "$fails" -eq 0 ] || exit 1
echo "test_sensitivity_cli: all checks passed"
