#!/usr/bin/env bash
# Everything the tests need beyond node_modules, installed or built only when
# missing, so a fresh machine prepares once and later runs start at once.
set -euo pipefail
cd "$(dirname "$0")/../.."
# kube-apiserver, etcd, kubectl and helm from their Go modules (cached under ~/.cache).
bash test/kube/build.sh >/dev/null
for extra in test/setup/install-*.sh; do
  [ -e "$extra" ] && bash "$extra"
done
exit 0
