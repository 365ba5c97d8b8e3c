"""A client's route that sroamd deletes is retracted in Babel (real babeld).

babeld 1.12.1 retracts ::/0 instead of a redistributed route that leaves the
kernel (routes.py explains it, and the workaround: a shadow route of
protocol 45 for an instant).  Here an AP's RouteManager installs a /32 and a
/64, the server's babeld learns them, the AP deletes one, and the server's
babeld (its local interface, `monitor`) must see the AP's route retracted
(metric 65535) within a second (babeld 1.12.1 with `redistribute proto 45
metric 65534`, as the README says).  The control test shows babeld's own
behaviour without the shadow: if it ever fails, babeld retracts correctly
and the workaround can go.
"""

import os
import subprocess
import sys
import time

import pytest

from netlab import missing_requirements, wait_for

_missing = missing_requirements("babeld", "hostapd")
pytestmark = pytest.mark.skipif(_missing is not None, reason=_missing or "")

if _missing is None:
    from rig import REPO, Rig

V4, V6 = "192.0.2.72/32", "2001:db8:4444:72::/64"


@pytest.fixture(scope="module")
def rig():
    # hello-interval 1: a route not refreshed expires after ~14 s, well
    # after the second in which a retraction must come (at 0.1 s it would
    # expire in ~1.4 s, and an expiry looks like a retraction).
    with Rig(aps=1, start_sroamd=False, babel=["default hello-interval 1"]) as rig:
        rig.babel_monitors()
        yield rig


def retraction_ms(rig, retract_proto: int, victim: str) -> float | None:
    """Install both routes on the AP, delete `victim`: when the server's
    babeld saw the AP's route to it retracted (ms), None if not within 1 s."""
    ap = rig.aps[0]
    hop = rig.backbone_link_local(ap)
    srv = rig.babel_monitors()["srv"]
    probe = subprocess.Popen(
        ["ip", "netns", "exec", ap.ns.name, "env", f"PYTHONPATH={REPO}", sys.executable,
         os.path.join(REPO, "tests", "retract_probe.py"), ap.ap.ifname, str(retract_proto)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        start = time.monotonic()
        assert probe.stdout.readline().strip() == "added"
        for prefix in (V4, V6):
            wait_for(lambda: any(e.prefix == prefix and e.via == hop and e.metric < 65535
                                 for e in srv.since(start)), timeout=10,
                     what=f"server learns {prefix}")
        time.sleep(0.3)
        deleted = time.monotonic()
        probe.stdin.write(victim + "\n")
        probe.stdin.flush()
        assert probe.stdout.readline().startswith(f"removed {victim}")
        time.sleep(1.0)
        for e in srv.since(deleted):
            if e.prefix == victim and e.via == hop and (e.metric == 65535 or e.op == "flush"):
                return (e.at - deleted) * 1000
        return None
    finally:
        probe.stdin.close()
        probe.wait(5)
        # (what the probe left is removed by hand, for the next test)
        for args in (["route", "flush", "proto", "44"], ["-6", "route", "flush", "proto", "44"]):
            ap.ns.ip(*args, check=False)
        time.sleep(1.5)


@pytest.mark.parametrize("victim", [V4, V6])
def test_deleted_route_is_retracted_with_shadow(rig, victim):
    ms = retraction_ms(rig, 45, victim)
    assert ms is not None, f"the server never saw {victim} retracted"
    assert ms < 1000


def test_babeld_alone_does_not_retract(rig):
    """babeld 1.12.1 without the shadow: the /32 stays at the server."""
    ms = retraction_ms(rig, 0, V4)
    assert ms is None, (f"babeld retracted {V4} by itself after {ms:.0f} ms: it is fixed, "
                        "sroamd's shadow routes (--retract-proto) may go")
