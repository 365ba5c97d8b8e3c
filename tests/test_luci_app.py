"""luci-app-sroamd: its files, and its views driven in headless Chromium.

No LuCI runtime can run here, so the views run in a real browser against
the smallest stand-in of LuCI's client API (tests/luci/standin.js) served
by tests/luci_standin.py, which answers ubus as rpcd would: with the app's
ACL enforced, UCI read from the shipped /etc/config/sroamd, and sroamd's
replies taken from a daemon running here (with the test ubus broker).
Screenshots land in $SROAMD_SCREENSHOTS (default: a temporary directory).
"""

import asyncio
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from floodpeer import FloodPeer
from luci_standin import ACL_FILE, APP, CHROMIUM, REPO, StandinServer, acl, run_page, uci_text
from sroamd import ubus_object
from sroamd.cli import load_config
from sroamd.store import association_key, ipv4_lease_key, ipv6_lease_key
from sroamd.uci import OPTIONS
from sroamd.wire.flood import Update
from test_ubus_client import next_item
from ubus_daemon import sroamd_on_ubus, until

VIEWS = APP / "htdocs" / "luci-static" / "resources" / "view" / "sroamd"
MENU_FILE = APP / "root" / "usr" / "share" / "luci" / "menu.d" / "luci-app-sroamd.json"
UCI_FILE = REPO / "files" / "etc" / "config" / "sroamd"


@pytest.fixture(scope="module")
def shots():
    where = os.environ.get("SROAMD_SCREENSHOTS")
    if where:
        os.makedirs(where, exist_ok=True)
        yield Path(where)
        return
    with tempfile.TemporaryDirectory(prefix="sroamd-luci-") as d:
        yield Path(d)


@pytest.fixture(scope="module")
def chromium():
    # scripts/install-deps.sh installs it: a missing browser is a failure, not a skip.
    assert CHROMIUM, "chromium is not installed (bash scripts/install-deps.sh)"
    return CHROMIUM


def rpc_calls(source: str) -> set[tuple[str, str]]:
    """The (object, method) pairs a view declares with rpc.declare()."""
    return set(re.findall(r"rpc\.declare\(\{\s*object:\s*'([^']+)',\s*method:\s*'([^']+)'", source))


# --- files -----------------------------------------------------------------------

def test_menu_and_acl_are_valid_and_consistent():
    menu = json.loads(MENU_FILE.read_text())
    grants = json.loads(ACL_FILE.read_text())
    assert list(grants) == ["luci-app-sroamd"]
    assert set(menu) == {"admin/services/sroamd", "admin/status/sroamd"}
    paths = {}
    for entry, node in menu.items():
        assert node["action"]["type"] == "view"
        view = VIEWS.parent.parent / "view" / (node["action"]["path"] + ".js")
        assert view.is_file(), f"{entry}: no {view}"
        assert node["depends"]["acl"] == ["luci-app-sroamd"]
        assert node["depends"]["uci"] == {"sroamd": True}
        assert node["title"]
        paths[entry] = node["action"]["path"]
    assert paths == {"admin/services/sroamd": "sroamd/settings",
                     "admin/status/sroamd": "sroamd/status"}

    # The ACL grants what the views call, and nothing more: sroamd's own
    # methods (read), the sroamd UCI config (read, write).
    called = set()
    for view in VIEWS.glob("*.js"):
        called |= rpc_calls(view.read_text())
    grant = acl()
    granted = {(obj, m) for part in ("read", "write")
               for obj, methods in grant.get(part, {}).get("ubus", {}).items() for m in methods}
    assert granted == called
    assert {obj for obj, _ in called} == {"sroamd"}
    daemon_methods = set(ubus_object.methods(None))
    assert {m for _, m in called} <= daemon_methods
    assert grant["read"]["uci"] == ["sroamd"] and grant["write"] == {"uci": ["sroamd"]}


def test_recipe_is_on_luci_mk():
    text = (APP / "Makefile").read_text()
    assert "include $(TOPDIR)/feeds/luci/luci.mk" in text
    assert re.search(r"^LUCI_DEPENDS:=\+luci-base \+sroamd$", text, re.M)
    assert re.search(r"^LUCI_PKGARCH:=all$", text, re.M)
    assert re.search(r"^PKG_RELEASE:=\d+$", text, re.M)


# --- the settings form ------------------------------------------------------------

def uci_option_names(text: str) -> set[str]:
    """Every option the file sets or shows commented out."""
    return set(re.findall(r"^\s*#?\s*(?:option|list)\s+(\w+)\s", text, re.M))


