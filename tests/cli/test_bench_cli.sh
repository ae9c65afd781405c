#!/bin/sh
# hawq bench and the kernel level options: bench times a float model (quantized on synthetic
# images) and a .hqm, writes the per-layer latency table as JSON, and reports memory; eval and
# run give the same results at every level the CPU has; bad options get one-line errors. Only
# the shape of the figures is checked: timings are measured by bench/, not asserted here.
set -u
HAWQ=${HAWQ:?set HAWQ to the hawq binary}
MODEL=tests/models/torch/fmnist_resnet14.onnx
. tests/cli/cli_lib.sh

# A float model straight to the latency table: every conv/FC layer at 4 and 8 bits, 1 and 2 threads.
expect 0 "per-layer median ms" -- "$HAWQ" bench "$MODEL" --runs 3 --warmup 1 --threads 1,2 --layers -o "$tmp/lat.json" --save "$tmp/b8.hqm"
grep -Eq "^threads 1: median [0-9.]+ ms .* GOP/s; [0-9]+/[0-9]+ conv on " "$tmp/out" || fail "bench: no 1-thread line: $(head -c 400 "$tmp/out")"
grep -Eq "^threads 2: median" "$tmp/out" || fail "bench: no 2-thread line"
grep -Eq "activations [0-9.]+ MB planned \([0-9.]+ MB unplanned\)" "$tmp/out" || fail "bench: no memory line"
grep -Eq "^peak resident memory [0-9.]+ MB" "$tmp/out" || fail "bench: no peak memory"
[ -s "$tmp/b8.hqm" ] || fail "bench --save wrote nothing"
if /usr/bin/python3 -c "import json" 2>/dev/null; then
  /usr/bin/python3 - "$tmp/lat.json" "$MODEL" <<'PY' || fail "bench: latency table JSON"
import json, sys
t = json.load(open(sys.argv[1]))
assert t["format"] == "hawq-latency" and t["version"] == 1, t.get("format")
assert t["layer_bits"] == [4, 8], t["layer_bits"]
names = [l["name"] for l in t["layers"]]
# The fixture's conv and gemm layers, in execution order, each timed at 1 and 2 threads x 4 and 8 bits.
import onnx
g = onnx.load(sys.argv[2]).graph
want = [n.name for n in g.node if n.op_type in ("Conv", "Gemm")]
assert names == want, (names, want)
for l in t["layers"]:
    assert l["macs"] > 0, l
    for th in ("1", "2"):
        for b in ("4", "8"):
            assert l["ms"][th][b] > 0, (l["name"], th, b)
assert [e["threads"] for e in t["end_to_end"]] == [1, 2]
for e in t["end_to_end"]:
    assert e["min_ms"] <= e["median_ms"] <= e["max_ms"] and e["gops"] > 0, e
    assert e["arena_bytes"] <= e["all_slots_bytes"], e
assert t["peak_rss_bytes"] > 0
PY
fi

# --profile: every op timed in sequence; the per-type lines add up to the stated sum.
expect 0 "ops in sequence, 1 thread\(s\): medians sum to [0-9.]+ ms" -- "$HAWQ" bench "$tmp/b8.hqm" --runs 3 --warmup 0 --threads 1 --profile
awk '/medians sum to/ {sum = $(NF - 1)} /^  Q[A-Za-z]+ +[0-9]+ ops/ {s += $4} END {d = s - sum; if (d < 0) d = -d; exit !(sum > 0 && d < 0.01 + 0.001 * sum)}' "$tmp/out" ||
  fail "bench --profile: the op types do not add up: $(cat "$tmp/out")"

# A .hqm, every level the CPU has, JSON on stdout.
expect 0 '"end_to_end"' -- "$HAWQ" bench "$tmp/b8.hqm" --runs 2 --warmup 0 --threads 1 --json
best=$("$HAWQ" bench "$tmp/b8.hqm" --runs 1 --warmup 0 --threads 1 --json | sed -n 's/.*"isa":[[:space:]]*"\([a-z0-9]*\)".*/\1/p')
[ -n "$best" ] || fail "bench --json names no isa"
levels="scalar"
case "$best" in avx2) levels="scalar avx2" ;; avx512vnni) levels="scalar avx2 avx512vnni" ;; esac
echo "test_bench_cli: levels on this CPU: $levels"

