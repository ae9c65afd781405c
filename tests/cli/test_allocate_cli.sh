#!/bin/sh
# hawq allocate: bit allocation from the sensitivity fixtures (tests/search/fixtures). A run's
# bits.json is checked against brute force over every assignment (python), read back by hawq
# calibrate --bits, and the integer model's per-layer bits and BOPS compared with the ILP's;
# infeasible budgets and bad inputs get one-line errors, exit 1, and leave no output file.
set -u
HAWQ=${HAWQ:?set HAWQ to the hawq binary}
FIX=tests/search/fixtures
SENS=$FIX/sens_small.json
LAT=$FIX/latency_small.json
. tests/cli/cli_lib.sh
PY=""
if /usr/bin/python3 -c "import json" 2>/dev/null; then PY=/usr/bin/python3; fi

# ---- a real run: size budget as a ratio ----
expect 0 "^objective [0-9.e+-]+ \(summed Omega\)" -- "$HAWQ" allocate --sensitivity "$SENS" --size 0.5 -o "$tmp/bits.json"
grep -Eq "^size +[0-9]+ B .*budget 0.5 = [0-9]+ B" "$tmp/out" || fail "allocate: no size line: $(cat "$tmp/out")"
grep -Eq "^ +0 +conv0 +Conv .* 8  pinned$" "$tmp/out" || fail "allocate: first layer not pinned at 8"
[ -s "$tmp/bits.json" ] || fail "allocate -o wrote nothing"

# The same document on stdout with --json.
expect 0 '"hawq-allocation"' -- "$HAWQ" allocate --sensitivity "$SENS" --size 0.5 --json
cp "$tmp/out" "$tmp/stdout.json"

# Brute force: the optimum over every assignment of {4, 8} to the free layers, ends at 8, ties
# honoured, size = ceil(params * b / 8) within all-4 + 0.5 * (all-8 - all-4).
if [ -n "$PY" ]; then
  "$PY" - "$tmp/bits.json" "$tmp/stdout.json" "$SENS" <<'PY' || fail "allocate: bits.json is not the brute-force optimum"
import itertools, json, sys
doc = json.load(open(sys.argv[1]))
assert doc == json.load(open(sys.argv[2])), "--json differs from -o"
sens = json.load(open(sys.argv[3]))
L = sens["layers"]; n = len(L)
names = [l["name"] for l in L]
assert list(doc["layers"]) == names, list(doc["layers"])
assert doc["pin_ends"] is False
bits = [doc["layers"][k]["weight_bits"] for k in names]
assert all(doc["layers"][k]["act_bits"] == doc["layers"][k]["weight_bits"] for k in names)
size = lambda i, b: (L[i]["params"] * b + 7) // 8
ties = [(names.index(g[0]), names.index(h)) for g in sens["ties"] for h in g[1:]]
lo = size(0, 8) + size(n - 1, 8) + sum(size(i, 4) for i in range(1, n - 1))
hi = sum(size(i, 8) for i in range(n))
limit = lo + 0.5 * (hi - lo)
ilp = doc["ilp"]
assert abs(ilp["budgets"]["size"]["limit"] - limit) < 1e-9, (ilp["budgets"], limit)
assert ilp["all_min"]["size"] == lo and ilp["all_max"]["size"] == hi
best = None
for free in itertools.product((4, 8), repeat=n - 2):
    b = [8] + list(free) + [8]
    if any(b[i] != b[j] for i, j in ties): continue
    if sum(size(i, b[i]) for i in range(n)) > limit: continue
    obj = sum(L[i]["omega"][str(b[i])] for i in range(n))
    if best is None or obj < best[0]: best = (obj, b)
assert bits == best[1], (bits, best)
assert abs(ilp["objective"] - best[0]) <= 1e-12 * abs(best[0]), (ilp["objective"], best)
assert ilp["used"]["size"] == sum(size(i, bits[i]) for i in range(n))
assert ilp["used"]["bops"] == sum(L[i]["macs"] * bits[i] ** 2 for i in range(n))
assert "latency" not in ilp["used"] and "frontier" not in doc
assert ilp["pins"] == {names[0]: 8, names[-1]: 8}
PY
fi