def python_accepts(option: str, value, prefix=("192.0.2.0/24",)) -> bool:
    """Whether `sroamd -c FILE --check` takes a section with this value (run
    in process: the command line's own load_config, which exits 1 on an
    invalid configuration)."""
    values = {"prefix": list(prefix)} if option != "prefix" else {}
    values[option] = value
    with tempfile.TemporaryDirectory(prefix="sroamd-case-") as d:
        path = os.path.join(d, "sroamd")
        with open(path, "w") as f:
            f.write(uci_text({"main": {".type": "sroamd", **values}}))
        try:
            load_config(["-c", path, "--check"])
        except SystemExit as e:
            assert e.code == 1, e.code
            return False
    return True


# (option, value, stricter): stricter cases are values sroamd takes and the
# form refuses on purpose (spaces, Python's int("1_000"), netmask notation,
# scoped addresses, spaced hex).
CASES = [
    ("enabled", "1", False), ("enabled", "0", False),
    ("prefix", ["192.0.2.0/24"], False), ("prefix", ["2001:db8:4444::/48"], False),
    ("prefix", ["192.0.2.0/24", "2001:db8:4444::/48"], False),
    ("prefix", ["192.0.2.0/24", "192.0.2.0/24"], False),
    ("prefix", ["2001:db8::/64"], False), ("prefix", ["10.0.0.0/8"], False),
    ("prefix", ["::/0"], False),
    ("prefix", ["192.0.2.1/24"], False), ("prefix", ["192.0.2.0/31"], False),
    ("prefix", ["2001:db8::/80"], False), ("prefix", ["2001:db8::1/64"], False),
    ("prefix", ["192.0.2.0/24", "198.51.100.0/24"], False),
    ("prefix", ["2001:db8::/48", "2001:db8:1::/48"], False),
    ("prefix", ["foo"], False), ("prefix", ["192.0.2.0"], False),
    ("prefix", ["192.0.02.0/24"], False), ("prefix", ["192.0.2.0/255.255.255.0"], True),
    ("nameserver", ["10.0.0.42"], False), ("nameserver", ["2001:db8:1234::42"], False),
    ("nameserver", ["::ffff:192.0.2.1"], False), ("nameserver", ["1:2:3:4:5:6:7::"], False),
    ("nameserver", ["::"], False), ("nameserver", ["10.0.0.42", "2001:db8::53"], False),
    ("nameserver", ["1.2.3"], False), ("nameserver", ["256.1.1.1"], False),
    ("nameserver", ["2001:db8::g"], False), ("nameserver", ["1:2:3:4:5:6:7:8:9"], False),
    ("nameserver", ["1::2::3"], False), ("nameserver", ["10.0.0.42/32"], False),
    ("nameserver", ["fe80::1%wlan0"], True),
    ("port", "4444", False), ("port", "1", False), ("port", "65535", False),
    ("port", "0", False), ("port", "65536", False), ("port", "x", False), ("port", "-1", False),
    ("port", "1_000", True), ("port", " 4444", True),
    ("peer", ["[2001:db8:4444::1234]:4444"], False), ("peer", ["192.0.2.1:4444"], False),
    ("peer", ["[192.0.2.1]:4444"], False),
    ("peer", ["2001:db8::1:4444"], False), ("peer", ["[2001:db8::1]"], False),
    ("peer", ["[2001:db8::1]:0"], False), ("peer", ["[2001:db8::1]:70000"], False),
    ("peer", ["host.example:4444"], False), ("peer", ["192.0.2.1"], False),
    ("address", "192.168.44.1", False), ("address", "2001:db8::1", False),
    ("address", "192.168.44.1/24", False), ("address", "x", False),
    ("interface", ["wlan0"], False), ("interface", ["roam", "wlan1"], False),
    ("interface", ["abcdefghijklmno"], False),
    ("interface", ["a/b"], False), ("interface", ["wlan0:1"], False),
    ("interface", ["abcdefghijklmnop"], False), ("interface", ["has space"], False),
    ("station_source", "auto", False), ("station_source", "ubus", False),
    ("station_source", "hostapd", False), ("station_source", "none", False),
    ("station_source", "bogus", False),
    ("ubus_socket", "/var/run/ubus/ubus.sock", False), ("ubus_socket", "ubus.sock", False),
    ("hostapd_dir", "/var/run/hostapd", False), ("hostapd_dir", "run/hostapd", False),
    ("state_dir", "/etc/sroamd", False), ("state_dir", "etc", False),
    ("lease_time", "60", False), ("lease_time", "1800", False), ("lease_time", "604800", False),
    ("lease_time", "59", False), ("lease_time", "604801", False), ("lease_time", "1h", False),
    ("route_metric", "0", False), ("route_metric", "4294967295", False),
    ("route_metric", "4294967296", False), ("route_metric", "-1", False),
    ("retract_proto", "0", False), ("retract_proto", "45", False), ("retract_proto", "255", False),
    ("retract_proto", "256", False), ("retract_proto", "-1", False), ("retract_proto", "x", False),
    ("node_id", "0123456789abcdef", False), ("node_id", "01:23:45:67:89:AB:CD:EF", False),
    ("node_id", "0000000000000000", False), ("node_id", "0123456789abcde", False),
    ("node_id", "0123456789abcdeg", False), ("node_id", "0123456789abcdef00", False),
    ("node_id", "01 23 45 67 89 ab cd ef", True),
    ("flood_listen", ["2001:db8:4444::1"], False), ("flood_listen", ["192.0.2.1"], False),
    ("flood_listen", ["2001:db8::/64"], False),
    ("flood_allow", ["2001:db8:4444::/64"], False), ("flood_allow", ["192.0.2.7"], False),
    ("flood_allow", ["0.0.0.0/0"], False),
    ("flood_allow", ["192.0.2.1/24"], False), ("flood_allow", ["x"], False),
    ("max_data", "16", False), ("max_data", "200000", False), ("max_data", "10000000", False),
    ("max_data", "15", False), ("max_data", "10000001", False),
    ("sync_grace", "0", False), ("sync_grace", "3600", False), ("sync_grace", "3601", False),
    ("sync_grace", "1.5", False),
    ("debug", "0", False), ("debug", "2", False), ("debug", "9", False), ("debug", "10", False),
]
# The interface check needs a prefix (sroamd.config.validate): none given here.
NO_PREFIX_CASE = ("interface", ["wlan0"], [])

