#!/bin/sh
# Integer runtime speed against the int8 anchors, in one sitting, on the anchors' own models
# (torchvision ResNet18 / ResNet50 / InceptionV3, random weights, batch 1):
#   - hawq INT8 (`hawq bench`, the best kernel level), ONNX Runtime int8 QDQ (bench/ort_time.js)
#     and PyTorch int8 FX onednn + jit.freeze (the anchors' bench_torch.py), one thread pinned
#     to core 0, interleaved ROUNDS rounds of RUNS runs, medians;
#   - the VNNI instruction peak of this core (the anchors' peak.c), for % of peak;
#   - hawq at 2 threads (cores 0-1): the scaling;
#   - hawq W4A8 and W4A4 (no layer pinned at 8 bits) end to end, and every conv/FC layer alone
#     at 4 and 8 bits (`hawq bench --layers`, the ILP's latency table);
#   - peak resident memory of `hawq bench` and of ONNX Runtime on the INT8 model.
# Writes build/bench/speed.md and the raw JSON next to it. Needs a release build, the anchors'
# set-up (nodejs, npm, python3-torch, python3-onnx: see ../shared/anchors/README.md).
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
WARMUP=${WARMUP:-5}
ROUNDS=${ROUNDS:-2}
MODELS=${MODELS:-"resnet18 resnet50 inception_v3"}
ANCHORS=${ANCHORS:-../shared/anchors}
PY=/usr/bin/python3
out=build/bench
HAWQ=build/release/hawq
mkdir -p "$out"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

[ -x "$HAWQ" ] || ./scripts/build.sh release > /dev/null
if [ ! -d build/anchors/node/node_modules/onnxruntime-node ]; then
  rm -rf build/anchors
  cp -r "$ANCHORS" build/anchors
  (cd build/anchors/node && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund > /dev/null 2>&1) || {
    echo "run_speed.sh: npm ci failed in build/anchors/node (needs nodejs and npm)" >&2
    exit 1
  }
fi
if [ ! -f build/anchors/out/inception_v3_int8_qdq.onnx ]; then
  echo "run_speed.sh: making the anchors' models (build/anchors/models.py, a few minutes)" >&2
  (cd build/anchors && taskset -c 0 $PY models.py > out.models.log 2>&1) || {
    echo "run_speed.sh: build/anchors/models.py failed, see build/anchors/out.models.log" >&2
    exit 1
  }
fi
[ -x build/anchors/peak/build/peak ] || make -C build/anchors/peak > /dev/null

. bench/common.sh

# The VNNI peak: the faster of vpdpbusd zmm and ymm (medians), in GOP/s.
peak=$(taskset -c 0 build/anchors/peak/build/peak |
       awk '$1 == "vnni_zmm" || $1 == "vnni_ymm" {print $(NF - 3)}' | sort -g | tail -1)
echo "VNNI peak: $peak GOP/s"

cat > "$out/all4.json" <<'JSON'
{"weight_bits": 4, "act_bits": 4, "pin_ends": false}
JSON
cat > "$out/w4a8.json" <<'JSON'
{"weight_bits": 4, "act_bits": 8, "pin_ends": false}
JSON

# hbench HQM THREADS CPUS: the median ms of one hawq bench run.
hbench() { printf '%.2f' "$(taskset -c "$3" "$HAWQ" bench "$1" --threads "$2" --runs "$RUNS" --warmup "$WARMUP" ${4:-} --json | tr -d '\n ' | field median_ms)"; }

{
  echo "# Integer runtime speed ($(date -u +%Y-%m-%d), $(cpu_name))"
  echo
  echo "Batch 1. One thread pinned to core 0; medians of $RUNS runs after $WARMUP warm-up runs per round,"
  echo "$ROUNDS rounds with the engines interleaved; a cell lists the rounds' medians, ratios use the median"
  echo "over rounds. VNNI peak of this core (anchors' peak.c, the faster of \`vpdpbusd\` zmm and ymm): $peak GOP/s."
  echo
  echo "| model | GMACs | hawq INT8 ms | ORT int8 QDQ ms | torch int8 onednn+jit ms | hawq / fastest anchor | hawq GOP/s | % VNNI peak |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
} > "$out/speed.md"