# ---- latency at 2 threads, an absolute latency budget, --bits 2,4,8 needs 2-bit times ----
expect 0 "^latency +[0-9.]+ ms.*budget 0.2ms = 0.2 ms \(2 thread\(s\)\)" -- "$HAWQ" allocate --sensitivity "$SENS" --latency "$LAT" --threads 2 --latency-budget 0.2ms --no-pin-ends --pin fc=8 -o "$tmp/lat.json"
expect 1 "latency_small.json: layer 'conv1' has no time at 2 bits \(1 thread\(s\)\)" -- "$HAWQ" allocate --sensitivity "$SENS" --latency "$LAT" --bits 2,4,8 -o "$tmp/none.json"

# ---- the sweep: 11 budgets of latency under a size budget ----
expect 0 "^Pareto frontier over latency: [0-9]+ distinct allocations from 11 budgets" -- "$HAWQ" allocate --sensitivity "$SENS" --latency "$LAT" --size 0.8 --sweep --sweep-steps 11 --sweep-resource latency -o "$tmp/sweep.json"
if [ -n "$PY" ]; then
  "$PY" - "$tmp/sweep.json" "$tmp/lat.json" "$LAT" <<'PY' || fail "allocate --sweep: frontier"
import json, sys
doc = json.load(open(sys.argv[1]))
f = doc["frontier"]
assert doc["ilp"]["sweep"] == {"resource": "latency", "steps": 11}
assert 1 <= len(f) <= 11
for a, b in zip(f, f[1:]):
    assert b["ratio"] > a["ratio"] and b["limit"] > a["limit"], (a, b)
    assert b["objective"] <= a["objective"], (a, b)
    assert b["bits"] != a["bits"]
size_limit = doc["ilp"]["budgets"]["size"]["limit"]
for p in f:
    assert p["used"]["latency"] <= p["limit"] * (1 + 1e-9) and p["used"]["size"] <= size_limit
    assert len(p["bits"]) == 6 and p["bits"][0] == 8 and p["bits"][-1] == 8
# The 2-thread run: latency summed from the table's 2-thread column.
d = json.load(open(sys.argv[2])); t = json.load(open(sys.argv[3]))
ms = {l["name"]: l["ms"]["2"] for l in t["layers"]}
used = sum(ms[k][str(v["weight_bits"])] for k, v in d["layers"].items())
assert abs(d["ilp"]["used"]["latency"] - used) < 1e-12 and used <= 0.2 + 1e-12, used
assert d["ilp"]["threads"] == 2 and d["ilp"]["pins"] == {"fc": 8}
PY
fi

# ---- absolute budgets ----
expect 0 "budget 20KB = 20000 B" -- "$HAWQ" allocate --sensitivity "$SENS" --size 20KB
expect 0 "budget 0.12G = 120000000 BOPS" -- "$HAWQ" allocate --sensitivity "$SENS" --bops 0.12G
expect 0 "objective" -- "$HAWQ" allocate --sensitivity "$SENS" --bops 150000000bops --size 30000B --bits 2,4,8

# ---- infeasible budgets: the resource, its limit, the smallest feasible value ----
expect 1 "allocate: --size -0.5 \(9264 B, ratio -0.5\) cannot be met: the smallest feasible size is 17456 B \(ratio 0\) under the ties, pins and other budgets$" -- "$HAWQ" allocate --sensitivity "$SENS" --size -0.5 -o "$tmp/inf.json"
expect 1 "--bops 1M \(1000000 BOPS, ratio -0.5[0-9]*\) cannot be met: the smallest feasible bops is 76062720 BOPS \(ratio 0\)" -- "$HAWQ" allocate --sensitivity "$SENS" --size 0.9 --bops 1M -o "$tmp/inf.json"
expect 1 "tied layers 'conv2' \(pinned at 4 bits\) and 'shortcut' \(pinned at 8 bits\) can take no common bit width" -- "$HAWQ" allocate --sensitivity "$SENS" --pin conv2=4 --pin=shortcut=8 -o "$tmp/inf.json"
expect 1 "--bops 1Kbops \(1000 BOPS, ratio" -- "$HAWQ" allocate --sensitivity "$SENS" --bops 1Kbops --sweep -o "$tmp/inf.json"

