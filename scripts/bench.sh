#!/usr/bin/env bash
# Prints shoald figures on a two-host lab: binary sizes, idle RSS of a manager
# and a worker, GET /info and GET /nodes latency over the unix socket, node
# update (raft write) latency, worker join time; then, on a lab of five
# hosts, the HA figures: failover time (leader SIGKILL to the first accepted
# write) over 5 rounds with 3 managers, write latency with 3 and 5 managers;
# then, on a lab of three hosts plus a registry host (the test images of
# scripts/test-images.sh, pulled through --registry-mirror), the service
# figures: create to N/N tasks running (crun containers) for N = 1, 10, 50
# on one node and on three, task start latency, shoald RSS with 50 tasks and
# the RSS of one conmon.
# Builds nothing (make bench builds first; test images are built if stale).
# Its own labs in $SHOAL_BENCH_DIR (default /tmp/shoal-bench),
# $SHOAL_BENCH_DIR-ha and $SHOAL_BENCH_DIR-svc, torn down on exit.
# The measuring is scripts/bench.py; every loop there has a count and a
# wall-clock cap, and each part a cap of BENCH_TIMEOUT s (HA: BENCH_HA_TIMEOUT,
# services: BENCH_SVC_TIMEOUT).
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
svc_dir=$dir-svc
svc_hosts=(benchs1=192.168.33.10 benchs2=192.168.33.11 benchs3=192.168.33.12)
svc_reg=registry=192.168.33.5 svc_reg_addr=192.168.33.5:5000
images=${SHOAL_IMAGES_DIR:-$root/build/images}
lab=$root/lab/lab
mgr=benchmgr mgr_ip=192.168.33.10
wkr=benchwkr wkr_ip=192.168.33.11
export SHOALD=$root/bin/shoald

teardown() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    [ "$rc" -eq 124 ] && echo "bench: timed out (BENCH_TIMEOUT=${BENCH_TIMEOUT:-150}s," \
      "BENCH_HA_TIMEOUT=${BENCH_HA_TIMEOUT:-150}s, BENCH_SVC_TIMEOUT=${BENCH_SVC_TIMEOUT:-240}s)" >&2
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
    for hl in "${svc_hosts[@]}"; do
      [ -f "$svc_dir/${hl%%=*}/shoald.log" ] || continue
      echo "--- shoald log of ${hl%%=*} (last 30 lines) ---" >&2
      tail -n 30 "$svc_dir/${hl%%=*}/shoald.log" >&2 || true
    done
  fi
  timeout 60 "$lab" --dir "$dir" down >/dev/null 2>&1 || echo "bench: lab down failed ($dir)" >&2
  timeout 60 "$lab" --dir "$ha_dir" down >/dev/null 2>&1 || echo "bench: lab down failed ($ha_dir)" >&2
  svc_down || echo "bench: lab down failed ($svc_dir)" >&2
  exit "$rc"
}
# The registry by its PID, then the lab (which ends the task containers:
# every process whose mounts point into the lab). Fails if one survived.
svc_down() {
  [ -f "$svc_dir/registry/registry/registry.pid" ] &&
    timeout 10 "$root/scripts/registry.sh" stop "$svc_dir/registry/registry" >/dev/null 2>&1
  timeout 60 "$lab" --dir "$svc_dir" down >/dev/null 2>&1 || return 1
  local p left=""
  for p in /proc/[0-9]*; do
    grep -qF "$svc_dir/" "$p/mountinfo" 2>/dev/null && left="$left ${p#/proc/}"
  done
  [ -z "$left" ] || { echo "bench: processes still mounting $svc_dir:$left" >&2; return 1; }
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
timeout 60 "$lab" --dir "$ha_dir" down >/dev/null 2>&1 || true

# Services as crun containers: three hosts and a registry host; shoald
# pulls busybox through the registry (--registry-mirror). bench.py starts
# the workers' shoald itself (after the one-node rounds), with SHOALD_ARGS.
missing=""
for tool in docker-registry skopeo umoci crun conmon; do
  command -v "$tool" >/dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  echo "bench: services section skipped:$missing missing (scripts/deps.sh)"
else
  timeout 600 scripts/test-images.sh "$images" >/dev/null
  svc_down || true
  timeout 60 "$lab" --dir "$svc_dir" up "${svc_hosts[@]}" "$svc_reg" >/dev/null
  timeout 30 "$lab" --dir "$svc_dir" exec "${svc_reg%%=*}" "$root/scripts/registry.sh" start \
    "$svc_dir/registry/registry" "$svc_reg_addr" >/dev/null
  timeout 120 "$lab" --dir "$svc_dir" exec "${svc_reg%%=*}" "$root/scripts/registry.sh" push \
    "$svc_reg_addr" "$images" >/dev/null
  export SHOALD_ARGS="--registry-mirror http://$svc_reg_addr"
  timeout 30 "$lab" --dir "$svc_dir" start "${svc_hosts[0]%%=*}" >/dev/null
  timeout -k 5 "${BENCH_SVC_TIMEOUT:-240}" python3 scripts/bench.py --services --lab "$lab" \
    --dir "$svc_dir" --hosts "$(IFS=,; echo "${svc_hosts[*]}")"
  unset SHOALD_ARGS
  svc_down
fi
echo "bench: done"