extra=""
for m in $MODELS; do
  size=224
  [ "$m" = inception_v3 ] && size=299
  f=build/anchors/out/${m}_fp32.onnx
  q=build/anchors/out/${m}_int8_qdq.onnx
  # The INT8, W4A8 and W4A4 integer models (synthetic calibration: timing only).
  "$HAWQ" bench "$f" --bits 8 --save "$out/${m}_int8.hqm" --runs 1 --warmup 0 --threads 1 > /dev/null
  "$HAWQ" bench "$f" --bits "$out/w4a8.json" --save "$out/${m}_w4a8.hqm" --runs 1 --warmup 0 --threads 1 > /dev/null
  "$HAWQ" bench "$f" --bits "$out/all4.json" --save "$out/${m}_w4a4.hqm" --runs 1 --warmup 0 --threads 1 > /dev/null
  gmacs=$("$HAWQ" bench "$out/${m}_int8.hqm" --runs 1 --warmup 0 --threads 1 --json | tr -d '\n ' | field macs)
  h_list="" o_list="" t_list=""
  r=0
  while [ $r -lt "$ROUNDS" ]; do
    h_list="$h_list $(hbench "$out/${m}_int8.hqm" 1 0)"
    o_list="$o_list $(printf '%.2f' "$(HAWQ_BENCH_INPUT=3,$size,$size taskset -c 0 node bench/ort_time.js "$q" --threads 1 --runs "$RUNS" --warmup "$WARMUP" | field median_ms)")"
    t=$(cd build/anchors && taskset -c 0 $PY bench_torch.py --models "$m" --variants int8_onednn_jit --runs "$RUNS" --warmup "$WARMUP" --out "../../$out/torch_$m.json" 2>/dev/null |
        awk -v m="$m" '$1 == m && $2 == "int8_onednn_jit" {print $3}')
    t_list="$t_list $t"
    r=$((r + 1))
  done
  h=$(median $h_list) o=$(median $o_list) t=$(median $t_list)
  [ -n "$t" ] || { echo "run_speed.sh: bench_torch.py gave no int8_onednn_jit time for $m" >&2; exit 1; }
  best=$(echo "$o $t" | tr ' ' '\n' | sort -g | head -1)
  gops=$(echo "scale=1; 2 * $gmacs / ($h * 1000000)" | bc -l)
  line="| $m | $(printf '%.3f' "$(echo "$gmacs / 1000000000" | bc -l)") | $(echo $h_list | tr ' ' '/') | $(echo $o_list | tr ' ' '/') | $(echo $t_list | tr ' ' '/') | $(printf '%.2f' "$(echo "$h / $best" | bc -l)") | $gops | $(echo "scale=0; 100 * $gops / $peak" | bc -l)% |"
  echo "$line" >> "$out/speed.md"
  echo "$line"

  # Two threads, W4A8 and W4A4 (one sitting, same machine state).
  # (ROUNDS interleaved rounds again, medians; the INT8 1-thread figure is re-measured here)
  l1="" l2="" l48="" l44="" l44p=""
  r=0
  while [ $r -lt "$ROUNDS" ]; do
    l1="$l1 $(hbench "$out/${m}_int8.hqm" 1 0)"
    l2="$l2 $(hbench "$out/${m}_int8.hqm" 2 0,1)"
    l48="$l48 $(hbench "$out/${m}_w4a8.hqm" 1 0)"
    l44="$l44 $(hbench "$out/${m}_w4a4.hqm" 1 0)"
    l44p="$l44p $(hbench "$out/${m}_w4a4.hqm" 1 0 --int4-packed)"
    r=$((r + 1))
  done
  h1=$(median $l1) h2=$(median $l2) w48=$(median $l48) w44=$(median $l44) w44p=$(median $l44p)
  b8=$("$HAWQ" info "$out/${m}_int8.hqm" --json | tr -d '\n ' | field weight_bytes)
  b4=$("$HAWQ" info "$out/${m}_w4a4.hqm" --json | tr -d '\n ' | field weight_bytes)
  extra="$extra
