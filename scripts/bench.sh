#!/usr/bin/env bash
# Prints shoald figures on a two-host lab: binary sizes, idle RSS of a manager
# and a worker, GET /info and GET /nodes latency over the unix socket, node
# update (raft write) latency, worker join time; then, on a lab of five
# hosts, the HA figures: failover time (leader SIGKILL to the first accepted
# write) over 5 rounds with 3 managers, write latency with 3 and 5 managers.
# Builds nothing (make bench builds first). Its own labs in $SHOAL_BENCH_DIR
# (default /tmp/shoal-bench) and $SHOAL_BENCH_DIR-ha, torn down on exit.
# The measuring is scripts/bench.py; every loop there has a count and a
# wall-clock cap, and each part a cap of BENCH_TIMEOUT s (HA: BENCH_HA_TIMEOUT).
#   scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

for b in bin/shoald bin/shoal; do
  [ -x "$b" ] || { echo "bench: $b missing (run make bench, which builds it)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root for the lab's network namespaces" >&2; exit 1; }

dir=${SHOAL_BENCH_DIR:-/tmp/shoal-bench}
ha_dir=$dir-ha
ha_hosts=(benchm1=192.168.33.10 benchm2=192.168.33.11 benchm3=192.168.33.12
          benchm4=192.168.33.13 benchm5=192.168.33.14)
lab=$root/lab/lab
mgr=benchmgr mgr_ip=192.168.33.10
wkr=benchwkr wkr_ip=192.168.33.11
export SHOALD=$root/bin/shoald

teardown() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    [ "$rc" -eq 124 ] && echo "bench: timed out (BENCH_TIMEOUT=${BENCH_TIMEOUT:-150}s)" >&2
    echo "bench: FAILED (exit $rc)" >&2
    for h in "$mgr" "$wkr"; do
      echo "--- shoald log of $h (last 30 lines) ---" >&2
      tail -n 30 "$dir/$h/shoald.log" 2>/dev/null >&2 || true
    done
    for hl in "${ha_hosts[@]}"; do
      [ -f "$ha_dir/${hl%%=*}/shoald.log" ] || continue
      echo "--- shoald log of ${hl%%=*} (last 30 lines) ---" >&2
      tail -n 30 "$ha_dir/${hl%%=*}/shoald.log" >&2 || true
    done
  fi
  timeout 60 "$lab" --dir "$dir" down >/dev/null 2>&1 || echo "bench: lab down failed ($dir)" >&2
  timeout 60 "$lab" --dir "$ha_dir" down >/dev/null 2>&1 || echo "bench: lab down failed ($ha_dir)" >&2
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

timeout 60 "$lab" --dir "$dir" down >/dev/null 2>&1 || true
timeout 60 "$lab" --dir "$dir" up "$mgr=$mgr_ip" "$wkr=$wkr_ip" >/dev/null
timeout 30 "$lab" --dir "$dir" start "$mgr" >/dev/null
timeout 30 "$lab" --dir "$dir" start "$wkr" >/dev/null

timeout -k 5 "${BENCH_TIMEOUT:-150}" python3 scripts/bench.py --lab "$lab" --dir "$dir" \
  --manager "$mgr=$mgr_ip" --worker "$wkr=$wkr_ip" --root "$root"
timeout 60 "$lab" --dir "$dir" down >/dev/null 2>&1 || true

# Highly-available managers: five hosts, shoald on each.
timeout 60 "$lab" --dir "$ha_dir" down >/dev/null 2>&1 || true
timeout 60 "$lab" --dir "$ha_dir" up "${ha_hosts[@]}" >/dev/null
for hl in "${ha_hosts[@]}"; do
  timeout 30 "$lab" --dir "$ha_dir" start "${hl%%=*}" >/dev/null
done
timeout -k 5 "${BENCH_HA_TIMEOUT:-150}" python3 scripts/bench.py --ha --lab "$lab" --dir "$ha_dir" \
  --managers "$(IFS=,; echo "${ha_hosts[*]}")"
echo "bench: done"
