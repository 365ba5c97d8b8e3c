"""Exercise sroamd.routes against the kernel; run inside a scratch namespace.

Prints one JSON object.  Run by tests/test_routes.py with each pyroute2
version (0.9.x from the system, 0.7.9 from a venv), as
`ip netns exec NS PYTHON tests/routes_probe.py IFNAME`.
"""

import json
import socket
import subprocess
import sys

from sroamd.links import LinkTable
from sroamd.routes import RouteManager


def ip(*args):
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def main():
    ifname = sys.argv[1]
    ifindex = socket.if_nametoindex(ifname)
    v4 = socket.inet_pton(socket.AF_INET, "192.0.2.77")
    v6 = socket.inet_pton(socket.AF_INET6, "2001:db8:4444:7::")[:8] + bytes(8)
    clash = socket.inet_pton(socket.AF_INET, "192.0.2.88")
    # A route left by a "crashed instance", and one that babeld would own.
    ip("route", "add", "192.0.2.99/32", "dev", ifname, "proto", "44")
    ip("route", "add", "192.0.2.88/32", "dev", ifname, "proto", "babel", "metric", "0")
    out = {}
    # At start, proto-44 routes on our interfaces are adopted (held) until
    # release(); then the unwanted one goes.  babeld's route is never touched.
    manager = RouteManager(metric=0, hold=True)
    out["strict"] = manager.rtnl.strict
    manager.reconcile({ifindex})
    out["held"] = manager.status()["held"]
    out["held_table"] = ip("-4", "route", "show", "proto", "44")
    manager.release()
    manager.reconcile({ifindex})
    out["stale_removed"] = manager.removed
    out["add_v4"] = manager.add(ifindex, v4, 32, ifname)
    out["add_v4_again"] = manager.add(ifindex, v4, 32, ifname)
    out["add_v6"] = manager.add(ifindex, v6, 64, ifname)
    out["add_clash"] = manager.add(ifindex, clash, 32, ifname)
    out["table_v4"] = ip("-4", "route", "show", "proto", "44")
    out["table_v6"] = ip("-6", "route", "show", "proto", "44")
    # Deleted by hand: put back by the next reconcile (IPv6 metric 0 shows as
    # 1024 in the kernel: still ours, not touched).
    ip("-6", "route", "del", "2001:db8:4444:7::/64", "dev", ifname)
    added = manager.added
    manager.reconcile({ifindex})
    out["repaired"] = manager.repaired
    out["repair_adds"] = manager.added - added
    manager.reconcile({ifindex})
    out["second_reconcile_adds"] = manager.added - added
    out["table_v6_repaired"] = ip("-6", "route", "show", "proto", "44")
    out["remove_v4"] = manager.remove(v4, 32)
    out["remove_v4_again"] = manager.remove(v4, 32)
    ip("route", "add", "192.0.2.98/32", "dev", ifname, "proto", "44")
    manager.remove_all({ifindex})
    out["after_v4"] = ip("-4", "route", "show", "proto", "44")
    out["after_v6"] = ip("-6", "route", "show", "proto", "44")
    out["babel_route_kept"] = ip("-4", "route", "show", "192.0.2.88/32")
    out["status"] = manager.status()
    # Withdrawals with a shadow route (protocol 45, for babeld): none left
    # behind; one left by a crash goes at the next reconcile.
    # The shadow stays until later() runs it (SHADOW_HOLD: babeld must see it).
    pending = []
    shadowing = RouteManager(metric=128, rtnl=manager.rtnl, retract_proto=45,
                             later=lambda delay, fn: pending.append((delay, fn)))
    v4b = socket.inet_pton(socket.AF_INET, "192.0.2.76")
    shadowing.add(ifindex, v4b, 32, ifname)
    shadowing.add(ifindex, v6, 64, ifname)
    out["shadow_removed"] = [shadowing.remove(v4b, 32), shadowing.remove(v6, 64)]
    out["shadow_held"] = ip("route", "show", "proto", "45") + ip("-6", "route", "show", "proto", "45")
    out["shadow_delays"] = [delay for delay, _ in pending]
    shadowing.reconcile({ifindex})  # (a pending shadow is not a stale one)
    out["shadow_held_reconciled"] = ip("route", "show", "proto", "45")
    for _, fn in pending:
        fn()
    out["shadow_left"] = ip("route", "show", "proto", "45") + ip("-6", "route", "show", "proto", "45")
    out["shadow_routes_left"] = ip("route", "show", "192.0.2.76/32")
    ip("route", "add", "192.0.2.97/32", "dev", ifname, "proto", "45", "metric", "129")
    shadowing.reconcile({ifindex})
    out["stale_shadow_left"] = ip("route", "show", "proto", "45")
    out["shadow_status"] = shadowing.status()
    changes = []
    links = LinkTable([ifname, "absent0"], manager.rtnl, lambda *change: changes.append(change))
    links.refresh()
    [(name, old, new)] = changes
    out["link"] = {"name": name, "old": old, "index": new.index, "mac": new.mac.hex(),
                   "up": new.up, "ipv4": [socket.inet_ntoa(a) for a in new.ipv4],
                   "ipv6": [socket.inet_ntop(socket.AF_INET6, a) for a in new.ipv6],
                   "link_local": socket.inet_ntop(socket.AF_INET6, new.link_local)}
    # Only pyroute2's message classes were loaded, not its whole package ...
    out["pyroute2_modules"] = len([m for m in sys.modules if m.startswith("pyroute2")])
    # ... which loads in full when a top-level name is used.
    import pyroute2
    out["version"] = pyroute2.__version__
    from pyroute2 import IPRoute  # noqa: F401
    print(json.dumps(out))


main()