| $m | $h1 | $h2 | $(printf '%.2f' "$(echo "$h1 / $h2" | bc -l)") | $w48 | $w44 | $w44p | $b8 | $b4 | $(printf '%.3f' "$(echo "$b4 / $b8" | bc -l)") |"

  # Per-layer latency table at 4 and 8 bits, 1 thread (the ILP's input), ROUNDS times: the
  # per-layer comparison below takes each layer's median over them (one run of a layer now and
  # then catches the host's load).
  r=0
  while [ $r -lt "$ROUNDS" ]; do
    taskset -c 0 "$HAWQ" bench "$f" --layers --threads 1 --runs "$RUNS" --warmup "$WARMUP" -o "$out/${m}_latency_r$r.json" > /dev/null
    r=$((r + 1))
  done
  cp "$out/${m}_latency_r0.json" "$out/${m}_latency.json"
done

{
  echo
  echo "Threads and bit widths (hawq, medians over $ROUNDS interleaved rounds; 2 threads on cores 0-1). W4A8"
  echo "and W4A4 keep no layer at 8 bits; 'packed' keeps every 4-bit activation two per byte"
  echo "(--int4-packed). Weight bytes include the int32 biases."
  echo
  echo "| model | INT8 1 thread | INT8 2 threads | scaling | W4A8 1 thread | W4A4 1 thread | W4A4 packed 1 thread | INT8 weight bytes | W4A4 weight bytes | ratio |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  echo "$extra" | sed '/^$/d'
} >> "$out/speed.md"

# Per-layer: 3x3 convs' share of peak at INT8, and INT4 against INT8 on every layer.
$PY - "$out" "$peak" "$ROUNDS" $MODELS >> "$out/speed.md" <<'PY'
import json, statistics, sys
out, peak, rounds, models = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
print(f"\nPer layer, one thread (`hawq bench --layers`, W8A8 and W4A4 with no layer pinned, timed "
      f"interleaved; over {rounds} runs of the table, each layer's median W8A8 time and median "
      f"W4A4 / W8A8 ratio):\n")
print("| model | 3x3 convs: GOP/s (median over layers) | % VNNI peak (median, min..max) | layers where W4A4 is faster | W4A4 / W8A8 worst layer | layers W4A4 > 1.05x W8A8 |")
print("|---|---:|---:|---:|---:|---:|")
for m in models:
    runs = [json.load(open(f"{out}/{m}_latency_r{r}.json")) for r in range(rounds)]
    rates, ratios, faster, slow = [], [], 0, []
    for i, l in enumerate(runs[0]["layers"]):
        ms8 = statistics.median(t["layers"][i]["ms"]["1"]["8"] for t in runs)
        # 4 and 8 bits are timed interleaved within a run: compare them within each run
        r = statistics.median(t["layers"][i]["ms"]["1"]["4"] / t["layers"][i]["ms"]["1"]["8"]
                              for t in runs)
        if l["kernel"] == [3, 3] and l["groups"] == 1:
            rates.append(2 * l["macs"] / (ms8 * 1e6))
        ratios.append((r, l["name"]))
        faster += r < 1
        if r > 1.05:
            slow.append(f"{l['name']} {r:.2f}")
    worst = max(ratios)
    pct = [100 * r / peak for r in rates]
    print(f"| {m} | {statistics.median(rates):.0f} | {statistics.median(pct):.0f}% ({min(pct):.0f}..{max(pct):.0f}%) | "
          f"{faster}/{len(ratios)} | {worst[0]:.2f} ({worst[1]}) | {len(slow)}: {', '.join(slow[:6])} |")
PY

# Peak resident memory: hawq bench on the INT8 ResNet50 against ONNX Runtime on its int8 model.
if echo "$MODELS" | grep -q resnet50; then
  /usr/bin/time -f %M -o "$out/rss_hawq" taskset -c 0 "$HAWQ" bench "$out/resnet50_int8.hqm" --threads 1 --runs 5 --warmup 1 > /dev/null
  HAWQ_BENCH_INPUT=3,224,224 /usr/bin/time -f %M -o "$out/rss_ort" taskset -c 0 node bench/ort_time.js build/anchors/out/resnet50_int8_qdq.onnx --threads 1 --runs 5 --warmup 1 > /dev/null
  {
    echo
    echo "Peak resident memory (GNU time, maximum RSS), ResNet50 INT8, 1 thread, 6 runs: hawq bench"
    echo "$(($(cat "$out/rss_hawq") / 1024)) MiB, ONNX Runtime (node bench/ort_time.js on the QDQ model)"
    echo "$(($(cat "$out/rss_ort") / 1024)) MiB."
  } >> "$out/speed.md"
fi
echo "run_speed.sh: wrote $out/speed.md"
