"""sroamd.routes' withdrawal as babeld sees it; run inside an AP's namespace.

    ip netns exec NS PYTHON tests/retract_probe.py IFNAME RETRACT_PROTO

Installs a client's /32 (192.0.2.72) and /64 (2001:db8:4444:72::/64) with a
RouteManager, prints "added", then removes each prefix named on a line of
stdin ("192.0.2.72/32") and prints "removed PREFIX".  Used by
tests/test_babel_retraction.py.
"""

import socket
import sys
import time

from sroamd.routes import RouteManager


def main():
    ifname, retract_proto = sys.argv[1], int(sys.argv[2])
    ifindex = socket.if_nametoindex(ifname)
    prefixes = {"192.0.2.72/32": (socket.inet_pton(socket.AF_INET, "192.0.2.72"), 32),
                "2001:db8:4444:72::/64": (socket.inet_pton(socket.AF_INET6, "2001:db8:4444:72::"), 64)}
    pending = []  # (delay, fn): what the event loop's call_later would run
    manager = RouteManager(metric=128, retract_proto=retract_proto,
                           later=lambda delay, fn: pending.append((delay, fn)))
    for address, plen in prefixes.values():
        assert manager.add(ifindex, address, plen, ifname)
    print("added", flush=True)
    for line in sys.stdin:
        name = line.strip()
        assert manager.remove(*prefixes[name])
        for delay, fn in pending:
            time.sleep(delay)
            fn()
        pending.clear()
        print(f"removed {name} shadows {manager.shadows}", flush=True)


if __name__ == "__main__":
    main()
