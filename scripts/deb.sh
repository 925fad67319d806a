#!/usr/bin/env bash
# make deb: builds the Debian package from this tree with debhelper in a
# copy under build/deb (dpkg-buildpackage writes next to its source tree,
# so the copy keeps everything inside the repository), then runs lintian.
# Prints the .deb's path last; exits non-zero if lintian reports an error.
set -euo pipefail
cd "$(dirname "$0")/.."
ver=$(dpkg-parsechangelog -l debian/changelog -S Version)
out=build/deb
src=$out/shoal-${ver%-*}
rm -rf "$out"
mkdir -p "$src"
# The tracked files and new ones not ignored, as a clean clone would have.
git ls-files -co --exclude-standard -z | grep -zv '^build/\|^bin/' |
  xargs -0 cp --parents -t "$src"
# The build copy has no .git: the version's commit comes from here.
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
(cd "$src" && GIT_COMMIT=$commit dpkg-buildpackage -b -us -uc >../build.log 2>&1) || {
  tail -n 40 "$out/build.log" >&2
  echo "deb: dpkg-buildpackage failed; see $out/build.log" >&2
  exit 1
}
deb=$(ls "$out"/shoal_"$ver"_*.deb)
lintian --fail-on error --tag-display-limit 0 "$out"/shoal_"$ver"_*.changes | tee "$out/lintian.log"
echo "$deb"
