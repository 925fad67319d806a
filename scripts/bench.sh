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
# the RSS of one conmon; then, on a lab of two hosts plus a registry host,
# the network figures: create to 50/50 running on the manager alone with no
# network and with an overlay network, the difference per task, next to the
# time of 10 bare `crun run -d` (the limit); TCP throughput of iperf3 between
# two tasks on the two nodes over VXLAN, next to the same between the two
# hosts' own addresses (the limit), and their ratio; then, on a lab of two
# hosts plus a registry host, the routing mesh figures: a service of two
# nginx replicas published with --publish 8080:80; HTTP req/s and p99 (wrk
# -t1 -c16 -d5s) and TCP connect time (200 sequential curls) through the
# mesh, from the registry host and from the manager itself, next to the
# same from the manager's ingress sandbox straight to each replica's
# ingress address; then the time from SIGKILL of one replica to the last
# failed request of the registry host hitting the mesh every 20 ms; then,
# on a lab of three managers plus a host running bin/shoal-sim, the
# simulator figures at two scales, 100 nodes x 10 services x 1,000
# replicas and 1,000 nodes x 100 x 1,000 (BENCH_SIM_SCALES, N:S:R,...;
# BENCH_SIM_RUN_CAP, default 600 s, caps the wait for all tasks running;
# BENCH_SIM_CLIENTS, default 1, creates the services from that many
# clients at once; BENCH_SIM_PERF=DIR records `perf` profiles of each
# manager and the simulator over the ramp, and of the two managers left
# over the failover, see scripts/bench.py).
# Builds nothing (make bench builds first; test images are built if stale).
# Its own labs in $SHOAL_BENCH_DIR (default /tmp/shoal-bench),
# $SHOAL_BENCH_DIR-ha, $SHOAL_BENCH_DIR-svc, $SHOAL_BENCH_DIR-net and
# $SHOAL_BENCH_DIR-mesh, torn down on exit. The measuring is scripts/bench.py; every loop there has a
# count and a wall-clock cap, and each part a cap of BENCH_TIMEOUT s (HA:
# BENCH_HA_TIMEOUT, services: BENCH_SVC_TIMEOUT, networks: BENCH_NET_TIMEOUT,
# mesh: BENCH_MESH_TIMEOUT, simulator: BENCH_SIM_TIMEOUT a scale).
# BENCH_ONLY=PART[,PART] runs only those parts (base, ha, services, networks,
# mesh, sim), e.g. BENCH_ONLY=mesh make bench.
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
net_dir=$dir-net
net_hosts=(benchn1=192.168.33.10 benchn2=192.168.33.11)
mesh_dir=$dir-mesh
mesh_hosts=(benchx1=192.168.33.10 benchx2=192.168.33.11)
sim_dir=$dir-sim
sim_hosts=(benchq1=192.168.33.10 benchq2=192.168.33.11 benchq3=192.168.33.12)
sim_host=benchsim=192.168.33.20
images=${SHOAL_IMAGES_DIR:-$root/build/images}
lab=$root/lab/lab
mgr=benchmgr mgr_ip=192.168.33.10
wkr=benchwkr wkr_ip=192.168.33.11
export SHOALD=$root/bin/shoald

# BENCH_KEEP_LOGS=DIR: the simulator run's whole logs outlive the lab,
# whether it failed or not (the managers say which passes were long).
keep_sim_logs() {
  [ -n "${BENCH_KEEP_LOGS:-}" ] && [ -d "$sim_dir" ] || return 0
  mkdir -p "$BENCH_KEEP_LOGS"
  for f in "$sim_dir"/benchq*/shoald.log "$sim_dir/shoal-sim.log"; do
    [ -f "$f" ] && cp "$f" "$BENCH_KEEP_LOGS/$(basename "$(dirname "$f")")-$(basename "$f")"
  done
  return 0
}

