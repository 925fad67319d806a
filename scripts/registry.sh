#!/usr/bin/env bash
# A local registry for tests and the demo: Debian's docker-registry (CNCF
# distribution 2.8) with a config of our own (the package's default config
# wants htpasswd), plus pushing the test images into it with skopeo.
#
#   scripts/registry.sh start DIR ADDR:PORT [HTPASSWD]
#                                               start, storage under DIR; waits until /v2/ answers;
#                                               with HTPASSWD (a bcrypt htpasswd file) clients must
#                                               log in (basic auth, realm "shoal-test")
#   scripts/registry.sh push HOST:PORT [IMAGES] push IMAGES/{busybox,nginx} (scripts/test-images.sh output)
#                                               as library/NAME:latest (Docker schema2) and
#                                               library/NAME:oci (OCI manifest)
#   scripts/registry.sh up DIR ADDR:PORT [IMAGES]  build images if needed, start, push
#   scripts/registry.sh stop DIR                stop the registry started with DIR
#
# Plain HTTP (no auth unless HTPASSWD): clients must treat ADDR:PORT as an insecure registry
# (127.0.0.0/8 is insecure by default in dockerd and shoal).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
default_images=${SHOAL_IMAGES_DIR:-$here/../build/images}

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

start() {
  local dir=$1 addr=$2 htpasswd=${3:-} auth=""
  mkdir -p "$dir/data"
  if [ -n "$htpasswd" ]; then
    htpasswd=$(cd "$(dirname "$htpasswd")" && pwd)/$(basename "$htpasswd")
    auth="auth:
  htpasswd:
    realm: shoal-test
    path: $htpasswd"
  fi
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/registry.pid" ] && kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null; then
    echo "registry: already running (pid $(cat "$dir/registry.pid"))"
    return 0
  fi
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $addr
  headers:
    X-Content-Type-Options: [nosniff]
$auth
EOF
  setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
  echo $! >"$dir/registry.pid"
  local host=$addr
  case $host in :*) host=127.0.0.1$host ;; esac
  for _ in $(seq 100); do
    # With auth /v2/ answers 401: any HTTP answer means it is up.
    if [ "$(curl -sS -o /dev/null -w '%{http_code}' "http://$host/v2/" 2>/dev/null)" != 000 ]; then
      echo "registry: listening on $host (pid $(cat "$dir/registry.pid"), data $dir/data)"
      return 0
    fi
    kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "registry: did not start on $addr; log:" >&2
  cat "$dir/registry.log" >&2
  return 1
}

push() {
  local hostport=$1 images=${2:-$default_images} name
  for name in busybox nginx; do
    [ -f "$images/$name/index.json" ] || { echo "registry: no image layout $images/$name (run scripts/test-images.sh)" >&2; return 1; }
    # Docker schema2 for :latest (what `docker push` makes), OCI for :oci.
    skopeo --insecure-policy copy -q --dest-tls-verify=false --format v2s2 \
      "oci:$images/$name:latest" "docker://$hostport/library/$name:latest"
    skopeo --insecure-policy copy -q --dest-tls-verify=false --format oci \
      "oci:$images/$name:latest" "docker://$hostport/library/$name:oci"
    echo "registry: pushed $hostport/library/$name:latest and :oci"
  done
}

stop() {
  local dir=$1 pid
  [ -f "$dir/registry.pid" ] || return 0
  pid=$(cat "$dir/registry.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$dir/registry.pid"
}

cmd=${1:-}
case $cmd in
  start) [ $# -eq 3 ] || [ $# -eq 4 ] || usage; start "$2" "$3" "${4:-}" ;;
  push) [ $# -ge 2 ] || usage; push "$2" "${3:-}" ;;
  up)
    [ $# -ge 3 ] || usage
    images=${4:-$default_images}
    "$here/test-images.sh" "$images"
    start "$2" "$3"
    host=$3; case $host in :*) host=127.0.0.1$host ;; esac
    push "$host" "$images"
    ;;
  stop) [ $# -eq 2 ] || usage; stop "$2" ;;
  *) usage ;;
esac
