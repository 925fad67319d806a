#!/usr/bin/env bash
# Installs what shoal needs to build, test and run its lab on Debian 12.
# Idempotent: only missing packages are installed. Used by the README
# commands and by .ci/run.
set -euo pipefail
pkgs=(
  build-essential pkg-config clang libclang-rt-14-dev clang-format
  libuv1-dev libraft-dev libjansson-dev libcbor-dev libhttp-parser-dev
  libcurl4-openssl-dev libssl-dev libarchive-dev libnl-route-3-dev libnftables-dev
  libldns-dev
  # shoald compiles the tasks' seccomp filters once (src/seccomp/bpf.c)
  libseccomp-dev
  # shoal-sim's heap (not shoald's)
  libmimalloc-dev
  busybox-static nginx-light docker-registry skopeo umoci
  crun conmon
  # --init: tini-static as PID 1 inside any image
  tini
  # /usr/share/containers/seccomp.json: the tasks' default seccomp profile
  golang-github-containers-common
  iproute2 util-linux procps python3 openssl curl
  iputils-ping
  # tests and benchmarks only: what a user would list with (nft), measure
  # throughput with (iperf3, wrk for HTTP through the routing mesh); the
  # product speaks netlink itself
  nftables iperf3 wrk
  # tests only: test_session.py plays an agent that speaks CBOR
  python3-cbor2
  # make deb and its checks: debhelper builds the package, lintian judges
  # it; systemd-analyze (systemd) verifies the unit, man (man-db) renders
  # the man pages and the unit's Documentation=
  debhelper lintian systemd man-db
  # the install test: a Debian 12 root (debootstrap) booted with systemd as
  # PID 1 (systemd-nspawn) where apt installs the package
  debootstrap systemd-container
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "deps: need root to install: ${missing[*]}" >&2; exit 1; }
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