teardown() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    [ "$rc" -eq 124 ] && echo "bench: timed out (BENCH_TIMEOUT=${BENCH_TIMEOUT:-150}s," \
      "BENCH_HA_TIMEOUT=${BENCH_HA_TIMEOUT:-150}s, BENCH_SVC_TIMEOUT=${BENCH_SVC_TIMEOUT:-320}s," \
      "BENCH_NET_TIMEOUT=${BENCH_NET_TIMEOUT:-200}s, BENCH_MESH_TIMEOUT=${BENCH_MESH_TIMEOUT:-200}s)" >&2
    echo "bench: FAILED (exit $rc)" >&2
    for h in "$mgr" "$wkr"; do
      [ -f "$dir/$h/shoald.log" ] || continue
      echo "--- shoald log of $h (last 30 lines) ---" >&2
      tail -n 30 "$dir/$h/shoald.log" >&2 || true
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
    for hl in "${net_hosts[@]}"; do
      [ -f "$net_dir/${hl%%=*}/shoald.log" ] || continue
      echo "--- shoald log of ${hl%%=*} (last 30 lines) ---" >&2
      tail -n 30 "$net_dir/${hl%%=*}/shoald.log" >&2 || true
    done
    for hl in "${mesh_hosts[@]}"; do
      [ -f "$mesh_dir/${hl%%=*}/shoald.log" ] || continue
      echo "--- shoald log of ${hl%%=*} (last 30 lines) ---" >&2
      tail -n 30 "$mesh_dir/${hl%%=*}/shoald.log" >&2 || true
    done
    for f in "$sim_dir"/benchq*/shoald.log "$sim_dir/shoal-sim.log"; do
      [ -f "$f" ] || continue
      echo "--- $f (last 30 lines) ---" >&2
      tail -n 30 "$f" >&2 || true
    done
  fi
  keep_sim_logs
  timeout 60 "$lab" --dir "$dir" down >/dev/null 2>&1 || echo "bench: lab down failed ($dir)" >&2
  timeout 60 "$lab" --dir "$ha_dir" down >/dev/null 2>&1 || echo "bench: lab down failed ($ha_dir)" >&2
  reg_lab_down "$svc_dir" || echo "bench: lab down failed ($svc_dir)" >&2
  reg_lab_down "$net_dir" || echo "bench: lab down failed ($net_dir)" >&2
  reg_lab_down "$mesh_dir" || echo "bench: lab down failed ($mesh_dir)" >&2
  timeout 60 "$lab" --dir "$sim_dir" down >/dev/null 2>&1 || echo "bench: lab down failed ($sim_dir)" >&2
  exit "$rc"
}
# reg_lab_down DIR: the registry by its PID, then the lab (which ends the
# task containers: every process whose mounts point into the lab). Fails if
# one survived.
reg_lab_down() {
  local d=$1
  [ -f "$d/registry/registry/registry.pid" ] &&
    timeout 10 "$root/scripts/registry.sh" stop "$d/registry/registry" >/dev/null 2>&1
  timeout 60 "$lab" --dir "$d" down >/dev/null 2>&1 || return 1
  local p left=""
  for p in /proc/[0-9]*; do
    grep -qF "$d/" "$p/mountinfo" 2>/dev/null && left="$left ${p#/proc/}"
  done
  [ -z "$left" ] || { echo "bench: processes still mounting $d:$left" >&2; return 1; }
}
# reg_lab_up DIR HOST=IP...: a lab of those hosts plus the registry host
# with the test images, shoald started on the first host only (with
# SHOALD_ARGS, which the caller sets).
reg_lab_up() {
  local d=$1; shift
  reg_lab_down "$d" || true
  timeout 60 "$lab" --dir "$d" up "$@" "$svc_reg" >/dev/null
  timeout 30 "$lab" --dir "$d" exec "${svc_reg%%=*}" "$root/scripts/registry.sh" start \
    "$d/registry/registry" "$svc_reg_addr" >/dev/null
  timeout 120 "$lab" --dir "$d" exec "${svc_reg%%=*}" "$root/scripts/registry.sh" push \
    "$svc_reg_addr" "$images" >/dev/null
  timeout 30 "$lab" --dir "$d" start "${1%%=*}" >/dev/null
}
# want PART: BENCH_ONLY is empty or names PART.
want() { [ -z "${BENCH_ONLY:-}" ] || [[ ",$BENCH_ONLY," == *",$1,"* ]]; }
only=${BENCH_ONLY:-}
for part in ${only//,/ }; do
  case "$part" in
    base|ha|services|networks|mesh|sim) ;;
    *) echo "bench: BENCH_ONLY names no part '$part' (base, ha, services, networks, mesh, sim)" >&2; exit 2 ;;
  esac
done
trap teardown EXIT
trap 'exit 130' INT TERM

if want base; then
  timeout 60 "$lab" --dir "$dir" down >/dev/null 2>&1 || true
  timeout 60 "$lab" --dir "$dir" up "$mgr=$mgr_ip" "$wkr=$wkr_ip" >/dev/null
  timeout 30 "$lab" --dir "$dir" start "$mgr" >/dev/null
  timeout 30 "$lab" --dir "$dir" start "$wkr" >/dev/null
  timeout -k 5 "${BENCH_TIMEOUT:-150}" python3 scripts/bench.py --lab "$lab" --dir "$dir" \
    --manager "$mgr=$mgr_ip" --worker "$wkr=$wkr_ip" --root "$root"
  timeout 60 "$lab" --dir "$dir" down >/dev/null 2>&1 || true
fi

