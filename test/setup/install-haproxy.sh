#!/usr/bin/env bash
# HAProxy from Debian's package, the real PROXY protocol sender in front of the
# proxy in test/proxy-pod/proxy-protocol-haproxy.test.ts (the benchmark uses it
# too, as the peer it measures against). Only the binary is used: the tests
# start their own haproxy with their own config; the package's service is
# never started. Idempotent.
set -euo pipefail
command -v haproxy >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-haproxy: missing haproxy; run as root: apt-get install --no-install-recommends haproxy" >&2
  exit 1
fi
echo "install-haproxy: installing haproxy" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# policy-rc.d refuses service starts during the install: no system haproxy
# runs beside the tests.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=true
fi
trap '$own_policy && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends haproxy >/dev/null
