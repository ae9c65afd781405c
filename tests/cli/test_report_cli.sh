#!/bin/sh
# hawq report: the HTML report of the fixtures in tests/cli/fixtures/report (sens.json from hawq
# sensitivity on the bundled model, bits.json and bits_nosweep.json from hawq allocate --size 0.5
# with and without --sweep, the summary.json of the same hawq quantize run: scripts/demo.sh),
# loaded in headless Chromium: the DOM has one sensitivity bar per layer, one .layer-bits per layer of bits.json, one point per frontier
# allocation and one chosen point, one summary row per row; a screenshot renders; input strings are
# escaped; nothing is fetched. Bad inputs get one-line errors, exit 1, and leave no output behind.
# Chromium is required (scripts/install-deps.sh installs it): without it the test fails.
set -u
HAWQ=${HAWQ:?set HAWQ to the hawq binary}
FIX=tests/cli/fixtures/report
SUM=$FIX/summary.json
SENS=$FIX/sens.json
BITS=$FIX/bits.json
. tests/cli/cli_lib.sh

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
  echo "FAIL: chromium is not installed (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
# Headless, with its own HOME and profile under $tmp (as root and as a user alike; no sandbox, no
# GPU, no shared memory assumptions), killed after 120 s. Its chatter goes to a log.
mkdir -p "$tmp/home"
chrome() {
  HOME="$tmp/home" timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu \
    --disable-dev-shm-usage --no-first-run --no-default-browser-check --hide-scrollbars \
    --user-data-dir="$tmp/profile" "$@" 2>> "$tmp/chromium.log"
}

# count REGEX FILE: how many times REGEX (grep -E) occurs.
count() { grep -oE -- "$1" "$2" | wc -l | tr -d ' '; }
# element FILE START END: the text from START (unique in FILE) to the first END after it, as one
# line, into $tmp/element.
element() { tr '\n' ' ' < "$1" | sed -e "s|^.*$2||" -e "s|$3.*\$||" > "$tmp/element"; }

# What the fixtures hold (hawq's JSON writer puts every key on its own line): one "trace_se" per
# layer of sens.json, one "act_bits" per layer of bits.json plus the top level's, one "bits"
# array per frontier point, one "config" per summary row and one "reused" per stage.
n_sens=$(grep -c '"trace_se":' "$SENS")
n_bits=$(($(grep -c '"act_bits":' "$BITS") - 1))
n_front=$(count '"bits":[[:space:]]*\[' "$BITS")
n_rows=$(grep -c '"config":' "$SUM")
n_stages=$(grep -c '"reused":' "$SUM")
if ! { [ "$n_sens" -gt 1 ] && [ "$n_bits" -eq "$n_sens" ] && [ "$n_front" -gt 1 ] && [ "$n_rows" -eq 3 ]; }; then
  fail "fixtures: $n_sens sens layers, $n_bits bits layers, $n_front frontier points, $n_rows rows"
fi

# ---- the report of the fixtures, in the browser ----
expect 0 "^wrote $tmp/report.html$" -- "$HAWQ" report --summary "$SUM" --sensitivity "$SENS" --bits "$BITS" -o "$tmp/report.html"
html=$tmp/report.html
# Self-contained: no scripts, stylesheets, images, frames or fonts from anywhere.
if grep -Eiq '<script|<link|<img|<iframe|<object|<embed|@import|url\(|https?://|src=' "$html"; then
  fail "report.html refers to something outside itself: $(grep -Eio '.{30}(<script|<link|<img|<iframe|<object|<embed|@import|url\(|https?://|src=).{30}' "$html" | head -3)"
fi

chrome --dump-dom "file://$html" > "$tmp/dom.html" || fail "chromium --dump-dom exited $? ($(tail -3 "$tmp/chromium.log"))"
grep -q '<table id="summary"' "$tmp/dom.html" || fail "chromium's DOM has no table#summary: $(head -c 300 "$tmp/dom.html")"

