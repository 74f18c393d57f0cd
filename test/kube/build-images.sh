#!/usr/bin/env bash
# Builds the images the test node's pods run, without a Docker engine or a
# registry (neither is reachable here), as archives containerd imports:
#   pause  the sandbox image: the static binary from test/kube/pause/;
#   app    the project's own Dockerfile, built by buildah against a Node base
#          image assembled from this machine's node and npm (the Dockerfile's
#          NODE_IMAGE build argument), since no base image can be pulled.
# Archives are cached in $CCCP_KUBE_CACHE/images (default ~/.cache/cccp-kube),
# keyed by a hash of their inputs: an unchanged tree reuses them at once.
# Prints one JSON line: {"pause": {"name", "archive"}, "app": {...}}.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${CCCP_KUBE_CACHE:-$HOME/.cache/cccp-kube}/images"
mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9

for tool in buildah go node npm; do
  command -v "$tool" >/dev/null || { echo "build-images.sh: $tool is needed (test/setup/install-node.sh installs buildah)" >&2; exit 1; }
done

hash_files() { (cd "$root" && sha256sum "$@" | sha256sum | cut -c1-16); }

pause_key="$(cd "$here/pause" && { cat main.go go.mod; go version; } | sha256sum | cut -c1-16)"
pause_name="localhost/cccp-pause:$pause_key"
pause_archive="$cache/pause-$pause_key.tar"

node_bin="$(command -v node)"
node_version="$(node --version)"
npm_dir="$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)"
base_key="$( { sha256sum "$node_bin"; echo "$npm_dir"; npm --version; } | sha256sum | cut -c1-16)"
base_name="localhost/cccp-node-base:${node_version}-$base_key"

# Exactly what the Dockerfile can COPY (see .dockerignore), plus the base.
mapfile -t app_inputs < <(cd "$root" && { ls Dockerfile .dockerignore package.json package-lock.json tsconfig.json tsconfig.build.json; find common operator proxy-pod -type f ! -name '*.md'; } | LC_ALL=C sort)
app_key="$( { hash_files "${app_inputs[@]}"; echo "$base_key"; } | sha256sum | cut -c1-16)"
app_name="localhost/cccp-proxy-operator:$app_key"
app_archive="$cache/app-$app_key.tar"

print_result() {
  printf '{"pause":{"name":"%s","archive":"%s"},"app":{"name":"%s","archive":"%s"}}\n' \
    "$pause_name" "$pause_archive" "$app_name" "$app_archive"
}
if [[ -s "$pause_archive" && -s "$app_archive" ]]; then print_result; exit 0; fi

# buildah's own storage, in a scratch directory removed afterwards: vfs needs
# no mounts, so nothing is left mounted on the machine.
work="$(mktemp -d "${TMPDIR:-/tmp}/cccp-images-XXXXXX")"
trap 'rm -rf "$work"' EXIT
bah() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }

# from_scratch NAME SETUP: a new image from an empty root that SETUP fills
# (it gets the container's root directory as $1).
from_scratch() {
  local name="$1" setup="$2" ctr mnt
  ctr="$(bah from scratch)"
  mnt="$(bah mount "$ctr")"
  "$setup" "$mnt"
  bah umount "$ctr" >/dev/null
  shift 2
  bah config "$@" "$ctr"
  bah commit --quiet "$ctr" "$name" >/dev/null
  bah rm "$ctr" >/dev/null
}

if [[ ! -s "$pause_archive" ]]; then
  start=$SECONDS
  (cd "$here/pause" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$work/pause" .)
  fill_pause() { install -D -m 0755 "$work/pause" "$1/pause"; }
  from_scratch "$pause_name" fill_pause --entrypoint '["/pause"]' --user 65535:65535
  rm -f "$cache"/pause-*.tar
  bah push --quiet "$pause_name" "docker-archive:$pause_archive.tmp:$pause_name"
  mv -f "$pause_archive.tmp" "$pause_archive"
  echo "build-images.sh: pause image in $((SECONDS - start))s" >&2
fi

if [[ ! -s "$app_archive" ]]; then
  start=$SECONDS
  # The base: node, the libraries it links, npm, and the programs of a
  # slim Debian base that RUN steps and npm scripts call (sh, env and the
  # basic file tools), with the "node" user (1000) that official Node images have.
  local_tools=(/usr/bin/env /bin/rm /bin/mkdir /bin/cp /bin/mv /bin/ln /bin/ls /bin/cat /bin/chmod /bin/touch)
  fill_base() {
    local r="$1" lib tool
    install -D -m 0755 "$node_bin" "$r/usr/local/bin/node"
    for lib in $(ldd "$node_bin" /bin/dash "${local_tools[@]}" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } /^\t\// { print $1 }' | sort -u); do
      install -D -m 0755 "$(readlink -f "$lib")" "$r$lib"
    done
    install -D -m 0755 /bin/dash "$r/bin/sh"
    for tool in "${local_tools[@]}"; do install -D -m 0755 "$tool" "$r$tool"; done
    mkdir -p "$r/usr/local/lib/node_modules" "$r/tmp" "$r/etc" "$r/home/node"
    cp -a "$npm_dir" "$r/usr/local/lib/node_modules/npm"
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$r/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$r/usr/local/bin/npx"
    chmod 1777 "$r/tmp"
    chown 1000:1000 "$r/home/node"
    printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$r/etc/passwd"
    printf 'root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n' >"$r/etc/group"
    # This machine's trust store: the npm registry may be reached through a
    # TLS-inspecting proxy whose CA only the machine knows.
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
  }
  from_scratch "$base_name" fill_base --env PATH=/usr/local/bin:/usr/bin:/bin --env NODE_VERSION="${node_version#v}" \
    --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt --env NPM_CONFIG_UPDATE_NOTIFIER=false --cmd '["node"]'
  # Host networking for RUN npm ci: the registry is reached as from this machine.
  bah build --quiet --isolation chroot --network host --pull=never \
    --build-arg "NODE_IMAGE=$base_name" -t "$app_name" -f "$root/Dockerfile" "$root" >&2
  rm -f "$cache"/app-*.tar
  bah push --quiet "$app_name" "docker-archive:$app_archive.tmp:$app_name"
  mv -f "$app_archive.tmp" "$app_archive"
  echo "build-images.sh: app image in $((SECONDS - start))s" >&2
fi

print_result
