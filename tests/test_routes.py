"""sroamd.routes against the kernel, with pyroute2 0.9.x (system) and 0.7.9 (OpenWrt).

The 0.7.9 run uses a venv made once with `pip install pyroute2==0.7.9`
(kept in $SROAMD_PYROUTE2_VENV, default /tmp/sroamd-venv-pyroute2-0.7.9).
"""

import json
import os
import secrets
import subprocess
import sys

import pytest

from netlab import missing_requirements

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OLD_VERSION = "0.7.9"
# With construct (an sroamd dependency: python3-construct on OpenWrt), which
# sroamd.rtnl uses to encode route changes (sroamd.wire.rtnetlink).
CONSTRUCT_VERSION = "2.10.70"
VENV = os.environ.get("SROAMD_PYROUTE2_VENV",
                      f"/tmp/sroamd-venv-pyroute2-{OLD_VERSION}-construct-{CONSTRUCT_VERSION}")

pytestmark = pytest.mark.skipif(missing_requirements() is not None,
                                reason=str(missing_requirements()))


def old_pyroute2_python() -> str:
    python = os.path.join(VENV, "bin", "python")
    check = [python, "-c", "import construct, pyroute2; print(pyroute2.__version__)"]
    if os.path.exists(python):
        cp = subprocess.run(check, capture_output=True, text=True)
        if cp.returncode == 0 and cp.stdout.strip() == OLD_VERSION:
            return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True)
    cp = subprocess.run([python, "-m", "pip", "install", "-q", f"pyroute2=={OLD_VERSION}",
                         f"construct=={CONSTRUCT_VERSION}"], capture_output=True, text=True)
    if cp.returncode != 0:
        pytest.skip(f"cannot install pyroute2=={OLD_VERSION} and construct in a venv: "
                    f"{cp.stderr[-500:]}")
    return python


@pytest.fixture
def netns():
    name = f"sroamd-rt-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for args in (["link", "set", "lo", "up"],
                     ["link", "add", "wl0", "type", "veth", "peer", "name", "wl1"],
                     ["link", "set", "wl0", "up"], ["link", "set", "wl1", "up"],
                     ["addr", "add", "192.0.2.1/24", "dev", "wl0"],
                     ["addr", "add", "fe80::44/64", "dev", "wl0", "nodad"],
                     ["addr", "add", "2001:db8:4444:1::1/64", "dev", "wl0", "nodad"]):
            subprocess.run(["ip", "-n", name, *args], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.parametrize("which", ["system", OLD_VERSION])
def test_routes_with_pyroute2(netns, which):
    python = sys.executable if which == "system" else old_pyroute2_python()
    cp = subprocess.run(["ip", "netns", "exec", netns, python,
                         os.path.join(HERE, "routes_probe.py"), "wl0"],
                        capture_output=True, text=True, timeout=60,
                        env=dict(os.environ, PYTHONPATH=ROOT))
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout.strip().splitlines()[-1])
    if which != "system":
        assert out["version"] == OLD_VERSION
    # Linux 4.20+ filters the dump of routes by protocol itself.
    assert out["strict"] is True
    # Adopted at start (held), removed once released; babeld's route is not ours.
    assert out["held"] == 1 and "192.0.2.99 dev wl0" in out["held_table"]
    assert out["stale_removed"] == 1
    assert out["add_v4"] and out["add_v4_again"] and out["add_v6"]
    assert "192.0.2.77 dev wl0" in out["table_v4"]
    assert "192.0.2.99" not in out["table_v4"]
    assert "2001:db8:4444:7::/64 dev wl0" in out["table_v6"]
    # A clash is refused, reported and counted, and the other route stays.
    assert out["add_clash"] is False
    assert out["status"]["failures"] == {"EEXIST": 1}
    assert "EEXIST" in cp.stderr and "kernel-priority 256" in cp.stderr
    assert "proto babel" in out["babel_route_kept"]
    # A route deleted by hand is put back by the next reconcile, once; the
    # clashing route is tried again quietly (logged once).
    assert out["repaired"] == 1 and out["repair_adds"] == 1
    assert out["second_reconcile_adds"] == 1
    assert "2001:db8:4444:7::/64 dev wl0" in out["table_v6_repaired"]
    assert cp.stderr.count("cannot install route 192.0.2.88/32") == 1
    assert out["remove_v4"] is True and out["remove_v4_again"] is False
    # remove_all (a stop for good) leaves no proto-44 route on the interface.
    assert out["after_v4"] == "" and out["after_v6"] == ""
    # Withdrawn with a shadow route each (routes.py): nothing of either left;
    # a shadow left behind (a crash mid-withdrawal) removed by the reconcile.
    assert out["shadow_removed"] == [True, True]
    assert "192.0.2.76 dev wl0 scope link metric 129" in out["shadow_held"]
    assert "2001:db8:4444:7::/64 dev wl0 metric 129" in out["shadow_held"]
    assert out["shadow_delays"] == [0.05, 0.05]
    assert "192.0.2.76" in out["shadow_held_reconciled"]
    assert out["shadow_left"] == "" and out["shadow_routes_left"] == ""
    assert out["stale_shadow_left"] == ""
    assert out["shadow_status"]["shadows"] == 2 and out["shadow_status"]["stale_shadows"] == 1
    # The link table (index, MAC, state, addresses; the shared link-local preferred).
    link = out["link"]
    assert link["name"] == "wl0" and link["old"] is None and link["index"] > 0
    assert link["up"] is True and link["ipv6"] == ["2001:db8:4444:1::1"]
    assert link["ipv4"] == ["192.0.2.1"] and link["link_local"] == "fe80::44"
    # Only the message classes were loaded until pyroute2's top level was used.
    assert out["pyroute2_modules"] < 20
