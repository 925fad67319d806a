#!/usr/bin/env bash
# The seed's sections 2.1, 2.2, 2.3 and 2.5 on three lab hosts: swarma
# (192.168.33.10, plus 10.0.2.15 on eth0 like a VirtualBox VM), swarmb (.11)
# and moby (.1), plus a fourth lab host, registry (.5), running a local
# registry with the test images (built from Debian packages; no internet):
# every shoald uses it as its Docker Hub mirror, so `nginx` means
# library/nginx from there. Installs dependencies, builds, brings the hosts
# up, walks the steps with the stock docker CLI (bin/shoal if docker is
# absent) printed as a transcript, then tears the lab down.
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

registry_addr=192.168.33.5:5000
registry_dir=$SHOAL_LAB_DIR/registry/registry

# Task containers live in namespaces of their own and outlive `lab down`:
# end the ones whose mounts come from this lab (by PID), after the lab.
end_containers() {
  local f pid
  for f in /proc/[0-9]*/mountinfo; do
    pid=${f#/proc/}; pid=${pid%/mountinfo}
    grep -qF "=$SHOAL_LAB_DIR/" "$f" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  done
}
teardown() {
  [ "$keep" -eq 1 ] && return 0
  [ -d "$SHOAL_LAB_DIR/registry" ] && "$root/scripts/registry.sh" stop "$registry_dir" || true
  "$lab" down
  end_containers
}
trap teardown EXIT

./scripts/test-images.sh >/dev/null
"$lab" down
end_containers
"$lab" up swarma=192.168.33.10,10.0.2.15 swarmb=192.168.33.11 moby=192.168.33.1 registry=192.168.33.5
"$lab" exec registry "$root/scripts/registry.sh" start "$registry_dir" "$registry_addr" >/dev/null
"$lab" exec registry "$root/scripts/registry.sh" push "$registry_addr" >/dev/null
export SHOALD_ARGS="--registry-mirror http://$registry_addr"
for h in swarma swarmb moby; do "$lab" start "$h"; done

bold=$'\e[1m' off=$'\e[0m'
[ -t 1 ] || { bold=""; off=""; }

# shown ARGS...: the arguments as a shell would need them typed.
shown() {
  local a out=""
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=@,+-]+$ ]]; then out+=" $a"; else out+=" '$a'"; fi
  done
  echo "${out# }"
}

