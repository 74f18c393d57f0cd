#!/usr/bin/env bash
# The test node's parts (test/node/): the container runtime and image builder
# from Debian's packages, and kubelet, kube-proxy, kube-scheduler and
# kube-controller-manager from the rig's Go module pins (test/kube/build-node.sh,
# cached). Idempotent: when everything is present it only checks and exits.
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
command -v runc >/dev/null 2>&1 || missing+=(runc)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v conntrack >/dev/null 2>&1 || missing+=(conntrack)
# kube-router (NetworkPolicy) calls the ipset program.
command -v ipset >/dev/null 2>&1 || missing+=(ipset)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-node: missing ${missing[*]}; run as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "install-node: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts containerd as a service on install; the node tests run their
# own containerd with its own state directory, so the system one only holds
# /run/containerd. Stop it rather than share a socket directory with it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet containerd 2>/dev/null; then
  systemctl stop containerd || true
fi
bash test/kube/build-node.sh >/dev/null