# The plan's storage and fusion choices (VNNI only): a W4A4 ResNet stores the 4-bit activations
# its convolutions read as bytes and fuses its residual stream's requantizations, and the
# flags turn each off.
num() { sed -n "s/.*\"$1\":[[:space:]]*\([0-9]*\).*/\1/p" "$tmp/out" | head -1; }
if [ "$best" = avx512vnni ]; then
  expect 0 '"fused_requants"' -- "$HAWQ" bench "$MODEL" --bits 4 --runs 1 --warmup 0 --threads 1 --json
  [ "$(num int4_tensors_as_bytes)" -gt 0 ] && [ "$(num fused_requants)" -gt 0 ] ||
    fail "bench --bits 4: nothing stored as bytes or fused: $(cat "$tmp/out")"
  expect 0 '"fused_requants"' -- "$HAWQ" bench "$MODEL" --bits 4 --runs 1 --warmup 0 --threads 1 --json --int4-packed --no-fusion
  [ "$(num int4_tensors_as_bytes)" = 0 ] && [ "$(num fused_requants)" = 0 ] ||
    fail "bench --int4-packed --no-fusion: $(cat "$tmp/out")"
  expect 0 "requantizations fused into their convolutions" -- "$HAWQ" bench "$MODEL" --bits 8 --runs 1 --warmup 0 --threads 1
fi

# eval and run: identical results at every level and thread count.
if [ -d /usr/share/datasets/fashion-mnist ]; then
  ref=""
  for isa in $levels; do
    for th in 1 2; do
      expect 0 "top-1" -- "$HAWQ" eval "$tmp/b8.hqm" --data fashion-mnist --limit 200 --isa $isa --threads $th --logits "$tmp/l_$isa$th.npy"
      sum=$(cksum < "$tmp/l_$isa$th.npy")
      [ -z "$ref" ] && ref=$sum
      [ "$sum" = "$ref" ] || fail "eval --isa $isa --threads $th: logits differ from the first level's"
      expect 0 "^class [0-9]" -- "$HAWQ" run "$tmp/b8.hqm" --data fashion-mnist --index 3 --isa $isa --threads $th --logits
      out=$(cat "$tmp/out")
      [ -z "${run_ref:-}" ] && run_ref=$out
      [ "$out" = "$run_ref" ] || fail "run --isa $isa --threads $th differs"
    done
  done
fi

# Errors: one line, non-zero exit, nothing written.
expect 1 "--isa must be scalar, avx2 or avx512vnni, got 'sse9'" -- "$HAWQ" bench "$tmp/b8.hqm" --isa sse9
expect 1 "--threads must be a list of integers" -- "$HAWQ" bench "$tmp/b8.hqm" --threads 1,x
expect 1 "--layer-bits must be a list of integers in \[2, 8\]" -- "$HAWQ" bench "$MODEL" --layer-bits 4,9
expect 1 "--layers needs the float model" -- "$HAWQ" bench "$tmp/b8.hqm" --layers
expect 1 "--save applies to float models" -- "$HAWQ" bench "$tmp/b8.hqm" --save "$tmp/x.hqm"
expect 1 "--isa applies to integer models" -- "$HAWQ" eval "$MODEL" --data fashion-mnist --isa scalar
expect 1 "no_such.onnx" -- "$HAWQ" bench "$tmp/no_such.onnx" -o "$tmp/x.json"
[ ! -e "$tmp/x.json" ] && [ ! -e "$tmp/x.hqm" ] || fail "a failed bench left output"
if [ "$best" != avx512vnni ]; then
  expect 1 "--isa avx512vnni: this CPU lacks it" -- "$HAWQ" run "$tmp/b8.hqm" --data fashion-mnist --index 0 --isa avx512vnni
fi

[ "$fails" -eq 0 ] || exit 1
echo "test_bench_cli: all checks passed"
