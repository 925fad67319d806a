#!/usr/bin/env bash
# Builds shoal's test images from Debian packages, as OCI image layouts
# (umoci), with no internet:
#   OUT/busybox  busybox-static as /bin/busybox + applet symlinks, CMD ["sh"]
#   OUT/nginx    Debian's nginx binary + the shared libraries ldd lists, a
#                www-data user, a small config serving "Welcome to nginx!"
# Each layout has the tag "latest". Idempotent: an image is rebuilt only when
# this script or the packages it comes from changed (a stamp records both).
# Usage: scripts/test-images.sh [OUT]   (default: build/images in the repo)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-${SHOAL_IMAGES_DIR:-$here/../build/images}}
mkdir -p "$out"
out=$(cd "$out" && pwd)

for tool in umoci busybox nginx; do
  command -v "$tool" >/dev/null || { echo "test-images: $tool missing (run scripts/deps.sh)" >&2; exit 1; }
done
[ -x /bin/busybox ] && file_busybox=/bin/busybox || file_busybox=$(command -v busybox)

stamp_of() { # image name -> what its content depends on
  {
    sha256sum "$0" | cut -d' ' -f1
    dpkg-query -W -f='${Package} ${Version}\n' busybox-static nginx-light nginx-common libc6 2>/dev/null || true
    echo "$1"
  } | sha256sum | cut -d' ' -f1
}

# new_image NAME ROOTFS-FILLER CONFIG-ARGS...: a one-layer image built in a
# temporary directory, moved into place only when complete.
new_image() {
  local name=$1 filler=$2; shift 2
  local stamp; stamp=$(stamp_of "$name")
  if [ -f "$out/$name/index.json" ] && [ "$(cat "$out/$name.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "test-images: $name up to date"
    return 0
  fi
  local tmp; tmp=$(mktemp -d "$out/.build-$name.XXXXXX")
  umoci init --layout "$tmp/layout"
  umoci new --image "$tmp/layout:latest"
  umoci unpack --image "$tmp/layout:latest" "$tmp/bundle" >/dev/null
  "$filler" "$tmp/bundle/rootfs"
  umoci repack --image "$tmp/layout:latest" "$tmp/bundle"
  umoci config --image "$tmp/layout:latest" --author "shoal test-images" \
    --os linux --architecture amd64 "$@"
  umoci gc --layout "$tmp/layout"
  rm -rf "$out/$name" "$out/$name.stamp"
  mv "$tmp/layout" "$out/$name"
  rm -rf "$tmp"
  echo "$stamp" >"$out/$name.stamp"
  echo "test-images: built $out/$name"
}

fill_busybox() {
  local r=$1
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,var/www,proc,sys,dev}
  chmod 1777 "$r/tmp"
  cp "$file_busybox" "$r/bin/busybox"
  local applet
  while read -r applet; do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$r/$(dirname "$applet")"
    ln -sf /bin/busybox "$r/$applet"
  done < <(/bin/busybox --list-full)
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
}

fill_nginx() {
  local r=$1 lib
  mkdir -p "$r"/{usr/sbin,etc/nginx,var/log/nginx,var/lib/nginx,run,tmp,usr/share/nginx/html,lib64,proc,sys,dev}
  chmod 1777 "$r/tmp"
  cp /usr/sbin/nginx "$r/usr/sbin/nginx"
  # The libraries at the paths the dynamic loader asks for (ldd's view).
  for lib in $(ldd /usr/sbin/nginx | grep -oE '/[^ ]+\.so[^ ]*'); do
    mkdir -p "$r$(dirname "$lib")"
    cp -L "$lib" "$r$lib"
  done
  cp /etc/nginx/mime.types "$r/etc/nginx/mime.types"
  printf 'root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$r/etc/passwd"
  printf 'root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n' >"$r/etc/group"
  cat >"$r/etc/nginx/nginx.conf" <<'EOF'
user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr notice;
events { worker_connections 256; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log /dev/stdout;
  sendfile on;
  server {
    listen 80 default_server;
    root /usr/share/nginx/html;
    index index.html;
    location / { try_files $uri $uri/ =404; }
  }
}
EOF
  cat >"$r/usr/share/nginx/html/index.html" <<'EOF'
<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
EOF
  chown -R 33:33 "$r/var/lib/nginx"
}

new_image busybox fill_busybox \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.cmd sh
new_image nginx fill_nginx \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.exposedports 80/tcp --config.stopsignal SIGQUIT \
  --config.cmd nginx --config.cmd -g --config.cmd "daemon off;"
