#!/bin/sh
# Hessian-guided mixed precision on the bundled model, against random and uniform allocations
# of the same size (issue 6's point: the Hessian-guided choice must beat them).
#
#   ./bench/run_mixed.sh        (about 10 minutes on 2 cores)
#
# 1. `hawq sensitivity` at its defaults: per-layer traces, standard errors and the time taken;
# 2. for size budgets 0.75 / 0.5 / 0.25 (all-4 + r * (all-8 - all-4), first and last layer at
#    8 bits): `hawq allocate --size r`, then `hawq calibrate --bits bits.json` and `hawq eval`
#    (integer runtime, full Fashion-MNIST test set);
# 3. the same budgets as uniform widths (W7A7, W6A6, W5A5: the same size exactly, ends at 8) and
#    as DRAWS (default 5) random 4/8 allocations each: layers (tied ones together) turned to 4
#    bits in a random order until the size fits the budget, then back to 8 in another random
#    order wherever the budget still allows; and the ILP again with widths 4-8 to choose from.
# Every model is calibrated alike (1024 training images, percentile 99.99). Writes
# build/bench/mixed.md and the files under build/bench/mixed/.
set -eu
cd "$(dirname "$0")/.."
HAWQ=${HAWQ:-build/release/hawq}
# Debian's python3 with numpy (python3-numpy), for the tables
PY=${PY:-/usr/bin/python3}
MODEL=${MODEL:-models/fmnist_resnet20.onnx}
RANDOM_DRAWS=${DRAWS:-5}
out=build/bench/mixed
mkdir -p "$out"
[ -x "$HAWQ" ] || ./scripts/build.sh release

CALIB="--calib-images 1024 --percentile 99.99"

# SENS=FILE reuses a sens.json of an earlier run (the table then shows that run's time).
if [ -n "${SENS:-}" ]; then
  [ "$SENS" = "$out/sens.json" ] || cp "$SENS" "$out/sens.json"
else
  "$HAWQ" sensitivity "$MODEL" --data fashion-mnist -o "$out/sens.json" > "$out/sens.txt"
fi

# quant NAME BITS: calibrate, evaluate; prints "top1 correct weight_bytes bops"
quant() {
  "$HAWQ" calibrate "$MODEL" --data fashion-mnist --bits "$2" $CALIB -o "$out/$1.hqm" > /dev/null
  "$HAWQ" eval "$out/$1.hqm" --data fashion-mnist --json --logits "$out/$1.logits.npy" \
    2> /dev/null > "$out/$1.eval.json"
  "$HAWQ" info "$out/$1.hqm" --json > "$out/$1.info.json"
  "$PY" - "$out/$1.eval.json" "$out/$1.info.json" "$out/sens.json" "$out/$1.logits.npy" << 'EOF'
import gzip, json, math, sys
import numpy as np
e = json.load(open(sys.argv[1])); i = json.load(open(sys.argv[2]))
# the test set's mean cross-entropy of the integer model's (dequantized) logits: a finer
# measure of the damage than top-1
z = np.load(sys.argv[4]).astype(np.float64)
with gzip.open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") as f:
    y = np.frombuffer(f.read()[8:], dtype=np.uint8)
m = z.max(axis=1)
nll = np.mean(m + np.log(np.exp(z - m[:, None]).sum(axis=1)) - z[np.arange(len(y)), y])
params = {l["name"]: l["params"] for l in json.load(open(sys.argv[3]))["layers"]}
# the ILP's size: weights packed at their widths (the .hqm stores 5-7-bit weights in bytes)
size = sum(math.ceil(params[n] * b["weight_bits"] / 8) for n, b in i["bits"]["layers"].items())
print(e["top1"], e["top1_correct"], size, i["bops"], "%.5f" % nll)
EOF
}

rows=""
for r in 0.75 0.5 0.25; do
  "$HAWQ" allocate --sensitivity "$out/sens.json" --size "$r" -o "$out/ilp_$r.json" > "$out/ilp_$r.txt"
  rows="$rows
ilp $r $(quant "ilp_$r" "$out/ilp_$r.json")"
  "$HAWQ" allocate --sensitivity "$out/sens.json" --size "$r" --bits 4,5,6,7,8 \
    -o "$out/ilp48_$r.json" > "$out/ilp48_$r.txt"
  rows="$rows
