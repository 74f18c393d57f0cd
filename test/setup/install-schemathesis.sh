#!/usr/bin/env bash
# schemathesis (PyPI) in a virtualenv under ~/.cache, keyed by its version.
set -euo pipefail
version=4.32.5
venv="${HOME}/.cache/cccp-schemathesis-${version}"
if [ ! -x "${venv}/bin/st" ]; then
  rm -rf "${venv}"
  python3 -m venv "${venv}"
  "${venv}/bin/pip" install --quiet --disable-pip-version-check "schemathesis==${version}"
fi