element "$tmp/dom.html" '<svg id="sensitivity"' '</svg>'
bars=$(count '<rect class="bar[ "]' "$tmp/element")
[ "$bars" -eq "$n_sens" ] || fail "svg#sensitivity has $bars rect.bar, sens.json has $n_sens layers"
errs=$(count '<path class="err"' "$tmp/element")
[ "$errs" -eq "$n_sens" ] || fail "svg#sensitivity has $errs error bars, expected $n_sens"
grep -q 'layer3\.0\.downsample\.0</text>' "$tmp/element" || fail "svg#sensitivity: no label for layer3.0.downsample.0"

lb=$(count 'class="layer-bits"' "$tmp/dom.html")
[ "$lb" -eq "$n_bits" ] || fail "$lb .layer-bits elements, bits.json has $n_bits layers"

element "$tmp/dom.html" '<svg id="frontier"' '</svg>'
pts=$(count '<circle class="frontier-point"' "$tmp/element")
[ "$pts" -eq "$n_front" ] || fail "svg#frontier has $pts circle.frontier-point, bits.json's frontier has $n_front"
chosen=$(count 'class="chosen-point"' "$tmp/dom.html")
[ "$chosen" -eq 1 ] || fail "$chosen .chosen-point elements, expected 1"
grep -q 'id="frontier-none"' "$tmp/dom.html" && fail "a frontier and the no-frontier note"

element "$tmp/dom.html" '<table id="summary"' '</tbody>'
sed 's|^.*<tbody>||' "$tmp/element" > "$tmp/tbody"
rows=$(count '<tr[ >]' "$tmp/tbody")
[ "$rows" -eq "$n_rows" ] || fail "table#summary has $rows body rows, summary.json has $n_rows"
for cfg in fp32 int8 mixed; do
  grep -q "class=\"cfgname\">$cfg</span>" "$tmp/tbody" || fail "table#summary: no row '$cfg'"
done
ft=$(sed -n 's/.*"finetune_seconds":[[:space:]]*\([0-9.]*\).*/\1/p' "$SUM" | head -1 | awk '{printf "%.1f", $1}')
grep -q ">$ft" "$tmp/tbody" || fail "table#summary: no fine-tuning time ($ft s)"
element "$tmp/dom.html" '<table id="stages"' '</tbody>'
sed 's|^.*<tbody>||' "$tmp/element" > "$tmp/tbody"
rows=$(count '<tr[ >]' "$tmp/tbody")
[ "$rows" -eq "$n_stages" ] || fail "table#stages has $rows body rows, summary.json has $n_stages stages"

# A screenshot at the page's width: a PNG of 1000 pixels' width, far from blank (a blank page of
# this size is about 12 KB).
chrome --window-size=1000,2400 --screenshot="$tmp/report.png" "file://$html" > /dev/null ||
  fail "chromium --screenshot exited $? ($(tail -3 "$tmp/chromium.log"))"
if [ -s "$tmp/report.png" ]; then
  sig=$(od -An -tx1 -N8 "$tmp/report.png" | tr -d ' \n')
  width=$(od -An -tu1 -j16 -N4 "$tmp/report.png" | awk '{print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4}')
  bytes=$(wc -c < "$tmp/report.png" | tr -d ' ')
  [ "$sig" = 89504e470d0a1a0a ] || fail "report.png is not a PNG ($sig)"
  [ "$width" -eq 1000 ] || fail "report.png is $width pixels wide, expected 1000"
  [ "$bytes" -gt 100000 ] || fail "report.png has only $bytes bytes: a blank page?"
else
  fail "chromium wrote no screenshot"
fi

# ---- no frontier: a note instead of an empty chart ----
expect 0 "^wrote " -- "$HAWQ" report --summary "$SUM" --sensitivity "$SENS" --bits "$FIX/bits_nosweep.json" -o "$tmp/nosweep.html"
chrome --dump-dom "file://$tmp/nosweep.html" > "$tmp/dom2.html" || fail "chromium --dump-dom (no frontier) exited $?"
grep -q 'id="frontier-none"' "$tmp/dom2.html" || fail "no frontier: no note"
grep -q '<svg id="frontier"\|class="frontier-point"\|class="chosen-point"' "$tmp/dom2.html" && fail "no frontier: a frontier chart anyway"
lb=$(count 'class="layer-bits"' "$tmp/dom2.html")
[ "$lb" -eq "$n_bits" ] || fail "no frontier: $lb .layer-bits elements, expected $n_bits"