FULL_CONFIG = {
    "enabled": "1", "prefix": ["2001:db8:4444::/48", "192.168.44.0/24"],
    "nameserver": ["2001:db8:1234::42", "10.0.0.42"], "address": "192.168.44.1",
    "interface": ["roam", "wlan1"], "port": "4444",
    "peer": ["[2001:db8:4444::1234]:4444", "192.0.2.9:4444"],
    "flood_listen": ["2001:db8:4444::1"], "flood_allow": ["2001:db8:4444::/64"],
    "max_data": "200000", "node_id": "0123456789abcdef", "state_dir": "/etc/sroamd",
    "sync_grace": "10", "station_source": "ubus", "ubus_socket": "/var/run/ubus/ubus.sock",
    "hostapd_dir": "/var/run/hostapd", "lease_time": "1800", "route_metric": "128",
    "retract_proto": "45", "debug": "1",
}


def test_settings_form_covers_every_option_and_validates_as_sroamd_check(chromium, shots, tmp_path):
    shipped = UCI_FILE.read_text()
    assert uci_option_names(shipped) == set(OPTIONS), "the shipped file documents every option"
    assert set(FULL_CONFIG) == set(OPTIONS)
    cases = [{"option": o, "value": v} for o, v, _ in CASES]
    cases.append({"option": NO_PREFIX_CASE[0], "value": NO_PREFIX_CASE[1], "prefix": NO_PREFIX_CASE[2]})
    with StandinServer({"sroamd": shipped}, cases=cases, full_config=FULL_CONFIG) as server:
        result = run_page(server, "sroamd/settings", "settings", str(shots / "settings.png"))
        assert result["errors"] == [] and result["rendered"]
        assert result["requires"] == ["view", "form", "network"]

        # Every option the daemon knows is in the form, once, with help text,
        # as a list where UCI has a list.
        options = {o["name"]: o for o in result["options"]}
        assert len(options) == len(result["options"])
        assert set(options) == set(OPTIONS)
        for name, option in options.items():
            assert option["title"] and len(option["description"]) > 20, name
            assert option["list"] == OPTIONS[name][0], name
        # Values as the shipped file has them (enabled '0', the rest unset).
        assert options["enabled"]["initial"] == "0"
        # Roaming interfaces: netifd's logical networks and the devices.
        choices = [c[0] for c in options["interface"]["choices"]]
        assert choices == ["lan", "roam", "br-lan", "eth0", "wlan0", "wlan1"]

        # Every value the form accepts, sroamd --check accepts; every value
        # sroamd refuses, the form refuses; and the form is stricter only where said.
        disagreements = []
        for (option, value, stricter), seen in zip(CASES, result["cases"]):
            assert seen["option"] == option and not seen.get("missing"), seen
            daemon = python_accepts(option, value)
            expected = daemon and not stricter
            if stricter:
                assert daemon, f"{option} {value!r}: marked stricter, but sroamd refuses it too"
            if seen["accepted"] != expected:
                disagreements.append((option, value, seen["accepted"], daemon, seen["errors"]))
        assert disagreements == []
        no_prefix = result["cases"][-1]
        assert not python_accepts(*NO_PREFIX_CASE) and not no_prefix["accepted"]
        assert all(e for c in result["cases"] if not c["accepted"] for e in c["errors"])

        # A bad value: nothing is written, the error is shown at the option.
        assert "port" in result["invalid_refused"] and "65535" in result["shown_error"]
        assert "invalid_saved" not in result
        # Every option set and saved: committed, and sroamd --check takes the file.
        assert result["saved"]
        committed = server.committed["sroamd"]["main"]
        assert {k: v for k, v in committed.items() if not k.startswith(".")} == FULL_CONFIG
        assert all(code == 0 for _, _, code in server.calls), server.calls
    path = tmp_path / "sroamd"
    path.write_text(uci_text(server.committed["sroamd"]))
    done = subprocess.run([sys.executable, "-m", "sroamd", "-c", str(path), "--check"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    effective = json.loads(done.stdout)
    assert effective["port"] == 4444 and effective["node_id"] == "0123456789abcdef"
    assert effective["peers"] == FULL_CONFIG["peer"] and effective["debug"] == 1
    assert effective["interfaces"] == ["roam", "wlan1"]


# --- the status page ----------------------------------------------------------------

IFNAME = "sroamdlu0"  # not a real interface: only the ubus side is exercised
MAC1, MAC2, MAC3 = "02:00:00:00:bb:01", "02:00:00:00:bb:02", "02:00:00:00:bb:03"
OTHER_NODE = bytes.fromhex("0123456789abcdef")
METHODS = ("status", "peers", "clients", "leases", "roams")


def mac_bytes(text):
    return bytes.fromhex(text.replace(":", ""))


async def capture_daemon_replies(sock: str, state_dir: str) -> list[dict]:
    """Two rounds of `ubus call sroamd <method>` from a running daemon: a
    client served here with both leases, another AP's client, and then a
    roam away (the second round)."""
    loop = asyncio.get_running_loop()
    observer = None
    rounds = []
    async with sroamd_on_ubus(sock, IFNAME, [MAC1],
                              ["-P", "192.0.2.0/24", "-P", "2001:db8:4444::/48"],
                              state_dir) as daemon:
        try:
            hostapd, ubus, roams, port = daemon.hostapd, daemon.ubus, daemon.roams, daemon.port
            await until(daemon.served)
            node_id = bytes.fromhex((await ubus.call("sroamd", "status"))["node_id"])
            observer = FloodPeer(port)
            await hostapd.assoc(MAC2)
            await loop.run_in_executor(None, observer.wait_for,
                                       lambda p: p.has(association_key(mac_bytes(MAC2)), node_id), 5)
            # Leases from the domain: MAC1's (served here), MAC3's (another AP's).
            observer.send(
                Update(ipv4_lease_key(ipaddress.IPv4Address("192.0.2.10").packed), 1, mac_bytes(MAC1), 1800),
                Update(ipv6_lease_key(ipaddress.IPv6Address("2001:db8:4444:10::").packed[:8]), 1,
                       mac_bytes(MAC1), 5400),
                Update(ipv4_lease_key(ipaddress.IPv4Address("192.0.2.11").packed), 1, mac_bytes(MAC3), 1800),
                Update(association_key(mac_bytes(MAC3)), 1, OTHER_NODE, 5400))

            async def leases_in():
                leases = (await ubus.call("sroamd", "leases"))["leases"]
                return len(leases) == 3
            await until(leases_in)
            rounds.append({m: await ubus.call("sroamd", m) for m in METHODS})

            # MAC2 roams to the other AP.
            seqno = observer.data[association_key(mac_bytes(MAC2))].seqno
            observer.send(Update(association_key(mac_bytes(MAC2)), (seqno + 1) & 0xFFFF, OTHER_NODE, 5400))
            await next_item(hostapd.del_client)
            await next_item(roams)
            rounds.append({m: await ubus.call("sroamd", m) for m in METHODS})
        finally:
            if observer is not None:
                observer.close()
    assert daemon.returncode == 0 and "Traceback" not in daemon.log, daemon.log
    return rounds


@pytest.fixture(scope="module")
def daemon_rounds():
    with tempfile.TemporaryDirectory(prefix="ubus") as d:
        return asyncio.run(capture_daemon_replies(os.path.join(d, "ubus.sock"), d))


def cells(table):
    return [row for row in table[1:]]


def test_status_view_renders_a_running_daemons_replies_live(chromium, shots, daemon_rounds):
    first, second = daemon_rounds
    node_id = first["status"]["node_id"]
    with StandinServer({"sroamd": UCI_FILE.read_text()}, sroamd_rounds=daemon_rounds) as server:
        result = run_page(server, "sroamd/status", "status", str(shots / "status.png"))
        calls = list(server.calls)
    assert result["errors"] == [] and result["rendered"], result["errors"]
    assert result["requires"] == ["view", "rpc", "poll", "dom"]
    # Only granted calls, and every one answered.
    assert {(o, m) for o, m, _ in calls} == {("sroamd", m) for m in METHODS}
    assert all(code == 0 for _, _, code in calls)
    assert result["polls"] and result["poll_interval"] == 5000

    page = result["first"]
    node = dict((row[0], row[1]) for row in page["sroamd-node"])
    assert node["Node id"] == node_id
    assert node["Version"] == first["status"]["version"]
    assert node["Roaming interfaces"] == IFNAME
    assert node["Clients served here"] == "2"
    assert node["Leases (IPv4 / IPv6)"] == "2 / 1"
    # The clients served here, with their addresses.
    assert cells(page["sroamd-clients"]) == [
        [MAC1, IFNAME, "192.0.2.10", "2001:db8:4444:10::/64"], [MAC2, IFNAME, "-", "-"]]
    # All leases, with who serves their client.
    leases = cells(page["sroamd-leases"])
    assert [(r[0], r[1], r[3]) for r in leases] == [
        ("192.0.2.10", MAC1, "this node"), ("192.0.2.11", MAC3, OTHER_NODE.hex()),
        ("2001:db8:4444:10::/64", MAC1, "this node")]
    assert re.fullmatch(r"(\d+m )?\d+s", leases[0][2])
    # The peer session the test's flooding peer opened.
    sessions = cells(page["sroamd-sessions"])
    assert len(sessions) == 1 and sessions[0][1] == "in" and sessions[0][2] == "established"
    assert cells(page["sroamd-peers"]) == [["No peers configured"]]
    # Handling times of the associations, from status.assoc_ms.
    times = dict((row[0], row[1]) for row in page["sroamd-times"])
    assert times["Associations measured"] == str(len(first["status"]["assoc_ms"])) != "0"
    assert times["Median"].endswith(" ms")
    # Counters: the malformed count is there, zero here.
    counters = cells(page["sroamd-counters"])
    assert ["Flooding", "malformed peer messages", "0"] in counters
    assert not page["sroamd-roams"][1:] or "No roam" in page["sroamd-roams"][1][0]

    # Refreshed by poll: the roam away shows without a reload.
    assert second["roams"]["total"] == 1
    page = result["refreshed"]
    roams = cells(page["sroamd-roams"])
    assert len(roams) == 1
    assert roams[0][1:] == [MAC2, f"left {IFNAME}", OTHER_NODE.hex()]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", roams[0][0])
    assert [r[0] for r in cells(page["sroamd-clients"])] == [MAC1]
    node = dict((row[0], row[1]) for row in page["sroamd-node"])
    assert node["Roams in / out / re-claims"].startswith("0 / 1 /")
    assert result["refreshed_error"] == ""


def test_status_view_of_a_sroamd_without_roams(chromium, shots, daemon_rounds):
    """An older sroamd, without `roams`: the rest of the page still shows."""
    older = [{m: r for m, r in rounds.items() if m != "roams"} for rounds in daemon_rounds]
    with StandinServer({"sroamd": UCI_FILE.read_text()}, sroamd_rounds=older) as server:
        result = run_page(server, "sroamd/status", "status", str(shots / "status-older.png"),
                          budget_ms=8000)
    assert result["errors"] == [] and result["rendered"] and result["first_error"] == ""
    assert [r[0] for r in cells(result["first"]["sroamd-clients"])] == [MAC1, MAC2]
    assert "sroamd-roams" not in result["first"]
    assert "keeps no roam history" in result["text"]


def test_status_view_says_when_sroamd_does_not_answer(chromium, shots):
    with StandinServer({"sroamd": UCI_FILE.read_text()}, sroamd_rounds=None) as server:
        result = run_page(server, "sroamd/status", "status", str(shots / "status-down.png"),
                          budget_ms=8000)
    assert result["errors"] == [] and result["rendered"]
    assert "sroamd does not answer on ubus" in result["first_error"]
    assert "ubus code 4" in result["first_error"]
