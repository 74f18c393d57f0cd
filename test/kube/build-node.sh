#!/usr/bin/env bash
# Builds the test node's Kubernetes parts (kubelet, kube-proxy, kube-scheduler,
# kube-controller-manager) from the same module pins as build.sh
# (test/kube/go.mod), and CoreDNS with the few plugins the cluster DNS needs
# (test/kube/coredns/, a module of its own), and kube-router, whose firewall
# enforces NetworkPolicy (test/kube/kube-router/, also its own module), for
# the node tests.
#
# The binaries land in $CCCP_KUBE_CACHE (default ~/.cache/cccp-kube) under a
# directory named after the Kubernetes version, beside build.sh's, with a lock
# of their own so both builds can run at once. A cold build takes about
# 12 minutes on two cores for the Kubernetes parts (less when build.sh has
# filled Go's build cache), plus a few minutes for CoreDNS.
# The bin directory is the last line printed on stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
required_version() {
  local gomod="$1" module="$2"
  awk -v m="$module" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$gomod"
}
k8s_version="$(required_version "$here/go.mod" k8s.io/kubernetes)"
coredns_version="$(required_version "$here/coredns/go.mod" github.com/coredns/coredns)"
kube_router_version="$(required_version "$here/kube-router/go.mod" github.com/cloudnativelabs/kube-router/v2)"
for v in k8s_version coredns_version kube_router_version; do
  [[ -n "${!v}" ]] || { echo "build-node.sh: cannot read $v from go.mod" >&2; exit 1; }
done

cache_root="${CCCP_KUBE_CACHE:-$HOME/.cache/cccp-kube}"
bin_dir="$cache_root/node-${k8s_version}-coredns${coredns_version}-kube-router${kube_router_version}/bin"
binaries=(kubelet kube-proxy kube-scheduler kube-controller-manager coredns kube-router)

all_built() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin_dir/$b" ]] || return 1; done
}

if all_built; then
  echo "$bin_dir"
  exit 0
fi

command -v go >/dev/null || { echo "build-node.sh: the go command is needed to build the test node" >&2; exit 1; }
mkdir -p "$bin_dir"
exec 9>"$bin_dir/../build.lock"
flock 9
if all_built; then
  echo "$bin_dir"
  exit 0
fi

# The same version variables as build.sh: the kubelet reports this version
# on its Node object and the API server checks the skew.
k8s_minor="$(cut -d. -f2 <<<"${k8s_version#v}")"
kv=k8s.io/component-base/version
ldflags="-s -w -X $kv.gitVersion=$k8s_version -X $kv.gitMajor=1 -X $kv.gitMinor=$k8s_minor -X $kv.gitTreeState=clean"

# build NAME MODULE_DIR LDFLAGS PACKAGE: into a temporary name, then rename,
# so an interrupted build never leaves a truncated binary behind.
build() {
  local name="$1" dir="$2" flags="$3" pkg="$4"
  [[ -x "$bin_dir/$name" ]] && return 0
  echo "build-node.sh: building $name ($pkg)" >&2
  local start=$SECONDS
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags="$flags" -o "$bin_dir/.$name.tmp" "$pkg")
  mv -f "$bin_dir/.$name.tmp" "$bin_dir/$name"
  echo "build-node.sh: built $name in $((SECONDS - start))s" >&2
}

for name in kubelet kube-proxy kube-scheduler kube-controller-manager; do
  build "$name" "$here" "$ldflags" "k8s.io/kubernetes/cmd/$name"
done
build coredns "$here/coredns" "-s -w" .
build kube-router "$here/kube-router" "-s -w" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router

echo "$bin_dir"
