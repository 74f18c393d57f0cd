#!/usr/bin/env bash
# Prometheus and promtool from Debian's package, for test/monitoring-prometheus.test.ts
# (a real Prometheus scraping the cluster mode, evaluating the chart's alert
# rules and the dashboard's queries). Only the binaries are used: the test
# starts its own Prometheus with its own config and data directory; the
# package's service is never started. Idempotent.
set -euo pipefail
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && exit 0
exec bash "$(dirname "$0")/apt-install-no-service.sh" install-prometheus prometheus
