#!/usr/bin/env bash
# Installs Debian packages whose services must not start (the tests start
# their own instances with their own config and ports), for the install-*.sh
# scripts: apt-install-no-service.sh WHO PACKAGE...
set -euo pipefail
who=$1
shift
if [ "$(id -u)" -ne 0 ]; then
  echo "$who: missing $*; run as root: apt-get install --no-install-recommends $*" >&2
  exit 1
fi
echo "$who: installing $*" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# policy-rc.d refuses service starts during the install.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=true
fi
trap '$own_policy && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
