#!/bin/sh
# Training throughput against PyTorch in the same run: forward + backward + SGD step (momentum,
# Nesterov, weight decay) on a fixed random batch, no data loading, for the same architecture
# (hawq's arch.c and bench/train_torch.py build the same graph), batch and thread count.
# hawq: bench_train; PyTorch 1.13 (Debian python3-torch), default NCHW and channels_last (the
# faster is the anchor). ROUNDS rounds, engines interleaved, median step time per round; the
# ratio is of the medians over rounds. One thread pinned to core 0, two to cores 0-1.
# Writes build/bench/train.md.
set -eu
cd "$(dirname "$0")/.."
STEPS=${STEPS:-30}
ROUNDS=${ROUNDS:-3}
ARCHS=${ARCHS:-resnet20}
BATCH=${BATCH:-128}
THREADS=${THREADS:-"2 1"}
out=build/bench
mkdir -p "$out"
[ -x build/release/bench/bench_train ] || ./scripts/build.sh release > /dev/null
/usr/bin/python3 -c 'import torch' 2> /dev/null || {
  echo "run_train.sh: needs Debian's python3-torch (apt-get install python3-torch)" >&2
  exit 1
}

. bench/common.sh

{
  echo "# Training throughput ($(date -u +%Y-%m-%d), $(cpu_name))"
  echo
  echo "Images/s of forward + backward + SGD step, batch $BATCH, 28x28x1 inputs, 10 classes; median of"
  echo "$STEPS steps per round, $ROUNDS rounds interleaved; ratio of the medians over rounds."
  echo
  echo "| arch | threads | hawq img/s (rounds) | PyTorch NCHW img/s | PyTorch channels_last img/s | hawq / best PyTorch |"
  echo "|---|---:|---:|---:|---:|---:|"
} > "$out/train.md"

for a in $ARCHS; do
  for t in $THREADS; do
    cpus=0
    [ "$t" = 2 ] && cpus=0,1
    h_list="" p_list="" c_list=""
    r=0
    while [ $r -lt "$ROUNDS" ]; do
      h=$(OMP_NUM_THREADS=$t taskset -c $cpus build/release/bench/bench_train --arch "$a" \
            --batch "$BATCH" --threads "$t" --steps "$STEPS" | field images_per_s)
      p=$(taskset -c $cpus /usr/bin/python3 bench/train_torch.py --arch "$a" --batch "$BATCH" \
            --threads "$t" --steps "$STEPS" | field images_per_s)
      c=$(taskset -c $cpus /usr/bin/python3 bench/train_torch.py --arch "$a" --batch "$BATCH" \
            --threads "$t" --steps "$STEPS" --channels-last | field images_per_s)
      h_list="$h_list $(printf %.0f "$h")"
      p_list="$p_list $(printf %.0f "$p")"
      c_list="$c_list $(printf %.0f "$c")"
      r=$((r + 1))
    done
    hm=$(median $h_list) pm=$(median $p_list) cm=$(median $c_list)
    best=$pm
    [ "$(echo "$cm > $pm" | bc -l)" = 1 ] && best=$cm
    ratio=$(echo "scale=2; $hm / $best" | bc -l)
    line="| $a | $t | $(echo $h_list | tr ' ' '/') | $(echo $p_list | tr ' ' '/') | $(echo $c_list | tr ' ' '/') | $ratio |"
    echo "$line" >> "$out/train.md"
    echo "$line"
  done
done
