#!/bin/sh
# hawq train from the command line: usage errors, a short run whose ONNX loads back into hawq
# with the logged accuracy, a run stopped and resumed from its checkpoint that writes exactly
# the bytes of the uninterrupted run, and fine-tuning an imported model (--init).
# Run by ctest with HAWQ set to the binary; run from the repository root.
set -u
HAWQ=${HAWQ:?set HAWQ to the hawq binary}
[ -d /usr/share/datasets/fashion-mnist ] || { echo "skip: no fashion-mnist"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# expect_error PATTERN -- command...: exit code 1 and one stderr line matching PATTERN.
expect_error() {
  pattern=$1; shift 2
  "$@" > "$tmp/out" 2> "$tmp/err"
  rc=$?
  [ "$rc" -eq 1 ] || { fail "'$*' exited $rc, expected 1: $(head -c 300 "$tmp/err")"; return; }
  lines=$(wc -l < "$tmp/err")
  [ "$lines" -eq 1 ] || fail "'$*': $lines lines on stderr, expected one: $(cat "$tmp/err")"
  grep -Eq -- "$pattern" "$tmp/err" || fail "'$*': stderr '$(cat "$tmp/err")' does not match '$pattern'"
}

D="--data fashion-mnist"
expect_error "exactly one of --arch, --init and --resume" -- "$HAWQ" train $D -o "$tmp/x.onnx"
expect_error "exactly one of" -- "$HAWQ" train --arch resnet8 --init tests/models/torch/fmnist_resnet14.onnx $D -o "$tmp/x.onnx"
expect_error "--data is required" -- "$HAWQ" train --arch resnet8 -o "$tmp/x.onnx"
expect_error "-o OUT.onnx is required" -- "$HAWQ" train --arch resnet8 $D
expect_error "unknown architecture 'resnet9'" -- "$HAWQ" train --arch resnet9 $D -o "$tmp/x.onnx"
expect_error "'--lr' expects a finite number" -- "$HAWQ" train --arch resnet8 $D --lr fast -o "$tmp/x.onnx"
expect_error "'--lr' is 500" -- "$HAWQ" train --arch resnet8 $D --lr 500 -o "$tmp/x.onnx"
expect_error "--optimizer must be sgd or adamw" -- "$HAWQ" train --arch resnet8 $D --optimizer rmsprop -o "$tmp/x.onnx"
expect_error "--schedule step needs --step-epochs" -- "$HAWQ" train --arch resnet8 $D --schedule step -o "$tmp/x.onnx"
expect_error "--lr cannot be combined with --resume" -- "$HAWQ" train --resume tests/models/torch/fmnist_resnet14.onnx $D --lr 0.1 -o "$tmp/x.onnx"
expect_error "hawq.train.state' is missing" -- "$HAWQ" train --resume tests/models/torch/fmnist_resnet14.onnx $D -o "$tmp/x.onnx"
expect_error "cannot open" -- "$HAWQ" train --init "$tmp/missing.onnx" $D -o "$tmp/x.onnx"
[ -e "$tmp/x.onnx" ] && fail "a failed run left $tmp/x.onnx behind"

# A short run: 4 steps of 64 per epoch, 2 epochs; then the same run stopped after epoch 1 and
# resumed from its checkpoint. Same threads, same seed: the files must be identical.
RUN="--arch resnet8 $D --limit 256 --batch 64 --epochs 2 --eval-limit 200 --seed 3 --threads 2"
"$HAWQ" train $RUN -o "$tmp/full.onnx" --json > "$tmp/full.json" 2> "$tmp/full.log" \
  || fail "short training run failed: $(tail -3 "$tmp/full.log")"
grep -q '"test_top1"' "$tmp/full.json" || fail "train --json has no test_top1: $(cat "$tmp/full.json")"
grep -q "epoch 2/2  loss" "$tmp/full.log" || fail "no per-epoch summary line in the log"
"$HAWQ" train $RUN --stop-after 1 --checkpoint "$tmp/ckpt.onnx" -o "$tmp/half.onnx" > /dev/null 2>&1 \
  || fail "stopped run failed"
"$HAWQ" train --resume "$tmp/ckpt.onnx" $D --threads 2 --eval-limit 200 -o "$tmp/resumed.onnx" > /dev/null 2> "$tmp/resume.log" \
  || fail "resumed run failed: $(tail -3 "$tmp/resume.log")"
cmp -s "$tmp/full.onnx" "$tmp/resumed.onnx" || fail "stop + resume did not reproduce the uninterrupted run"
grep -q "epoch 1/2" "$tmp/resume.log" && fail "the resumed run repeated epoch 1"

# The written model evaluates to the accuracy the run reported.
acc=$(sed -n 's/.*"test_top1":[[:space:]]*\([0-9.]*\).*/\1/p' "$tmp/full.json")
"$HAWQ" eval "$tmp/full.onnx" $D --limit 200 --json > "$tmp/eval.json" 2> /dev/null || fail "eval of the trained model failed"
got=$(sed -n 's/.*"top1":[[:space:]]*\([0-9.]*\).*/\1/p' "$tmp/eval.json")
[ -n "$acc" ] && [ "$acc" = "$got" ] || fail "train reported top-1 '$acc', eval of its output gives '$got'"
"$HAWQ" meta "$tmp/full.onnx" | grep -q "hawq.input.mean" || fail "the trained model has no preprocessing metadata"

# Fine-tuning an imported model keeps it working: one short epoch at a low learning rate.
"$HAWQ" train --init tests/models/torch/fmnist_resnet14.onnx $D --limit 256 --batch 64 --epochs 1 --lr 0.001 \
  --warmup-epochs 0 --eval-limit 500 --threads 2 -o "$tmp/tuned.onnx" --json > "$tmp/tuned.json" 2> "$tmp/tuned.log" \
  || fail "--init fine-tuning failed: $(tail -3 "$tmp/tuned.log")"
tuned=$(sed -n 's/.*"test_top1":[[:space:]]*\([0-9.]*\).*/\1/p' "$tmp/tuned.json")
awk -v a="$tuned" 'BEGIN { exit !(a >= 88) }' || fail "fine-tuned model: test top-1 '$tuned' on 500 images, expected >= 88"

[ "$fails" -eq 0 ] || { echo "test_train: $fails failures" >&2; exit 1; }
echo "test_train: all checks passed"
