# Shared by the CLI shell tests (sourced): a scratch directory $tmp removed on exit, a failure
# counter, and expect(). Not a test itself (only tests/*/test_*.sh are).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# expect CODE PATTERN -- command...: exit code CODE; for errors exactly one stderr line (progress
# lines aside) matching PATTERN (grep -E); for success, stdout matching PATTERN.
expect() {
  code=$1; pattern=$2; shift 3
  "$@" > "$tmp/out" 2> "$tmp/err"
  rc=$?
  if [ "$rc" -ne "$code" ]; then
    fail "'$*' exited $rc, expected $code; stderr: $(head -c 300 "$tmp/err")"
    return
  fi
  if [ "$code" -eq 0 ]; then
    grep -Eq -- "$pattern" "$tmp/out" || fail "'$*': stdout '$(head -c 300 "$tmp/out")' does not match '$pattern'"
  else
    lines=$(grep -Evc '^(eval|calibrate): ' "$tmp/err")
    [ "$lines" -eq 1 ] || fail "'$*': $lines lines on stderr, expected one: $(cat "$tmp/err")"
    grep -Eq -- "$pattern" "$tmp/err" || fail "'$*': stderr '$(cat "$tmp/err")' does not match '$pattern'"
  fi
}