# ---- strings from the inputs are escaped: a layer and a model named like markup ----
evil='<img src=x>\&<script>'
sed "s|\"layer1\.0\.conv1\"|\"$evil\"|g" "$SENS" > "$tmp/sens_evil.json"
sed "s|\"layer1\.0\.conv1\"|\"$evil\"|g" "$BITS" > "$tmp/bits_evil.json"
sed 's|"model":[[:space:]]*"models/fmnist_resnet20.onnx"|"model": "m\\"<b>q</b>.onnx"|' "$SUM" > "$tmp/sum_evil.json"
expect 0 "^wrote " -- "$HAWQ" report --summary "$tmp/sum_evil.json" --sensitivity "$tmp/sens_evil.json" --bits "$tmp/bits_evil.json" -o "$tmp/evil.html"
if grep -Eq '<img|<script|<b>q' "$tmp/evil.html"; then
  fail "an input string reached the page as markup: $(grep -Eo '.{20}(<img|<script|<b>q).{20}' "$tmp/evil.html" | head -2)"
fi
chrome --dump-dom "file://$tmp/evil.html" > "$tmp/dom3.html" || fail "chromium --dump-dom (escaping) exited $?"
grep -Eq '<img|<script|<b>q' "$tmp/dom3.html" && fail "the browser found markup from an input string"
shown=$(count '&lt;img src=x&gt;&amp;&lt;script&gt;' "$tmp/dom3.html")
[ "$shown" -ge 3 ] || fail "the escaped layer name is shown $shown times, expected the bar label, its tooltip and the bits row"
grep -q 'm"&lt;b&gt;q&lt;/b&gt;.onnx' "$tmp/dom3.html" || fail "the escaped model name is not shown"
element "$tmp/dom3.html" '<svg id="sensitivity"' '</svg>'
bars=$(count '<rect class="bar[ "]' "$tmp/element")
[ "$bars" -eq "$n_sens" ] || fail "escaping: $bars bars, expected $n_sens"

# ---- unknown values and extra keys are fine; present fields of the wrong type are not ----
cat > "$tmp/sum_min.json" << 'EOF'
{"format": "hawq-quantize-summary", "version": 1, "model": "models/fmnist_resnet20.onnx",
 "data": null, "budgets": {}, "extra": {"a": [1, "b"]},
 "rows": [{"config": "fp32", "top1": null, "top1_correct": null, "images": null,
           "size_bytes": null, "bops": null, "latency_ms": null, "latency_threads": null,
           "note": "not read"}]}
EOF
expect 0 "^wrote " -- "$HAWQ" report --summary "$tmp/sum_min.json" --sensitivity "$SENS" --bits "$BITS" -o "$tmp/min.html"
[ "$(count 'class="summary-row"' "$tmp/min.html")" -eq 1 ] || fail "a summary of one row: not one summary row"
grep -q 'The summary has no stage timings' "$tmp/min.html" || fail "a summary without stages: no note"