# on HOST [--fail] ARGS...: prints "HOST$ docker ARGS" and runs it against
# that host's shoald (at most 3 minutes); --fail marks a step that is
# expected to fail. Off a terminal, the CLI's progress display repeats each
# line at every refresh: uniq folds the repeats.
on() {
  local h=$1 expect_fail=0 rc=0; shift
  [ "$1" = --fail ] && { expect_fail=1; shift; }
  printf '\n%s%s$ %s %s%s\n' "$bold" "$h" "$cli_name" "$(shown "$@")" "$off"
  if [ -t 1 ]; then
    timeout 180 "$cli" -H "unix://$("$lab" sock "$h")" "$@" 2>&1 || rc=$?
  else
    timeout 180 "$cli" -H "unix://$("$lab" sock "$h")" "$@" 2>&1 | uniq || rc=$?
  fi
  [ "$rc" -eq 124 ] && echo "demo: no answer within 3 minutes" >&2
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
on swarma network ls
on swarma network inspect ingress
on swarma network inspect docker_gwbridge
on swarma swarm join-token worker

echo; echo "== 2.2 Connect SWARM Worker nodes"
token=$(quiet swarma swarm join-token -q worker)
on swarmb swarm join --token "$token" 192.168.33.10:2377
wait_ready 2
on swarma node ls
on moby swarm join --token "$token" 192.168.33.10:2377
wait_ready 3
on swarma node ls

# host$ CMD...: a command run inside a lab host, printed like a step.
in_host() {
  local h=$1; shift
  printf '\n%s%s$ %s%s\n' "$bold" "$h" "$(shown "$@")" "$off"
  "$lab" exec "$h" "$@" 2>&1 || { echo "demo: that step failed" >&2; exit 1; }
}

# wait_for DESC CMD...: polls CMD (silently) for up to 60 s.
wait_for() {
  local what=$1 _; shift
  for _ in $(seq 120); do "$@" && return 0; sleep 0.5; done
  echo "demo: timed out waiting for $what" >&2; exit 1
}
replicas_are() { [ "$(quiet swarma service ls --filter name=my-web --format '{{.Replicas}}')" = "$1" ]; }
# All 4 replicas running, none on swarma, and swarma's old tasks shut down.
drained() {
  local out
  out=$(quiet swarma service ps my-web --format '{{.Name}} {{.Node}} {{.DesiredState}} {{.CurrentState}}')
  [ "$(grep -c '^my-web\.[0-9]* [a-z]* Running Running' <<<"$out")" -eq 4 ] &&
    ! grep -q '^my-web\.[0-9]* swarma Running' <<<"$out" &&
    ! grep -q ' swarma Shutdown Running' <<<"$out"
}
no_containers() { local h; for h in swarma swarmb moby; do [ -z "$(quiet "$h" ps -aq)" ] || return 1; done; }

echo; echo "== 2.3 Deploy a SWARM service on the cluster"
echo "The hosts have no internet: images come from the registry at $registry_addr,"
echo "a fourth lab host; every shoald runs with --registry-mirror http://$registry_addr."
in_host registry curl -s "http://$registry_addr/v2/_catalog"
on swarma service create --name my-web --publish 8080:80 --replicas 2 nginx
on swarma ps
on swarma service ls
on swarma service ps my-web
on swarma service inspect --pretty my-web
on swarma service scale my-web=4
on swarma service inspect --pretty my-web
wait_for "my-web 4/4" replicas_are 4/4
on swarma service ls
on swarma service ps my-web
on swarma node update --availability drain swarma
on swarma node ls
wait_for "swarma's tasks to move" drained
on swarma service ps my-web

echo; echo "== 2.4 Use Docker SWARM mode routing mesh"
echo "Port 8080 answers on every node, swarma included (drained, no replica there),"
echo "and from a host outside the swarm (the registry host):"
on swarma service inspect --pretty my-web
page_title() { grep -o '<title>.*</title>' || true; }
for ip in 192.168.33.10 192.168.33.11 192.168.33.1; do
  printf '\n%sregistry$ curl -s %s:8080 | grep title%s\n' "$bold" "$ip" "$off"
  wait_for "$ip:8080 to answer" "$lab" exec registry curl -s -o /dev/null -m 3 "$ip:8080"
  "$lab" exec registry curl -s -m 3 "$ip:8080" | page_title
done
echo
echo "Load balancing: 8 requests to the manager's address, then the replicas' access"
echo "logs, which name the replica (task) that served each one:"
printf '\n%sregistry$ for i in $(seq 8); do curl -s -o /dev/null -w "%%{http_code} " 192.168.33.10:8080; done%s\n' "$bold" "$off"
for _ in $(seq 8); do "$lab" exec registry curl -s -o /dev/null -m 3 -w "%{http_code} " 192.168.33.10:8080; done
echo
sleep 1
on swarma service logs my-web

echo; echo "== 2.5 Undeploy a service from a SWARM cluster"
on swarma service ls
on swarma service ps my-web
on swarma service rm my-web
on swarma service ls
wait_for "my-web's containers to go" no_containers
on moby ps

echo; echo "== Beyond the seed: a stack from a compose file"
stackdir=$(mktemp -d)
printf "s3cret\n" >"$stackdir/token.txt"
cat >"$stackdir/compose.yml" <<'YAML'
version: "3.8"
services:
  web:
    image: nginx
    ports: ["8081:80"]
    secrets: [token]
    deploy:
      replicas: 2
  probe:
    image: busybox
    command: ["sh", "-c", "wc -c /run/secrets/token; sleep 3600"]
    secrets: [token]
secrets:
  token:
    file: ./token.txt
YAML
printf '\n%s$ cat compose.yml%s\n' "$bold" "$off"
cat "$stackdir/compose.yml"
(cd "$stackdir" && on swarma stack deploy -c compose.yml demo)
on swarma stack ls
stack_up() { [ "$(quiet swarma stack services demo --format '{{.Replicas}}' | sort | tr '\n' ' ')" = "1/1 2/2 " ]; }
wait_for "the stack's services" stack_up
on swarma stack services demo
on swarma stack ps demo
printf '\n%sregistry$ curl -s 192.168.33.11:8081 | grep title%s\n' "$bold" "$off"
wait_for "192.168.33.11:8081 to answer" "$lab" exec registry curl -s -o /dev/null -m 3 192.168.33.11:8081
"$lab" exec registry curl -s -m 3 192.168.33.11:8081 | page_title
on swarma service logs demo_probe
on swarma stack rm demo
rm -rf "$stackdir"
wait_for "the stack's containers to go" no_containers

echo
if [ "$keep" -eq 1 ]; then
  echo "The hosts keep running. Try:"
  echo "  $cli_name -H unix://$("$lab" sock swarma) node ls"
  echo "  SHOAL_LAB_DIR=$SHOAL_LAB_DIR lab/lab exec swarmb ip addr"
  echo "Tear down with: SHOAL_LAB_DIR=$SHOAL_LAB_DIR lab/lab down"
else
  echo "Done; tearing the lab down."
fi
