"""A scratch network namespace for the route tests that run sroamd's route
code on the real kernel (tests/test_route_reconcile_netns.py,
tests/test_routes_batch_netns.py): root only, a unique name, deleted
whatever happens."""

from __future__ import annotations

import secrets
import subprocess
from contextlib import contextmanager


def ip(ns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True,
                          text=True).stdout


@contextmanager
def routing_netns(short: str):
    """The namespace's name: wl0 (192.0.2.1/24, fe80::44) to wl1 and other0 to
    other1, veth pairs, all up; no IPv6 on the far ends (their RSs would make
    them clients of ours)."""
    name = f"sroamd-{short}-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        ip(name, "link", "set", "lo", "up")
        ip(name, "link", "add", "wl0", "type", "veth", "peer", "name", "wl1")
        ip(name, "link", "add", "other0", "type", "veth", "peer", "name", "other1")
        for dev in ("wl1", "other1"):
            subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw",
                            f"net.ipv6.conf.{dev}.disable_ipv6=1"], check=True)
        for dev in ("wl0", "wl1", "other0", "other1"):
            ip(name, "link", "set", dev, "up")
        ip(name, "addr", "add", "192.0.2.1/24", "dev", "wl0")
        ip(name, "addr", "add", "fe80::44/64", "dev", "wl0", "nodad")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
