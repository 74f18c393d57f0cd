#!/usr/bin/env bash
# HAProxy from Debian's package, the real PROXY protocol sender in front of the
# proxy in test/proxy-pod/proxy-protocol-haproxy.test.ts (the benchmark uses it
# too, as the peer it measures against). Only the binary is used: the tests
# start their own haproxy with their own config; the package's service is
# never started. Idempotent.
set -euo pipefail
command -v haproxy >/dev/null 2>&1 && exit 0
exec bash "$(dirname "$0")/apt-install-no-service.sh" install-haproxy haproxy