head -c 400 "$SUM" > "$tmp/trunc.json"
sed '0,/"top1":[[:space:]]*\([0-9.]*\)/s//"top1": "\1"/' "$SUM" > "$tmp/top1_string.json"
sed '0,/"top1_correct":[[:space:]]*\([0-9]*\)/s//"top1_correct": \1.5/' "$SUM" > "$tmp/correct_frac.json"
sed 's|"bit_choices":[[:space:]]*\[4, 8\]|"bit_choices": "4,8"|' "$SUM" > "$tmp/bitchoices.json"
sed '0,/"params":[[:space:]]*144/s//"params": "144"/' "$SENS" > "$tmp/sens_params.json"
sed 's|"act_bits":\([[:space:]]*\)4|"act_bits":\1"4"|' "$BITS" > "$tmp/bits_act.json"
sed 's|"objective":|"objective_renamed":|' "$BITS" > "$tmp/bits_noobj.json"
printf '[1, 2]' > "$tmp/array.json"
OUT=$tmp/bad.html
expect 1 "nosuch.json: cannot open" -- "$HAWQ" report --summary "$tmp/nosuch.json" --sensitivity "$SENS" --bits "$BITS" -o "$OUT"
expect 1 "nosuch.json: cannot open" -- "$HAWQ" report --summary "$SUM" --sensitivity "$SENS" --bits "$tmp/nosuch.json" -o "$OUT"
expect 1 "trunc.json: not valid JSON: syntax error at line [0-9]+, column [0-9]+" -- "$HAWQ" report --summary "$tmp/trunc.json" --sensitivity "$SENS" --bits "$BITS" -o "$OUT"
expect 1 "array.json: expected a JSON object at the top level, got an array" -- "$HAWQ" report --summary "$SUM" --sensitivity "$tmp/array.json" --bits "$BITS" -o "$OUT"
expect 1 "top1_string.json: field 'rows\[0\]\.top1': expected a number >= 0 or null, got a string" -- "$HAWQ" report --summary "$tmp/top1_string.json" --sensitivity "$SENS" --bits "$BITS" -o "$OUT"
expect 1 "correct_frac.json: field 'rows\[0\]\.top1_correct': expected an integer >= 0 or null, got 9420.5" -- "$HAWQ" report --summary "$tmp/correct_frac.json" --sensitivity "$SENS" --bits "$BITS" -o "$OUT"
expect 1 "bitchoices.json: field 'bit_choices': expected an array or null, got a string" -- "$HAWQ" report --summary "$tmp/bitchoices.json" --sensitivity "$SENS" --bits "$BITS" -o "$OUT"
expect 1 "sens_params.json: field 'layers\[0\]\.params': expected an integer >= 1, got a string" -- "$HAWQ" report --summary "$SUM" --sensitivity "$tmp/sens_params.json" --bits "$BITS" -o "$OUT"
expect 1 "bits_act.json: field 'layers\.layer3\.0\.conv2\.act_bits': expected an integer from 2 to 8, got a string" -- "$HAWQ" report --summary "$SUM" --sensitivity "$SENS" --bits "$tmp/bits_act.json" -o "$OUT"
expect 1 "bits_noobj.json: field 'ilp\.objective': expected a finite number, got nothing" -- "$HAWQ" report --summary "$SUM" --sensitivity "$SENS" --bits "$tmp/bits_noobj.json" -o "$OUT"
expect 1 "sens.json: field 'format': expected \"hawq-quantize-summary\", got \"hawq-sensitivity\"" -- "$HAWQ" report --summary "$SENS" --sensitivity "$SENS" --bits "$BITS" -o "$OUT"
expect 1 "summary.json: field 'format': expected \"hawq-sensitivity\", got \"hawq-quantize-summary\"" -- "$HAWQ" report --summary "$SUM" --sensitivity "$SUM" --bits "$BITS" -o "$OUT"
expect 1 "nodir/r.html: cannot write" -- "$HAWQ" report --summary "$SUM" --sensitivity "$SENS" --bits "$BITS" -o "$tmp/nodir/r.html"
expect 1 "--bits BITS.json is required" -- "$HAWQ" report --summary "$SUM" --sensitivity "$SENS" -o "$OUT"
expect 1 "-o REPORT.html is required" -- "$HAWQ" report --summary "$SUM" --sensitivity "$SENS" --bits "$BITS"
expect 1 "unknown option '--sweep'" -- "$HAWQ" report --sweep --summary "$SUM" --sensitivity "$SENS" --bits "$BITS" -o "$OUT"
expect 1 "unexpected argument 'extra'" -- "$HAWQ" report extra --summary "$SUM" --sensitivity "$SENS" --bits "$BITS" -o "$OUT"
[ -e "$OUT" ] && fail "a failed report left $OUT behind"
# A failed run leaves an existing report as it was.
cp "$html" "$tmp/keep.html"
expect 1 "top1_string.json: field" -- "$HAWQ" report --summary "$tmp/top1_string.json" --sensitivity "$SENS" --bits "$BITS" -o "$tmp/keep.html"
cmp -s "$html" "$tmp/keep.html" || fail "a failed report changed an existing output file"
ls "$tmp" | grep -q '\.tmp\.' && fail "a temporary output file was left behind"
expect 0 "usage: hawq report --summary SUMMARY.json" -- "$HAWQ" report --help

[ "$fails" -eq 0 ] || exit 1
echo "test_report_cli: ok"