# Highly-available managers: five hosts, shoald on each.
if want ha; then
  timeout 60 "$lab" --dir "$ha_dir" down >/dev/null 2>&1 || true
  timeout 60 "$lab" --dir "$ha_dir" up "${ha_hosts[@]}" >/dev/null
  for hl in "${ha_hosts[@]}"; do
    timeout 30 "$lab" --dir "$ha_dir" start "${hl%%=*}" >/dev/null
  done
  timeout -k 5 "${BENCH_HA_TIMEOUT:-150}" python3 scripts/bench.py --ha --lab "$lab" --dir "$ha_dir" \
    --managers "$(IFS=,; echo "${ha_hosts[*]}")"
  timeout 60 "$lab" --dir "$ha_dir" down >/dev/null 2>&1 || true
fi

# Services and networks run crun containers on hosts that pull busybox
# through the registry host (--registry-mirror). bench.py starts the
# workers' shoald itself (after the one-node rounds), with SHOALD_ARGS.
missing=""
for tool in docker-registry skopeo umoci crun conmon; do
  command -v "$tool" >/dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  for part in services networks mesh; do
    if want "$part"; then echo "bench: $part section skipped:$missing missing (scripts/deps.sh)"; fi
  done
else
  if want services || want networks || want mesh; then
    timeout 600 scripts/test-images.sh "$images" >/dev/null
  fi
  export SHOALD_ARGS="--registry-mirror http://$svc_reg_addr"
  if want services; then
    reg_lab_up "$svc_dir" "${svc_hosts[@]}"
    timeout -k 5 "${BENCH_SVC_TIMEOUT:-320}" python3 scripts/bench.py --services --lab "$lab" --images "$images" \
      --dir "$svc_dir" --hosts "$(IFS=,; echo "${svc_hosts[*]}")"
    reg_lab_down "$svc_dir"
  fi
  # Networks: two hosts; iperf3 is the node's own, run in the tasks'
  # network namespaces (nsenter) and in the hosts'.
  if want networks; then
    if ! command -v iperf3 >/dev/null; then
      echo "bench: networks section skipped: iperf3 missing (scripts/deps.sh)"
    else
      reg_lab_up "$net_dir" "${net_hosts[@]}"
      timeout -k 5 "${BENCH_NET_TIMEOUT:-200}" python3 scripts/bench.py --networks --lab "$lab" \
        --dir "$net_dir" --hosts "$(IFS=,; echo "${net_hosts[*]}")" --images "$images"
      reg_lab_down "$net_dir"
    fi
  fi
  # Routing mesh: two hosts; wrk and curl run on the registry host (outside
  # the swarm), on the manager and in its ingress sandbox (nsenter).
  if want mesh; then
    if ! command -v wrk >/dev/null; then
      echo "bench: mesh section skipped: wrk missing (scripts/deps.sh)"
    else
      reg_lab_up "$mesh_dir" "${mesh_hosts[@]}"
      timeout -k 5 "${BENCH_MESH_TIMEOUT:-200}" python3 scripts/bench.py --mesh --lab "$lab" \
        --dir "$mesh_dir" --hosts "$(IFS=,; echo "${mesh_hosts[*]}")" --client "${svc_reg%%=*}"
      reg_lab_down "$mesh_dir"
    fi
  fi
  unset SHOALD_ARGS
fi
# The cluster simulator: three managers, shoal-sim on a fourth host (no
# containers, no registry). Each scale on a fresh lab; the small one
# first, so a big one that does not finish still leaves figures.
if want sim; then
  [ -x bin/shoal-sim ] || { echo "bench: bin/shoal-sim missing (run make bench)" >&2; exit 1; }
  IFS=, read -r -a scales <<<"${BENCH_SIM_SCALES:-100:10:1000,1000:100:1000}"
  for scale in "${scales[@]}"; do
    IFS=: read -r n s r <<<"$scale"
    timeout 60 "$lab" --dir "$sim_dir" down >/dev/null 2>&1 || true
    timeout 60 "$lab" --dir "$sim_dir" up "${sim_hosts[@]}" "$sim_host" >/dev/null
    for hl in "${sim_hosts[@]}"; do
      timeout 30 "$lab" --dir "$sim_dir" start "${hl%%=*}" >/dev/null
    done
    timeout -k 5 "${BENCH_SIM_TIMEOUT:-1200}" python3 scripts/bench.py --sim --lab "$lab" --dir "$sim_dir" \
      --managers "$(IFS=,; echo "${sim_hosts[*]}")" --simhost "$sim_host" --root "$root" \
      --sim-nodes "$n" --sim-services "$s" --sim-replicas "$r"
    keep_sim_logs
    timeout 60 "$lab" --dir "$sim_dir" down >/dev/null 2>&1 || true
  done
fi
echo "bench: done"
