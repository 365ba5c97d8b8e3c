"""Routes reconciled with the kernel, and restarts that keep them (root only).

The client service runs in a scratch network namespace (tests/reconcile_probe.py,
with `ip netns exec`), so its routes are the namespace's real kernel routing
table, which the probe changes with `ip` as an operator or a link flap would:

  * `ip link set dev wl0 down; ... up` (same ifindex: the kernel dropped the
    routes) is repaired from the link notifications alone;
  * `ip route del ...` is repaired by the periodic reconcile;
  * a proto-44 route nobody wants on a roaming interface goes (one on
    another interface, or babeld's, is never touched);
  * a restart (stop, then a new service on an empty store) keeps the routes:
    adopted at start, held until synced(), then only the unwanted ones go,
    without removing and re-adding the wanted ones;
  * a stop for good withdraws them all.
"""

import json
import os
import subprocess
import sys

import pytest

from netlab import missing_requirements
from route_netns import routing_netns

pytestmark = pytest.mark.skipif(missing_requirements() is not None,
                                reason=str(missing_requirements()))

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
A_V4 = "192.0.2.77"
A_V6 = "2001:db8:4444:7::"
STALE_V4 = "192.0.2.99"


@pytest.fixture
def netns():
    with routing_netns("rc") as name:
        yield name


def run_probe(ns: str, scenario: str) -> dict:
    cp = subprocess.run(["ip", "netns", "exec", ns, sys.executable,
                         os.path.join(HERE, "reconcile_probe.py"), scenario, ns],
                        capture_output=True, text=True, timeout=60,
                        env=dict(os.environ, PYTHONPATH=ROOT))
    assert cp.returncode == 0, cp.stderr[-3000:]
    return json.loads(cp.stdout.strip().splitlines()[-1])


def test_link_flap_and_deleted_routes_are_repaired(netns):
    out = run_probe(netns, "flap")
    assert f"{A_V4} dev wl0" in out["before"] and f"{A_V6}/64 dev wl0" in out["before"]
    assert out["flushed"] == ""  # the kernel's doing
    assert out["same_index"] and out["flap_s"] < 1.5
    assert out["delete_s"] < 2
    assert out["stale_s"] < 2
    assert f"{A_V4} dev wl0" in out["after"] and f"{A_V6}/64 dev wl0" in out["after"]
    assert "192.0.2.98 dev other0" in out["after"] and STALE_V4 not in out["after"]
    assert "proto babel" in out["babel"]
    status = out["status"]
    assert status["repaired"] == 2  # the two deleted by hand (the flap: re-added as such)
    assert status["installed"] == 2 and status["failing"] == 0 and status["failures"] == {}


def test_restart_keeps_routes_adopts_them_and_drops_only_unwanted_once_synced(netns):
    out = run_probe(netns, "restart")
    assert f"{A_V4} dev wl0" in out["after_stop"] and f"{A_V6}/64 dev wl0" in out["after_stop"]
    assert out["final_ras"] == 0  # no "router gone" on a restart
    assert out["held"] == 3  # A's two and the stale one, kept while not synced
    assert STALE_V4 in out["while_syncing"] and A_V4 in out["while_syncing"]
    assert out["synced_s"] < 2
    assert f"{A_V4} dev wl0" in out["after_sync"] and f"{A_V6}/64 dev wl0" in out["after_sync"]
    status = out["status"]
    # A's routes were adopted, never removed and added again (no outage).
    assert status["added"] == 0 and status["removed"] == 1 and status["held"] == 0
    assert status["installed"] == 2
    assert out["after_final_stop"] == ""
    assert out["final_ras_2"] >= 1


def test_periodic_reconcile_of_thousands_of_routes_lets_the_loop_run(netns):
    """Issue 11: the periodic reconcile read and compared 4,000 routes in one
    go (0.2 s and more, during which no DHCP message was answered: at 500
    exchanges/s, frames lost).  Now the loop runs other work between the
    parts of the dump; routes changed meanwhile are not undone."""
    out = run_probe(netns, "many")
    assert out["turns_during"] >= 3, out
    status = out["status"]
    assert status["repaired"] == 1 and status["failing"] == 0 and status["failures"] == {}
    assert out["has_deleted_by_hand"] and out["has_new"] and not out["has_removed"]
    assert out["kernel_routes"] == 4000  # 4000 - 1 removed + 1 added
    assert status["installed"] == 4000 and status["wanted"] == 4000
    assert out["armed_again"]
    assert out["after_stop"] == 0


def test_a_burst_of_leases_routes_in_batches(netns):
    """Issue 11: route changes to the kernel batched where a burst brings
    many.  Leases of 300 clients served here arrive at once (as a flooded
    dump brings them): their routes go in datagrams of up to rtnl.BATCH
    requests, the acknowledgements read after; one the kernel refuses
    (EEXIST, another route of the same metric) is told apart from the rest.
    Released at once, they go the same way."""
    out = run_probe(netns, "burst")
    batch = out["batch"]
    assert out["single"] == 0
    assert out["batches"] == [300]  # one call, split by Rtnl into datagrams
    assert out["sendmsg_add"] == -(-300 // batch)  # (3 datagrams of up to 128)
    status = out["status_after_add"]
    assert status["failing"] == 1 and status["failures"] == {"EEXIST": 1}
    assert status["installed"] == 299 and status["wanted"] == 300
    kernel = out["kernel_after_add"].splitlines()
    assert len(kernel) == 299 and not any(line.startswith("198.18.0.7 ") for line in kernel)
    # (the refused one was never in) The shadow routes (retract_proto 45, the
    # default) in batches first, then ours; the shadows go SHADOW_HOLD later.
    assert out["sendmsg_remove"] == 2 * -(-299 // batch)
    assert out["kernel_after_remove"] == ""
    assert out["status_after_remove"]["wanted"] == 0
    assert out["status_after_remove"]["removed"] == 299
    assert out["status_after_remove"]["shadows"] == 299


def test_shadow_timers_firing_after_a_stop_do_nothing(netns):
    """A withdrawal's shadow routes are deleted at stop; their timers, still
    firing after it, deleted them again on the closed netlink socket
    (failures["remove_EBADF"], an error logged per route)."""
    out = run_probe(netns, "late_shadows")
    assert A_V4 in out["before"] and out["shadows"] == 2
    assert out["failures"] == {}
    assert out["after"] == ""
