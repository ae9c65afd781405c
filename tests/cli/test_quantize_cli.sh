#!/bin/sh
# hawq quantize: the whole pipeline on the bundled model with small settings (500 test images, a
# sensitivity of 64 images and 3 draws, post-training mixed precision), checked against hawq eval
# and hawq info; the same command again reuses every stage; a new --size reruns the ILP and the
# stages after it; an output file changed by hand reruns its stage only; another hawq executable
# reruns every stage; a few fine-tuning steps
# with the HTML report; bad input gets one line, exit 1, and writes nothing.
set -u
HAWQ=${HAWQ:?set HAWQ to the hawq binary}
MODEL=models/fmnist_resnet20.onnx
. tests/cli/cli_lib.sh
PY=/usr/bin/python3
W=$tmp/w

q() {
  "$HAWQ" quantize "$MODEL" --data fashion-mnist -o "$tmp/m.hqm" --work "$W" --eval-limit 500 \
    --sens-images 64 --sens-args "--min-draws 2 --max-draws 3" --calib-images 256 --threads 2 "$@"
}

# stages RAN REUSED: the progress lines of the last run name these stages as run and as reused.
stages() {
  for s in $1; do
    grep -Eq "^\[[0-9]/9\] $s +[0-9.]+ s  -> " "$tmp/err" || fail "stage $s did not run: $(cat "$tmp/err")"
  done
  for s in $2; do
    grep -Eq "^\[[0-9]/9\] $s +reused  -> " "$tmp/err" || fail "stage $s was not reused: $(cat "$tmp/err")"
  done
}
ALL="fp32-eval int8-ptq sensitivity latency-table ilp mixed-ptq mixed-eval latency"

# ---- the pipeline, post-training mixed precision ----
expect 0 '^mixed +[0-9.]+% \(' -- q --finetune-epochs 0
stages "$ALL outputs" ""
[ "$(grep -c '^\[[0-9]/9\] ' "$tmp/err")" -eq 9 ] || fail "expected 9 progress lines: $(cat "$tmp/err")"
[ -s "$tmp/m.hqm" ] || fail "quantize wrote no model"
cmp -s "$tmp/m.hqm" "$W/mixed.hqm" || fail "OUT.hqm is not the work directory's mixed.hqm"
"$HAWQ" info "$MODEL" --json > "$tmp/fp32.info.json" || fail "hawq info $MODEL"
"$HAWQ" info "$tmp/m.hqm" --json > "$tmp/m.info.json" || fail "hawq info m.hqm"
"$HAWQ" eval "$tmp/m.hqm" --data fashion-mnist --limit 500 --json > "$tmp/m.eval.json" 2>/dev/null ||
  fail "hawq eval m.hqm"
"$PY" - "$W" "$tmp" <<'PY' || fail "summary.json"
import json, sys
w, t = sys.argv[1], sys.argv[2]
s = json.load(open(w + "/summary.json"))
assert s["format"] == "hawq-quantize-summary" and s["version"] == 1, s
assert s["model"] == "models/fmnist_resnet20.onnx" and s["data"].startswith("fashion-mnist test"), s
assert s["budgets"] == {"size": "0.5"} and s["bit_choices"] == [4, 8], s
fp32, int8, mixed = s["rows"]
assert [r["config"] for r in s["rows"]] == ["fp32", "int8", "mixed"], s["rows"]
for r in s["rows"]:
    assert r["images"] == 500 and r["latency_threads"] == 1 and r["latency_ms"] > 0, r
    assert abs(r["top1"] - 100 * r["top1_correct"] / 500) < 1e-9 and r["top1"] > 85, r
