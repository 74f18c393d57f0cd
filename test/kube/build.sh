#!/usr/bin/env bash
# Builds the test rig's control plane (etcd, kube-apiserver, kubectl, helm)
# from the Go modules pinned in test/kube/go.mod and test/kube/helm/go.mod.
#
# The binaries land in $CCCP_KUBE_CACHE (default ~/.cache/cccp-kube) under a
# directory named after the pinned versions, so bumping a version rebuilds and
# an unchanged pin returns at once. The bin directory is the last line printed
# on stdout; everything else goes to stderr.
#
# A cold build takes a long while on a small machine (tens of minutes on two
# cores, mostly kube-apiserver), so CI should run this script before the tests
# rather than inside a test's deadline. Concurrent callers wait on a lock
# instead of building twice. Only the versions key the cache: after changing
# the flags below, delete the cache directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Version of a module as required by a go.mod file (first match wins).
required_version() {
  local gomod="$1" module="$2"
  awk -v m="$module" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$gomod"
}

k8s_version="$(required_version "$here/go.mod" k8s.io/kubernetes)"
etcd_version="$(required_version "$here/go.mod" go.etcd.io/etcd/server/v3)"
helm_version="$(required_version "$here/helm/go.mod" helm.sh/helm/v3)"
for v in k8s_version etcd_version helm_version; do
  [[ -n "${!v}" ]] || { echo "build.sh: cannot read $v from go.mod" >&2; exit 1; }
done

cache_root="${CCCP_KUBE_CACHE:-$HOME/.cache/cccp-kube}"
bin_dir="$cache_root/${k8s_version}-etcd${etcd_version}-helm${helm_version}/bin"
binaries=(etcd kube-apiserver kubectl helm)

all_built() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin_dir/$b" ]] || return 1; done
}

if all_built; then
  echo "$bin_dir"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: the go command is needed to build the rig" >&2; exit 1; }
mkdir -p "$bin_dir"
exec 9>"$bin_dir/../build.lock"
flock 9
# Another caller may have finished the build while this one waited.
if all_built; then
  echo "$bin_dir"
  exit 0
fi

# Kubernetes reads its own version from these variables (set by its Makefile
# from git); without them the apiserver reports v0.0.0-master, which breaks
# helm's kubeVersion checks and kubectl's skew warnings.
k8s_minor="$(cut -d. -f2 <<<"${k8s_version#v}")"
kv=k8s.io/component-base/version
k8s_ldflags="-s -w -X $kv.gitVersion=$k8s_version -X $kv.gitMajor=1 -X $kv.gitMinor=$k8s_minor -X $kv.gitTreeState=clean"
hv=helm.sh/helm/v3
helm_ldflags="-s -w -X $hv/internal/version.version=$helm_version -X $hv/internal/version.gitTreeState=clean"
for p in pkg/lint/rules pkg/chartutil; do
  helm_ldflags+=" -X $hv/$p.k8sVersionMajor=1 -X $hv/$p.k8sVersionMinor=$k8s_minor"
done

# build NAME MODULE_DIR LDFLAGS PACKAGE: go build into a temporary name, then
# rename, so an interrupted build never leaves a truncated binary behind.
build() {
  local name="$1" dir="$2" ldflags="$3" pkg="$4"
  [[ -x "$bin_dir/$name" ]] && return 0
  echo "build.sh: building $name ($pkg)" >&2
  local start=$SECONDS
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$bin_dir/.$name.tmp" "$pkg")
  mv -f "$bin_dir/.$name.tmp" "$bin_dir/$name"
  echo "build.sh: built $name in $((SECONDS - start))s" >&2
}

build etcd "$here" "-s -w" go.etcd.io/etcd/server/v3
build kube-apiserver "$here" "$k8s_ldflags" k8s.io/kubernetes/cmd/kube-apiserver
build kubectl "$here" "$k8s_ldflags" k8s.io/kubernetes/cmd/kubectl
build helm "$here/helm" "$helm_ldflags" helm.sh/helm/v3/cmd/helm

echo "$bin_dir"
