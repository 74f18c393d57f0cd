#!/usr/bin/env bash
# Takes down a test node started by node.ts and puts the machine back as it
# was: run by NodeCluster.stop(), by the test process's exit handler, and by
# the next start when a crashed run left one behind. Idempotent: every step
# checks before it acts, and a second run finds nothing to do.
#
#   node-down.sh WORK_DIR
#
# WORK_DIR/state holds what node.ts recorded before it changed anything:
#   netns         the network namespace file (a bind mount under WORK_DIR)
#   host-link     the host end of the veth pair
#   cgroup        the kubelet's cgroup root name (under every v1 hierarchy)
#   sysctl        "key value" lines the kubelet may rewrite (kernel tunables)
#   paths         "path existed|absent" for the paths containerd and the
#                 kubelet use that cannot be moved into WORK_DIR
#   netns-before  the entries of /run/netns before the node started
set -uo pipefail
work="${1:?usage: node-down.sh WORK_DIR}"
state="$work/state"
[[ -d "$state" ]] || exit 0
read_state() { [[ -f "$state/$1" ]] && cat "$state/$1"; }

# 1. Every process of the node's pods: they live in the kubelet's cgroups.
#    Killing the shims alone would orphan them.
cgroup="$(read_state cgroup)"
kill_cgroup_tasks() {
  local dir="/sys/fs/cgroup/pids/$cgroup" tries pids
  [[ -n "$cgroup" && -d "$dir" ]] || return 0
  for tries in $(seq 1 50); do
    pids="$(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)"
    [[ -z "$pids" ]] && return 0
    kill -KILL $pids 2>/dev/null
    sleep 0.1
  done
  echo "node-down: processes left in cgroup $cgroup: $pids" >&2
}
kill_cgroup_tasks

# 2. The node's own processes (containerd, its shims, kubelet and the control
#    plane): each names WORK_DIR on its command line. The test process's
#    watchdogs kill the control plane too; this covers a crashed run.
own_pids() {
  local pid
  for pid in $(pgrep -f -- "$work"); do
    # Not this script (its subshells share its command line).
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'node-down\.sh' || echo "$pid"
  done
}
for signal in TERM KILL; do
  pids="$(own_pids)"
  [[ -z "$pids" ]] && break
  kill "-$signal" $pids 2>/dev/null
  for _ in $(seq 1 30); do [[ -z "$(own_pids)" ]] && break; sleep 0.1; done
done
kill_cgroup_tasks

# 3. Mounts: container root filesystems, volumes, the pods' network
#    namespaces (new entries of /run/netns), deepest first.
netns_before="$(read_state netns-before)"
new_netns() {
  local f
  for f in /run/netns/cni-*; do
    [[ -e "$f" ]] || continue
    grep -qxF "$(basename "$f")" <<<"$netns_before" || echo "$f"
  done
}
mapfile -t netns_files < <(new_netns)
mountpoints() {
  # (No path of ours has a space, so mountinfo's octal escapes never occur.)
  awk '{ print $5 }' /proc/self/mountinfo | while read -r m; do
    case "$m" in "$work"|"$work"/*) echo "$m" ;; esac
    for f in "${netns_files[@]}"; do [[ "$m" == "$f" ]] && echo "$m"; done
  done | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}
for _ in 1 2 3; do
  mapfile -t mounts < <(mountpoints)
  [[ ${#mounts[@]} -eq 0 ]] && break
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done
rm -f "${netns_files[@]}"

# 4. The kubelet's cgroups, children first, in every hierarchy.
if [[ -n "$cgroup" ]]; then
  for h in /sys/fs/cgroup/*/; do
    [[ -d "$h$cgroup" ]] && find "$h$cgroup" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
fi

# 5. The network namespace is gone once nothing holds it; the host end of the
#    veth pair (and the routes through it) goes with it.
link="$(read_state host-link)"
[[ -n "$link" ]] && ip link show "$link" >/dev/null 2>&1 && ip link del "$link"

# 6. Kernel tunables the kubelet set, back to their values.
while read -r key value; do
  [[ -n "$key" ]] && echo "$value" >"/proc/sys/$key" 2>/dev/null
done < <(read_state sysctl)

# 7. Paths outside WORK_DIR that did not exist before.
while read -r path how; do
  [[ "$how" == absent && -e "$path" ]] && rm -rf -- "$path"
done < <(read_state paths)

rm -rf -- "$work"
exit 0