info = json.load(open(t + "/fp32.info.json"))
assert fp32["size_bytes"] == 4 * info["params"] and fp32["bops"] is None, fp32
assert int8["size_bytes"] == 273784 and int8["bops"] == 1985404928, int8
# The written model is the mixed row: its size and BOPS, its accuracy by hawq eval.
mi, me = json.load(open(t + "/m.info.json")), json.load(open(t + "/m.eval.json"))
assert mixed["size_bytes"] == mi["weight_bytes"] and mixed["bops"] == mi["bops"], (mixed, mi)
assert mixed["top1_correct"] == me["top1_correct"], (mixed, me)
assert mixed["finetune_epochs"] == 0 and mixed["finetune_seconds"] == 0, mixed
# Under the size budget (ratio 0.5 of all-4 .. all-8, the ends at 8 bits), some layers at 4 bits.
bits = json.load(open(w + "/bits.json"))
assert bits["ilp"]["used"]["size"] <= bits["ilp"]["budgets"]["size"]["limit"], bits["ilp"]
assert bits["ilp"]["budgets"]["size"]["given"] == "0.5" and "frontier" in bits
assert mixed["size_bytes"] < int8["size_bytes"] and mixed["bops"] < int8["bops"], mixed
names = [x["name"] for x in s["stages"]]
assert names == ["fp32-eval", "int8-ptq", "sensitivity", "latency-table", "ilp", "mixed-ptq",
                 "mixed-eval", "latency"], names
assert not any(x["reused"] for x in s["stages"]) and all(x["seconds"] > 0 for x in s["stages"])
st = json.load(open(w + "/stages.json"))
assert st["format"] == "hawq-quantize-stages" and sorted(st["stages"]) == sorted(names), st
PY
cp "$W/summary.json" "$tmp/summary1.json"

# ---- the same command: every stage reused, the same summary ----
start=$(date +%s)
expect 0 '^mixed +[0-9.]+% \(' -- q --finetune-epochs 0
[ $(($(date +%s) - start)) -le 5 ] || fail "a run that reuses every stage took over 5 s"
stages "outputs" "$ALL"
cmp -s "$tmp/m.hqm" "$W/mixed.hqm" || fail "the rerun's OUT.hqm differs"
"$PY" - "$tmp/summary1.json" "$W/summary.json" <<'PY' || fail "the rerun's summary differs"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert a["rows"] == b["rows"], (a["rows"], b["rows"])
assert [x["seconds"] for x in a["stages"]] == [x["seconds"] for x in b["stages"]]
assert all(x["reused"] for x in b["stages"]), b["stages"]
PY

# ---- another budget: the ILP and every stage after it run again ----
expect 0 '^budget size 0.25,' -- q --finetune-epochs 0 --size 0.25
stages "ilp mixed-ptq mixed-eval latency outputs" "fp32-eval int8-ptq sensitivity latency-table"
"$PY" - "$tmp/summary1.json" "$W/summary.json" <<'PY' || fail "--size 0.25: summary"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert b["budgets"] == {"size": "0.25"}, b["budgets"]
assert b["rows"][2]["size_bytes"] < a["rows"][2]["size_bytes"], (a["rows"][2], b["rows"][2])
strip = lambda r: {k: v for k, v in r.items() if k != "latency_ms"}
assert [strip(r) for r in a["rows"][:2]] == [strip(r) for r in b["rows"][:2]], (a["rows"], b["rows"])
PY

# ---- an output changed by hand: its stage runs again; the same bits.json reuses the rest ----
printf ' ' >> "$W/bits.json"
expect 0 '^mixed ' -- q --finetune-epochs 0 --size 0.25
stages "ilp" "fp32-eval int8-ptq sensitivity latency-table mixed-ptq mixed-eval latency"

# ---- another hawq executable (a copy with one byte more, which still runs): every stage ----
cp "$HAWQ" "$tmp/hawq2" && printf 'x' >> "$tmp/hawq2" || fail "copy of hawq"
hawq1=$HAWQ HAWQ=$tmp/hawq2
expect 0 '^mixed ' -- q --finetune-epochs 0 --size 0.25
stages "$ALL outputs" ""
HAWQ=$hawq1
# (and the original executable again: every stage again, then reused)
expect 0 '^mixed ' -- q --finetune-epochs 0 --size 0.25
stages "$ALL outputs" ""
expect 0 '^mixed ' -- q --finetune-epochs 0 --size 0.25
stages "outputs" "$ALL"

