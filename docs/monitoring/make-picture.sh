#!/usr/bin/env bash
# Regenerates docs/monitoring/dashboard.png: runs the Prometheus test with
# CCCP_DASHBOARD_DATA (which adds a minute of varied traffic and records
# every panel's data), then draws the panels with matplotlib from a venv
# cached under ~/.cache. Not part of `npm test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="$HOME/.cache/cccp-docs/venv-matplotlib-3.10"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'matplotlib~=3.10.0'
fi
data="$(mktemp -d)/panel-data.json"
CCCP_DASHBOARD_DATA="$data" node test/run.mjs monitoring-prometheus
"$venv/bin/python" docs/monitoring/render-dashboard.py "$data" docs/monitoring/dashboard.png
echo "wrote docs/monitoring/dashboard.png"
