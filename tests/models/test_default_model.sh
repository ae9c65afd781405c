#!/bin/sh
# The bundled default model (models/fmnist_resnet20.onnx, trained by `hawq train`): under 0.5 M
# parameters, and hawq's float engine gives on the whole Fashion-MNIST test set exactly the
# top-1 that the training run recorded in the model (metadata hawq.train.summary), >= 93.0 %.
# Run by ctest with HAWQ set to the binary; run from the repository root.
set -u
HAWQ=${HAWQ:?set HAWQ to the hawq binary}
MODEL=models/fmnist_resnet20.onnx
[ -d /usr/share/datasets/fashion-mnist ] || { echo "skip: no fashion-mnist"; exit 77; }
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

recorded=$("$HAWQ" meta "$MODEL" | sed -n 's/^hawq.train.summary = .*"test_top1":\([0-9.]*\).*/\1/p')
images=$("$HAWQ" meta "$MODEL" | sed -n 's/^hawq.train.summary = .*"test_images":\([0-9]*\).*/\1/p')
[ -n "$recorded" ] && [ "$images" = 10000 ] \
  || fail "$MODEL: no full-test-set accuracy in hawq.train.summary ('$recorded' on '$images' images)"
got=$("$HAWQ" eval "$MODEL" --data fashion-mnist --json 2> /dev/null | sed -n 's/.*"top1":[[:space:]]*\([0-9.]*\).*/\1/p')
[ "$got" = "$recorded" ] || fail "$MODEL: eval gives top-1 '$got', training recorded '$recorded'"
awk -v a="$got" 'BEGIN { exit !(a >= 93.0) }' || fail "$MODEL: top-1 '$got' is under 93.0"
# The model-wide count is the one "params" line indented by a single tab (layers' are deeper).
params=$("$HAWQ" info "$MODEL" --json | sed -n 's/^	"params":[[:space:]]*\([0-9]*\).*/\1/p')
[ -n "$params" ] && [ "$params" -lt 500000 ] || fail "$MODEL: '$params' parameters, expected under 500000"

[ "$fails" -eq 0 ] || exit 1
echo "test_default_model: top-1 $got% on 10000 images (as recorded), $params parameters"
