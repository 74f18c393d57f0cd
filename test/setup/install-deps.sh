#!/usr/bin/env bash
# Programs for the interoperability tests (test/interop/), from
# Debian's packages: mbpoll (a Modbus master), iperf 2, and pymodbus for
# Debian's own python3 (test/interop/modbus_device.py). Idempotent: when all
# are present it only checks and exits.
set -euo pipefail
PYTHON=${CCCP_INTEROP_PYTHON:-/usr/bin/python3}
missing=()
command -v mbpoll >/dev/null 2>&1 || missing+=(mbpoll)
command -v iperf >/dev/null 2>&1 || missing+=(iperf)
# pymodbus 3.0's server module also imports pyserial and serial_asyncio.
if ! "$PYTHON" -c 'import pymodbus.server.async_io' >/dev/null 2>&1; then
  missing+=(python3-pymodbus python3-serial python3-serial-asyncio)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
