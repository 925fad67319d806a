#!/usr/bin/env bash
# Runs every test suite and sums their closing "N passed, M failed[, K skipped]"
# lines: the skips on a line of their own, then "N passed, M failed" last. A suite that ends without such a line, or
# exits non-zero with no failure counted (e.g. a sanitizer report at exit),
# counts as one failure. Full output of each suite: build/test-logs/<suite>.log.
#   scripts/test.sh [SUITE...]    suites: unit unit-asan fuzz-replay fuzz-dns
#     fuzz-swarm fuzz-node fuzz-manifest fuzz-layer fuzz-snapshot fuzz-entry
#     integration
# Expects the binaries built (make test builds them first).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

./scripts/deps.sh || { echo "test: installing dependencies failed"; echo "0 passed, 1 failed"; exit 1; }

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

suites=(unit unit-asan fuzz-replay fuzz-dns fuzz-swarm fuzz-node fuzz-manifest
  fuzz-layer fuzz-snapshot fuzz-entry integration)
[ $# -gt 0 ] && suites=("$@")

suite_cmd() {
  case "$1" in
    unit) echo ./build/rel/unit-tests ;;
    unit-asan) echo ./build/asan/unit-tests ;;
    fuzz-replay) echo ./build/asan/fuzz-replay tests/fuzz/corpus ;;
    fuzz-dns) echo ./build/asan/fuzz-dns-replay tests/fuzz/corpus-dns ;;
    fuzz-swarm | fuzz-node | fuzz-manifest | fuzz-layer | fuzz-snapshot | \
      fuzz-entry)
      echo "./build/asan/$1-replay tests/fuzz/corpus-${1#fuzz-}" ;;
    integration) echo python3 tests/integration/run.py ;;
    *) return 1 ;;
  esac
}

logdir=build/test-logs
mkdir -p "$logdir"
total_p=0 total_f=0 total_s=0 bad=0
report=()
for s in "${suites[@]}"; do
  cmd=$(suite_cmd "$s") || { echo "test: unknown suite '$s'"; exit 2; }
  if [ "$s" = fuzz-replay ] && [ ! -d tests/fuzz/corpus ]; then
    report+=("$(printf '%-13s not run (no tests/fuzz/corpus)' "$s")")
    continue
  fi
  log=$logdir/$s.log
  echo "=== $s: $cmd"
  # shellcheck disable=SC2086  # cmd is a plain word list
  $cmd 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    bad=1; total_f=$((total_f + 1))
    report+=("$(printf '%-13s CRASHED: no summary line (exit %d), counted as 1 failed' "$s" "$rc")")
    continue
  fi
  read -r p f k < <(sed -E 's/^([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?$/\1 \2 \4/' <<<"$line")
  k=${k:-0}
  note=""
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1; note=" (exit $rc after its summary, counted as 1 failed)"
  fi
  [ "$f" -gt 0 ] && bad=1
  total_p=$((total_p + p)); total_f=$((total_f + f)); total_s=$((total_s + k))
  report+=("$(printf '%-13s %s%s' "$s" "$line" "$note")")
done

echo
echo "=== summary"
printf '%s\n' "${report[@]}"
# Skips are reported, never counted as passed; the closing line stays CI's
# "N passed, M failed".
echo "$total_s skipped"
echo "$total_p passed, $total_f failed"
[ "$bad" -eq 0 ] && [ "$total_f" -eq 0 ]
