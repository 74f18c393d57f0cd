#!/usr/bin/env bash
# Prometheus and promtool from Debian's package, for test/monitoring-prometheus.test.ts
# (a real Prometheus scraping the cluster mode, evaluating the chart's alert
# rules and the dashboard's queries). Only the binaries are used: the test
# starts its own Prometheus with its own config and data directory; the
# package's service is never started. Idempotent.
set -euo pipefail
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-prometheus: missing prometheus/promtool; run as root: apt-get install --no-install-recommends prometheus" >&2
  exit 1
fi
echo "install-prometheus: installing prometheus" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# policy-rc.d refuses service starts during the install: no system Prometheus
# may take port 9090 from the tests.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=true
fi
trap '$own_policy && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
