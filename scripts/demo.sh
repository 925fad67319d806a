#!/usr/bin/env bash
# The seed's sections 2.1 and 2.2 on three lab hosts: swarma (192.168.33.10,
# plus 10.0.2.15 on eth0 like a VirtualBox VM), swarmb (.11) and moby (.1).
# Installs dependencies, builds, brings the hosts up, walks the steps with the
# stock docker CLI (bin/shoal if docker is absent) printed as a transcript,
# then tears the lab down.
#   scripts/demo.sh [--keep]     --keep leaves the hosts running
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

keep=0
[ "${1:-}" = --keep ] && keep=1

./scripts/deps.sh
make -j"$(nproc)" all >/dev/null

if [ -x "${DOCKER:-/usr/local/bin/docker}" ]; then
  cli=${DOCKER:-/usr/local/bin/docker}; cli_name=docker
elif command -v docker >/dev/null; then
  cli=$(command -v docker); cli_name=docker
else
  cli=$root/bin/shoal; cli_name=shoal
fi
export DOCKER_CLI_HINTS=false
unset DOCKER_HOST DOCKER_CONTEXT

export SHOAL_LAB_DIR=${SHOAL_LAB_DIR:-/tmp/shoal-demo}
lab=$root/lab/lab

teardown() { [ "$keep" -eq 1 ] || "$lab" down; }
trap teardown EXIT

"$lab" down
"$lab" up swarma=192.168.33.10,10.0.2.15 swarmb=192.168.33.11 moby=192.168.33.1
for h in swarma swarmb moby; do "$lab" start "$h"; done

bold=$'\e[1m' off=$'\e[0m'
[ -t 1 ] || { bold=""; off=""; }

# on HOST [--fail] ARGS...: prints "HOST$ docker ARGS" and runs it against
# that host's shoald; --fail marks a step that is expected to fail.
on() {
  local h=$1 expect_fail=0 rc=0; shift
  [ "$1" = --fail ] && { expect_fail=1; shift; }
  printf '\n%s%s$ %s %s%s\n' "$bold" "$h" "$cli_name" "$*" "$off"
  "$cli" -H "unix://$("$lab" sock "$h")" "$@" 2>&1 || rc=$?
  if [ "$expect_fail" -eq 1 ] && [ "$rc" -eq 0 ]; then
    echo "demo: that step was expected to fail" >&2; exit 1
  fi
  if [ "$expect_fail" -eq 0 ] && [ "$rc" -ne 0 ]; then
    echo "demo: step failed (exit $rc); shoald log of $h:" >&2
    "$lab" logs "$h" | tail -n 30 >&2
    exit 1
  fi
}

quiet() { "$cli" -H "unix://$("$lab" sock "$1")" "${@:2}"; }

# Waits (silently) until the manager lists N nodes, all Ready.
wait_ready() {
  local n=$1 _
  for _ in $(seq 60); do
    out=$(quiet swarma node ls --format '{{.Status}}' 2>/dev/null || true)
    [ "$(grep -c '^Ready$' <<<"$out")" -eq "$n" ] && return 0
    sleep 0.5
  done
  echo "demo: the manager does not list $n Ready nodes" >&2; exit 1
}

echo "Three hosts, one shoald each; '$cli_name' talks to each host's shoald"
echo "through -H unix://$SHOAL_LAB_DIR/<host>/shoal.sock (left out below)."

echo; echo "== 2.1 Choose a manager node and activate SWARM"
on swarma --fail swarm init
on swarma swarm init --advertise-addr 192.168.33.10
on swarma node ls
on swarma info
on swarma swarm join-token worker

echo; echo "== 2.2 Connect SWARM Worker nodes"
token=$(quiet swarma swarm join-token -q worker)
on swarmb swarm join --token "$token" 192.168.33.10:2377
wait_ready 2
on swarma node ls
on moby swarm join --token "$token" 192.168.33.10:2377
wait_ready 3
on swarma node ls

echo
if [ "$keep" -eq 1 ]; then
  echo "The hosts keep running. Try:"
  echo "  $cli_name -H unix://$("$lab" sock swarma) node ls"
  echo "  SHOAL_LAB_DIR=$SHOAL_LAB_DIR lab/lab exec swarmb ip addr"
  echo "Tear down with: SHOAL_LAB_DIR=$SHOAL_LAB_DIR lab/lab down"
else
  echo "Done; tearing the lab down."
fi