# ---- fine-tuning (a few steps) and the report; --json prints summary.json ----
expect 0 '"hawq-quantize-summary"' -- q --size 0.25 --finetune-steps 3 --finetune-args "--batch 16" --json -r "$tmp/r.html"
stages "finetune mixed-eval latency" "fp32-eval int8-ptq sensitivity latency-table ilp"
grep -q '<svg' "$tmp/r.html" || fail "no HTML report"
"$PY" - "$W" "$tmp/out" <<'PY' || fail "finetune: summary"
import json, sys
w = sys.argv[1]
s, out = json.load(open(w + "/summary.json")), json.load(open(sys.argv[2]))
assert s == out, "--json differs from summary.json"
ft, mixed = json.load(open(w + "/finetune.json")), s["rows"][2]
assert ft["steps"] == 3 and ft["images"] == 500, ft
assert mixed["top1_correct"] == ft["integer_top1_correct"], (mixed, ft)
assert mixed["finetune_epochs"] == ft["epochs"] > 0 and mixed["finetune_seconds"] == ft["seconds"] > 0
assert [x["name"] for x in s["stages"]][5] == "finetune"
PY
cmp -s "$tmp/m.hqm" "$W/mixed.hqm" || fail "OUT.hqm is not the fine-tuned mixed.hqm"

# ---- bad input: one line, exit 1, nothing written ----
E=$tmp/e.hqm
nothing() { [ ! -e "$E" ] && [ ! -e "$E.work" ] || fail "$1: wrote $(ls -d "$E"*)"; }
expect 1 'nope.onnx: No such file' -- "$HAWQ" quantize "$tmp/nope.onnx" --data fashion-mnist -o "$E"
nothing "missing model"
expect 1 "quantize: --size 'abc': expected a ratio" -- "$HAWQ" quantize "$MODEL" --data fashion-mnist -o "$E" --size abc
nothing "bad budget"
expect 1 "quantize: --bops '3Q': unknown unit 'Q'" -- "$HAWQ" quantize "$MODEL" --data fashion-mnist -o "$E" --bops 3Q
expect 1 "quantize: --bits '4,9'" -- "$HAWQ" quantize "$MODEL" --data fashion-mnist -o "$E" --bits 4,9
expect 1 "unknown option '--nope'" -- "$HAWQ" quantize "$MODEL" --data fashion-mnist -o "$E" --nope
expect 1 "'--eval-limit' expects an integer" -- "$HAWQ" quantize "$MODEL" --data fashion-mnist -o "$E" --eval-limit x
expect 1 "--finetune-args: option '--lr' expects a finite number" -- "$HAWQ" quantize "$MODEL" --data fashion-mnist -o "$E" --finetune-args "--lr abc"
expect 1 "--sens-args: '-o' is set by hawq quantize" -- "$HAWQ" quantize "$MODEL" --data fashion-mnist -o "$E" --sens-args "-o x"
expect 1 "--data is required" -- "$HAWQ" quantize "$MODEL" -o "$E"
expect 1 "an integer model" -- "$HAWQ" quantize "$tmp/m.hqm" --data fashion-mnist -o "$E"
nothing "bad options"
# A stage that fails: one line naming it, with its log's last line; no OUT.
mkdir "$tmp/empty"
expect 1 "^hawq: quantize: stage 'fp32-eval' failed \(exit 1\): hawq: .*empty: neither t10k-images" -- "$HAWQ" quantize "$MODEL" --data "$tmp/empty" -o "$E"
[ ! -e "$E" ] || fail "a failed run wrote OUT"
[ -s "$E.work/fp32-eval.log" ] || fail "a failed stage left no log"

[ "$fails" -eq 0 ] || exit 1
echo "ok"
