#!/usr/bin/env python3
"""Mobile-like links between the host and a network namespace, in user space.

This machine's kernel has no sch_netem, so `tc netem` cannot shape a veth.
Each link here is a pair of TUN devices, one in the host namespace and one
moved into the test's namespace; every IPv4 packet crossing a link is read
by this process and written to the other end after netem's treatment:
random loss, a serialization rate with a bounded queue (tail drop), one-way
delay with normal jitter, a share of packets sent without delay (reordering),
a NAT-like idle cut (a flow silent for longer than the cut is dropped from
then on, both ways, as a carrier NAT forgets its mapping), and a blackhole.

Input: one JSON object on the first line of stdin:
  {"ns": NAME, "seed": N, "links": [{"hostIf", "nsIf", "hostAddr", "nsAddr", "shape": {...}}]}
Then JSON commands, one per line: {"link": i, "shape": {...}} replaces the
shape's given fields. Each command is answered with "ok". End of stdin ends
the process, and with it the TUN devices.
"""
import fcntl
import heapq
import json
import os
import random
import select
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

DEFAULT_SHAPE = {
    "delayMs": 0.0,  # one way
    "jitterMs": 0.0,  # standard deviation of the one-way delay
    "lossPct": 0.0,
    "rateKbit": 0.0,  # 0: no rate limit
    "queueMs": 500.0,  # how much the rate limiter buffers before it drops
    "reorderPct": 0.0,  # share of packets sent without the delay
    "natIdleS": 0.0,  # 0: no NAT
    "blackhole": False,
}


def run(*args):
    subprocess.run(args, check=True)


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def flow_key(packet):
    """(src, dst, sport, dport) of a TCP/UDP IPv4 packet, direction-free; None otherwise."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    header = (packet[0] & 0x0F) * 4
    if packet[9] not in (6, 17) or len(packet) < header + 4:
        return None
    a = (packet[12:16], packet[header : header + 2])
    b = (packet[16:20], packet[header + 2 : header + 4])
    return (a, b) if a < b else (b, a)


class Direction:
    def __init__(self, link, out_fd):
        self.link = link
        self.out_fd = out_fd
        self.busy_until = 0.0


class Link:
    def __init__(self, spec):
        self.shape = dict(DEFAULT_SHAPE)
        self.shape.update(spec.get("shape", {}))
        self.host_fd = open_tun(spec["hostIf"])
        self.ns_fd = open_tun(spec["nsIf"])
        # Packets read on the host's TUN are written to the namespace's, and the other way round.
        self.to_ns = Direction(self, self.ns_fd)
        self.to_host = Direction(self, self.host_fd)
        self.flows = {}  # flow key -> last packet time; absent or cut flows are dropped


def main():
    config = json.loads(sys.stdin.readline())
    rand = random.Random(config.get("seed", 1))
    ns = config["ns"]
    links = []
    for spec in config["links"]:
        link = Link(spec)
        links.append(link)
        run("ip", "link", "set", spec["nsIf"], "netns", ns)
        run("ip", "addr", "add", spec["hostAddr"], "peer", spec["nsAddr"], "dev", spec["hostIf"])
        run("ip", "link", "set", spec["hostIf"], "up")
        run("ip", "-n", ns, "addr", "add", spec["nsAddr"], "peer", spec["hostAddr"], "dev", spec["nsIf"])
        run("ip", "-n", ns, "link", "set", spec["nsIf"], "up")
    by_fd = {}
    for link in links:
        by_fd[link.host_fd] = link.to_ns
        by_fd[link.ns_fd] = link.to_host
    poller = select.epoll()
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    stdin_fd = sys.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    poller.register(stdin_fd, select.EPOLLIN)
    print("ready", flush=True)

    pending = []  # heap of (deliver_at, seq, fd, packet)
    seq = 0
    commands = b""
    cut = set()  # flows whose NAT mapping is gone
    while True:
        now = time.monotonic()
        timeout = max(0.0, pending[0][0] - now) if pending else 1.0
        for fd, _ in poller.poll(timeout):
            if fd == stdin_fd:
                data = os.read(stdin_fd, 65536)
                if not data:
                    return
                commands += data
                while b"\n" in commands:
                    line, commands = commands.split(b"\n", 1)
                    if line.strip():
                        command = json.loads(line)
                        links[command["link"]].shape.update(command["shape"])
                        print("ok", flush=True)
                continue
            direction = by_fd[fd]
            link = direction.link
            shape = link.shape
            for _ in range(256):
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                now = time.monotonic()
                if shape["blackhole"]:
                    continue
                if shape["natIdleS"] > 0:
                    key = flow_key(packet)
                    if key is not None:
                        if key in cut:
                            continue
                        last = link.flows.get(key)
                        if last is not None and now - last > shape["natIdleS"]:
                            cut.add(key)
                            link.flows.pop(key, None)
                            continue
                        link.flows[key] = now
                if shape["lossPct"] > 0 and rand.random() * 100 < shape["lossPct"]:
                    continue
                departure = now
                if shape["rateKbit"] > 0:
                    start = max(now, direction.busy_until)
                    if (start - now) * 1000 > shape["queueMs"]:
                        continue  # the bottleneck's queue is full
                    departure = start + len(packet) * 8 / (shape["rateKbit"] * 1000)
                    direction.busy_until = departure
                deliver_at = departure
                if not (shape["reorderPct"] > 0 and rand.random() * 100 < shape["reorderPct"]):
                    deliver_at += max(0.0, rand.gauss(shape["delayMs"], shape["jitterMs"])) / 1000
                seq += 1
                heapq.heappush(pending, (deliver_at, seq, direction.out_fd, packet))
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, _, out_fd, packet = heapq.heappop(pending)
            try:
                os.write(out_fd, packet)
            except OSError:
                pass  # the device went down: the packet is lost, as on a real link


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