# ---- bad inputs: one line naming the file or the flag, exit 1 ----
printf '{"format": "hawq-sensitivity", "version": 1, "model": "m", "layers": [' > "$tmp/trunc.json"
printf '{"format": "hawq-latency", "version": 1, "model": "m", "layers": []}' > "$tmp/lat_other.json"
printf '[1, 2]' > "$tmp/array.json"
if [ -n "$PY" ]; then
  "$PY" - "$SENS" "$tmp" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); d = sys.argv[2]
def put(name, doc): json.dump(doc, open(d + "/" + name, "w"))
put("v2.json", dict(s, version=2))
put("format.json", dict(s, format="hawq-latency"))
bad = json.loads(json.dumps(s)); del bad["layers"][2]["params"]; put("noparams.json", bad)
bad = json.loads(json.dumps(s)); bad["layers"][1]["omega"] = {"4": 1e-3, "8": 1e-5}; put("omega48.json", bad)
bad = json.loads(json.dumps(s)); bad["ties"] = [["conv2", "nosuch"]]; put("badtie.json", bad)
bad = json.loads(json.dumps(s)); bad["layers"][3]["name"] = "conv2"; put("dup.json", bad)
bad = json.loads(json.dumps(s)); del bad["ties"]; put("noties.json", bad)
PY
  expect 1 "v2.json: 'version' must be 1" -- "$HAWQ" allocate --sensitivity "$tmp/v2.json" -o "$tmp/bad.json"
  expect 1 "format.json: 'format' is not \"hawq-sensitivity\"" -- "$HAWQ" allocate --sensitivity "$tmp/format.json" -o "$tmp/bad.json"
  expect 1 "noparams.json: layer 'conv2': 'params' must be a positive integer" -- "$HAWQ" allocate --sensitivity "$tmp/noparams.json" -o "$tmp/bad.json"
  expect 1 "omega48.json: layer 'conv1' has no omega at 2 bits" -- "$HAWQ" allocate --sensitivity "$tmp/omega48.json" --bits 2,4 -o "$tmp/bad.json"
  expect 0 "objective" -- "$HAWQ" allocate --sensitivity "$tmp/omega48.json" --bits 4,8
  expect 1 "badtie.json: 'ties': 'nosuch' is not a layer" -- "$HAWQ" allocate --sensitivity "$tmp/badtie.json" -o "$tmp/bad.json"
  expect 1 "dup.json: layer 'conv2' appears twice" -- "$HAWQ" allocate --sensitivity "$tmp/dup.json" -o "$tmp/bad.json"
  expect 1 "noties.json: 'ties' must be an array" -- "$HAWQ" allocate --sensitivity "$tmp/noties.json" -o "$tmp/bad.json"