ilp48 $r $(quant "ilp48_$r" "$out/ilp48_$r.json")"
  u=$("$PY" -c "print(round(4 + 4 * $r))")
  rows="$rows
uniform $r $(quant "uniform_$r" "w${u}a${u}")"
  s=1
  while [ "$s" -le "$RANDOM_DRAWS" ]; do
    "$PY" - "$out/sens.json" "$out/ilp_$r.json" "$s" "$out/random_${r}_$s.json" << 'EOF'
import json, math, random, sys
sens = json.load(open(sys.argv[1])); ilp = json.load(open(sys.argv[2]))["ilp"]
limit = ilp["budgets"]["size"]["limit"]
layers = [l["name"] for l in sens["layers"]]
params = {l["name"]: l["params"] for l in sens["layers"]}
pinned = set(ilp["pins"])
groups = {n: [n] for n in layers}
for t in sens["ties"]:
    g = sorted(set(sum((groups[n] for n in t), [])))
    for n in g:
        groups[n] = g
units = sorted({tuple(groups[n]) for n in layers if n not in pinned})
bits = {n: 8 for n in layers}
size = lambda: sum(math.ceil(params[n] * bits[n] / 8) for n in layers)
rng = random.Random(int(sys.argv[3]))
rng.shuffle(units)
for u in units:  # to 4 bits in a random order until the budget is met ...
    if size() <= limit:
        break
    for n in u:
        bits[n] = 4
rng.shuffle(units)
for u in units:  # ... then back to 8 where the budget still allows: as full as the ILP's
    if bits[u[0]] == 4:
        for n in u:
            bits[n] = 8
        if size() > limit:
            for n in u:
                bits[n] = 4
json.dump({"pin_ends": False, "layers": {n: {"weight_bits": b, "act_bits": b}
                                         for n, b in bits.items()}}, open(sys.argv[4], "w"))
EOF
    rows="$rows
random $r $(quant "random_${r}_$s" "$out/random_${r}_$s.json")"
    s=$((s + 1))
  done
done
rows="$rows
int8 1 $(quant int8 8)
int4 0 $(quant int4 4)"

"$PY" - "$out" << EOF > build/bench/mixed.md
import json, statistics, sys
out = sys.argv[1]
rows = [l.split() for l in """$rows""".strip().splitlines()]
sens = json.load(open(out + "/sens.json"))
print("Sensitivity: \`hawq sensitivity $MODEL --data fashion-mnist\` (defaults: %d images, seed %d):"
      % (sens["images"], sens["seed"]))
print("%d draws, converged: %s, %.0f s.\n" % (sens["draws"], sens["converged"], sens["seconds"]))
print("| layer | weights | trace | standard error |")
print("|---|---:|---:|---:|")
for l in sens["layers"]:
    print("| %s | %d | %.3f | %.3f |" % (l["name"], l["params"], l["trace"], l["trace_se"]))
print("\nPTQ accuracy (integer runtime, Fashion-MNIST test set, 10000 images) at each size budget:\n")
print("| size budget | allocation | top-1 | test loss | weight bytes (packed at their widths) | BOPS |")
print("|---|---|---:|---:|---:|---:|")
for kind, r, top1, correct, wb, bops, nll in rows:
    if kind == "random":
        continue
    label = {"ilp": "Hessian + ILP, 4/8", "ilp48": "Hessian + ILP, 4-8", "uniform": "uniform", "int8": "all 8 (ends 8)",
             "int4": "all 4 (ends 8)"}[kind]
    if kind == "uniform":
        u = round(4 + 4 * float(r))
        label = "uniform W%dA%d" % (u, u)
    print("| %s | %s | %.2f %% (%s) | %s | %s | %.3f G |" % (r, label, float(top1), correct, nll,
                                                           wb, int(bops) / 1e9))
    if kind == "uniform":
        rs = [x for x in rows if x[0] == "random" and x[1] == r]
        acc = [float(x[2]) for x in rs]
        nl = [float(x[6]) for x in rs]
        print("| %s | random 4/8 (%d draws): median (min..max) | %.2f %% (%.2f..%.2f) | %.5f (%.5f..%.5f) | %s..%s | |"
              % (r, len(rs), statistics.median(acc), min(acc), max(acc), statistics.median(nl),
                 min(nl), max(nl), min(int(x[4]) for x in rs), max(int(x[4]) for x in rs)))
EOF
cat build/bench/mixed.md
