#!/usr/bin/env bash
# openapi-python-client and mypy (PyPI) in a virtualenv under ~/.cache, keyed
# by their versions, for the generated-client test.
set -euo pipefail
generator=0.29.1
mypy=1.18.2
venv="${HOME}/.cache/cccp-openapi-python-client-${generator}-mypy-${mypy}"
if [ ! -x "${venv}/bin/openapi-python-client" ] || [ ! -x "${venv}/bin/mypy" ]; then
  rm -rf "${venv}"
  python3 -m venv "${venv}"
  "${venv}/bin/pip" install --quiet --disable-pip-version-check "openapi-python-client==${generator}" "mypy==${mypy}"
fi