fi
expect 1 "trunc.json: not a JSON object" -- "$HAWQ" allocate --sensitivity "$tmp/trunc.json" -o "$tmp/bad.json"
expect 1 "array.json: not a JSON object" -- "$HAWQ" allocate --sensitivity "$tmp/array.json" -o "$tmp/bad.json"
expect 1 "nosuch.json" -- "$HAWQ" allocate --sensitivity "$tmp/nosuch.json" -o "$tmp/bad.json"
expect 1 "lat_other.json: no layer 'conv0' \(a layer of the sensitivity file\)" -- "$HAWQ" allocate --sensitivity "$SENS" --latency "$tmp/lat_other.json" -o "$tmp/bad.json"
expect 1 "latency_small.json: layer 'conv0' has no times at 3 thread\(s\)" -- "$HAWQ" allocate --sensitivity "$SENS" --latency "$LAT" --threads 3 -o "$tmp/bad.json"
expect 1 "sens_small.json: 'format' is not \"hawq-latency\"" -- "$HAWQ" allocate --sensitivity "$SENS" --latency "$SENS" -o "$tmp/bad.json"
expect 1 "sensitivity SENS.json is required" -- "$HAWQ" allocate --size 0.5
expect 1 "--bits '4,9': expected distinct widths 2-8" -- "$HAWQ" allocate --sensitivity "$SENS" --bits 4,9
expect 1 "--bits '4,4'" -- "$HAWQ" allocate --sensitivity "$SENS" --bits 4,4
expect 1 "--size '12000000': a bare number is a ratio .* e.g. 12000B" -- "$HAWQ" allocate --sensitivity "$SENS" --size 12000000
expect 1 "--size '3XB': unknown unit 'XB'" -- "$HAWQ" allocate --sensitivity "$SENS" --size 3XB
expect 1 "--bops 'many'" -- "$HAWQ" allocate --sensitivity "$SENS" --bops many
expect 1 "--latency-budget '5' .*--latency FILE|--threads and --latency-budget need --latency FILE" -- "$HAWQ" allocate --sensitivity "$SENS" --latency-budget 5ms
expect 1 "--latency-budget '2MB': unknown unit" -- "$HAWQ" allocate --sensitivity "$SENS" --latency "$LAT" --latency-budget 2MB
expect 1 "--pin 'nosuch=4': no layer 'nosuch'" -- "$HAWQ" allocate --sensitivity "$SENS" --pin nosuch=4
expect 1 "--pin 'conv1=9': expected NAME=B" -- "$HAWQ" allocate --sensitivity "$SENS" --pin conv1=9
expect 1 "option '--pin' needs a value" -- "$HAWQ" allocate --sensitivity "$SENS" --pin
expect 1 "--sweep-steps and --sweep-resource need --sweep" -- "$HAWQ" allocate --sensitivity "$SENS" --sweep-steps 5
expect 1 "--sweep-resource latency needs --latency FILE" -- "$HAWQ" allocate --sensitivity "$SENS" --sweep --sweep-resource latency
expect 1 "--sweep-resource 'speed'" -- "$HAWQ" allocate --sensitivity "$SENS" --sweep --sweep-resource speed
expect 1 "option '--sweep-steps' is 1, expected 2 to 1001" -- "$HAWQ" allocate --sensitivity "$SENS" --sweep --sweep-steps 1
expect 1 "unexpected argument 'extra'" -- "$HAWQ" allocate --sensitivity "$SENS" extra
for f in inf.json none.json bad.json; do
  [ -e "$tmp/$f" ] && fail "a failed allocate left $f behind"
done
ls "$tmp" | grep -q '\.tmp\.' && fail "a temporary output file was left behind"
expect 0 "usage: hawq allocate --sensitivity" -- "$HAWQ" allocate --help

# ---- hawq calibrate --bits reads the result: every layer at its width, the BOPS agree ----
R14=tests/models/torch/fmnist_resnet14.onnx
expect 0 "objective" -- "$HAWQ" allocate --sensitivity "$FIX/sens_resnet14.json" --size 0.5 --sweep -o "$tmp/r14.json"
if [ -d /usr/share/datasets/fashion-mnist ]; then
  expect 0 "^wrote " -- "$HAWQ" calibrate "$R14" --data fashion-mnist --bits "$tmp/r14.json" --calib-images 32 -o "$tmp/r14.hqm"
  "$HAWQ" info "$tmp/r14.hqm" --json > "$tmp/r14_info.json" || fail "hawq info r14.hqm"
  if [ -n "$PY" ]; then
    "$PY" - "$tmp/r14.json" "$tmp/r14_info.json" <<'PY' || fail "calibrate --bits: the integer model differs from the allocation"
import json, sys
alloc = json.load(open(sys.argv[1])); info = json.load(open(sys.argv[2]))
convs = {o["name"]: o for o in info["ops"] if o["op"] == "QConv"}
assert set(convs) == set(alloc["layers"]), (sorted(convs), sorted(alloc["layers"]))
for name, b in alloc["layers"].items():
    assert convs[name]["weight_bits"] == b["weight_bits"], (name, convs[name]["weight_bits"], b)
assert sorted(set(b["weight_bits"] for b in alloc["layers"].values())) == [4, 8]
assert info["bops"] == alloc["ilp"]["used"]["bops"], (info["bops"], alloc["ilp"]["used"])
PY
  fi
else
  echo "test_allocate_cli: no fashion-mnist dataset; the calibrate round trip is skipped"
fi

[ "$fails" -eq 0 ] || exit 1
echo "test_allocate_cli: ok"
