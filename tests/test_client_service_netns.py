"""The client service end to end, in network namespaces (root only).

An AP namespace runs the daemon (python3 -m sroamd, tests/daemon_netns.py)
on wl0 with 192.0.2.1/24 and fe80::44; clients are namespaces on the AP's
"air" bridge: busybox udhcpc, ISC dhclient, dhcpcd, rdisc6, the kernel's
SLAAC, and tests/client_probe.py for RSs from ::, malformed packets and
sniffing.  The daemon is inspected through its own interfaces only:
counters from `ubus call sroamd status` (a test ubusd), leases from a flood
test peer, and station events from a stand-in hostapd on ubus.
"""

import json
import os
import secrets
import signal
import sys
import time

import pytest

from daemon_netns import Daemon, close_daemons, lease_table
from netlab import Lab, missing_requirements, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROBE = os.path.join(HERE, "client_probe.py")
PREFIX4 = "192.0.2.0/24"
PREFIX6 = "2001:db8:4444::/48"
GATEWAY = "192.0.2.1"
DNS4, DNS6 = "192.0.2.53", "2001:db8::53"

_missing = missing_requirements("busybox", "dhclient", "dhcpcd", "rdisc6")
pytestmark = pytest.mark.skipif(_missing is not None, reason=str(_missing))


def Service(lab, ns, interfaces=("wl0",), extra=(), stations=()):
    """The daemon serving interfaces in namespace ns (tests/daemon_netns.py)."""
    return Daemon(lab, ns, ["-d", "2", "-P", PREFIX4, "-P", PREFIX6, "-N", DNS4, "-N", DNS6,
                            "-a", GATEWAY, *extra, *interfaces], stations=stations)


def served(service):
    """How many clients the daemon serves (roaming engine), from ubus status."""
    return service.status()["clients"]


def make_ap(lab, name):
    ap = lab.access_point(name)
    ap.ns.addr("wl0", f"{GATEWAY}/24")
    ap.ns.ip("addr", "add", "fe80::44/64", "dev", "wl0")
    return ap


def make_client(lab, ap, prefix="c"):
    return lab.client(f"{prefix}{secrets.token_hex(2)}", ap, ifname=f"{prefix}{secrets.token_hex(3)}")


def probe(client, *args, timeout=20):
    cp = client.ns.run("env", f"PYTHONPATH={ROOT}", sys.executable, PROBE, args[0],
                       client.ifname, *args[1:], timeout=timeout)
    return json.loads(cp.stdout.strip().splitlines()[-1])


def routes44(ap, family="-4"):
    return ap.ns.ip(family, "route", "show", "proto", "44")


def udhcpc_script(lab, client):
    out = os.path.join(lab.dir, f"udhcpc-{client.name}.out")
    script = out + ".sh"
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho \"$1 ip=$ip subnet=$subnet router=$router dns=$dns "
                f"lease=$lease serverid=$serverid\" >> {out}\n"
                # Configure the address, so that unicast renewals and releases go out.
                "case $1 in\n"
                "bound|renew) ip addr replace $ip/32 dev $interface;"
                " ip route replace $router dev $interface;;\n"
                "deconfig) ip addr flush dev $interface;;\n"
                "esac\n")
    os.chmod(script, 0o755)
    return script, out


def events(path):
    """The lines a client's script wrote: {"event": ..., "ip": ..., ...}."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [dict([("event", line.split()[0])] + [kv.split("=", 1) for kv in line.split()[1:]])
                for line in f if line.strip()]


def udhcpc_once(lab, client, *extra):
    script, out = udhcpc_script(lab, client)
    client.ns.run("busybox", "udhcpc", "-i", client.ifname, "-f", "-q", "-n", "-t", "4",
                  "-T", "1", "-s", script, *extra, timeout=20)
    bound = [e for e in events(out) if e["event"] == "bound"]
    assert bound, events(out)
    return bound[-1]


@pytest.fixture
def lab():
    with Lab(dad=False) as lab:
        try:
            yield lab
        finally:
            close_daemons(lab)  # each before its ubusd, before the Lab goes


@pytest.fixture(scope="module")
def one_ap():
    """One AP serving, shared by the tests that only add clients."""
    with Lab(dad=False) as lab:
        try:
            ap = make_ap(lab, "ap1")
            yield lab, ap, Service(lab, ap.ns)
        finally:
            close_daemons(lab)


def check_lease(lease, address_key="ip"):
    import ipaddress
    assert ipaddress.ip_address(lease[address_key]) in ipaddress.ip_network(PREFIX4)
    assert lease[address_key] != GATEWAY


def test_udhcpc_gets_lease_and_renews(one_ap):
    lab, ap, service = one_ap
    client = make_client(lab, ap, "u")
    script, out = udhcpc_script(lab, client)
    proc = client.ns.spawn(["busybox", "udhcpc", "-i", client.ifname, "-f", "-t", "4", "-T", "1",
                            "-s", script], name="udhcpc")
    bound = wait_for(lambda: [e for e in events(out) if e["event"] == "bound"], 10,
                     what="udhcpc lease")[-1]
    check_lease(bound)
    assert (bound["subnet"], bound["router"], bound["dns"]) == ("255.255.255.255", GATEWAY, DNS4)
    assert (bound["serverid"], bound["lease"]) == (GATEWAY, "1800")
    assert f"{bound['ip']} dev wl0" in routes44(ap)
    proc.signal(signal.SIGUSR1)  # renew now (unicast REQUEST with ciaddr)
    renew = wait_for(lambda: [e for e in events(out) if e["event"] == "renew"], 10,
                     what="udhcpc renewal")[-1]
    assert renew["ip"] == bound["ip"] and renew["lease"] == "1800"
    proc.stop()


def test_dhclient_gets_lease_and_reboots_into_it(one_ap):
    lab, ap, service = one_ap
    client = make_client(lab, ap, "i")
    out = os.path.join(lab.dir, f"dhclient-{client.name}.out")
    script = out + ".sh"
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho \"$reason ip=$new_ip_address subnet=$new_subnet_mask "
                f"router=$new_routers dns=$new_domain_name_servers\" >> {out}\n")
    os.chmod(script, 0o755)
    base = ["dhclient", "-1", "-4", "-sf", script, "-lf", out + ".leases", "-pf", out + ".pid"]
    try:
        client.ns.run(*base, client.ifname, timeout=30)
        client.ns.run(*base, "-x", client.ifname, timeout=30, check=False)  # stop, keep lease
        client.ns.run(*base, client.ifname, timeout=30)  # INIT-REBOOT with the saved lease
    finally:
        client.ns.run(*base, "-x", client.ifname, timeout=30, check=False)
    found = {e["event"]: e for e in events(out)}
    bound, reboot = found["BOUND"], found["REBOOT"]
    check_lease(bound)
    assert (bound["subnet"], bound["router"], bound["dns"]) == ("255.255.255.255", GATEWAY, DNS4)
    assert reboot["ip"] == bound["ip"]
    assert f"{bound['ip']} dev wl0" in routes44(ap)


def test_dhcpcd_gets_lease_and_rebinds(one_ap):
    lab, ap, service = one_ap
    client = make_client(lab, ap, "d")
    out = os.path.join(lab.dir, f"dhcpcd-{client.name}.out")
    script = out + ".sh"
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho \"$reason ip=$new_ip_address subnet=$new_subnet_mask "
                f"router=$new_routers dns=$new_domain_name_servers\" >> {out}\n")
    os.chmod(script, 0o755)
    argv = ["dhcpcd", "-1", "-4", "-w", "-A", "-t", "15", "-c", script, client.ifname]
    try:
        client.ns.run(*argv, timeout=30)
        address = client.ns.ip("-4", "-o", "addr", "show", "dev", client.ifname).split()[3]
        assert address.endswith("/32")
        check_lease({"ip": address[:-3]})
        assert f"default via {GATEWAY}" in client.ns.ip("route")
        again = client.ns.run(*argv, timeout=30)  # with the saved lease: rebinding
        assert f"leased {address[:-3]}" in again.stderr + again.stdout
        assert f"{address[:-3]} dev wl0" in routes44(ap)
    finally:
        client.ns.run("dhcpcd", "-x", client.ifname, check=False)
        for path in (f"/var/lib/dhcpcd/{client.ifname}.lease",
                     f"/var/lib/dhcpcd/{client.ifname}.lease6"):
            if os.path.exists(path):
                os.unlink(path)
    bound = [e for e in events(out) if e["event"] in ("BOUND", "REBIND", "REBOOT", "RENEW")]
    assert len(bound) >= 2, events(out)
    for e in bound:
        assert (e["ip"], e["subnet"], e["router"], e["dns"]) == \
            (address[:-3], "255.255.255.255", GATEWAY, DNS4)


def test_rdisc6_and_rs_from_unspecified_get_own_64(one_ap):
    lab, ap, service = one_ap
    client = make_client(lab, ap, "r")
    out = client.ns.run("rdisc6", "-1", "-w", "2000", client.ifname, timeout=20).stdout
    assert "from fe80::44" in out
    prefix = [line.split(":", 1)[1].strip() for line in out.splitlines()
              if line.strip().startswith("Prefix")][0]
    assert prefix.startswith("2001:db8:4444:") and prefix.endswith("::/64")
    assert f"Recursive DNS server     : {DNS6}" in out
    assert "DNS server lifetime     :         3600" in out  # seconds
    assert f"{prefix} dev wl0" in routes44(ap, "-6")
    # From :: without a source link-layer option (as during DAD): answered
    # to ff02::1 at the client's MAC, the same /64.
    [ra] = probe(client, "rs", "--unspecified")
    assert ra["ip_dst"] == "ff02::1" and ra["ip_src"] == "fe80::44" and ra["checksum_ok"]
    assert ra["prefixes"] == [prefix[:-3]] and ra["valid"] == [3600]
    assert ra["rdnss"] == [DNS6] and ra["rdnss_lifetime"] == 3600


def test_malformed_packets_are_dropped_and_counted(one_ap):
    lab, ap, service = one_ap
    before = service.status()["service"]
    client = make_client(lab, ap, "m")
    assert probe(client, "dhcp-garbage") == {"sent": 4}
    ras = probe(client, "rs", "--bad")
    assert len(ras) == 1 and ras[0]["prefixes"]  # the good RS after the bad ones
    check_lease(udhcpc_once(lab, client))
    after = service.status()["service"]
    dhcp_dropped = after["dhcp"]["dropped"].get("malformed", 0) - \
        before["dhcp"]["dropped"].get("malformed", 0)
    assert dhcp_dropped == 4
    ra_dropped = {k: v - before["ra"]["dropped"].get(k, 0) for k, v in after["ra"]["dropped"].items()}
    assert ra_dropped == {"bad_checksum": 1, "bad_hop_limit": 1, "malformed": 1}


def test_kernel_slaac_routes_release_restart_and_stop(lab):
    ap = make_ap(lab, "ap1")
    service = Service(lab, ap.ns)
    peer = service.peer()
    client = make_client(lab, ap, "k")
    client.ns.run("sysctl", "-qw", f"net.ipv6.conf.{client.ifname}.accept_ra=1")
    client.ns.ip("link", "set", client.ifname, "down")
    client.ns.up(client.ifname)  # the kernel sends an RS
    addr = wait_for(lambda: [w for w in client.ns.ip("-6", "-o", "addr", "show", "dev", client.ifname,
                                                     "scope", "global").split()
                             if w.startswith("2001:db8:4444:")], 10, what="SLAAC address")[0]
    prefix64 = addr.split("/")[0].rsplit(":", 4)[0] + "::/64"
    assert f"default via fe80::44 dev {client.ifname}" in client.ns.ip("-6", "route")
    assert f"{prefix64} dev wl0" in routes44(ap, "-6")
    # DHCP, then DHCPRELEASE (SIGUSR2 makes udhcpc release): the /32 goes.
    script, out = udhcpc_script(lab, client)
    udhcpc = client.ns.spawn(["busybox", "udhcpc", "-i", client.ifname, "-f", "-t", "4",
                              "-T", "1", "-s", script], name="udhcpc")
    lease = wait_for(lambda: [e for e in events(out) if e["event"] == "bound"], 10,
                     what="udhcpc lease")[-1]
    assert lease["ip"] in routes44(ap)
    udhcpc.signal(signal.SIGUSR2)
    wait_for(lambda: lease["ip"] not in routes44(ap), 5, what="route removed on RELEASE")
    def released():  # (flooded as the RELEASE is handled; reaches the peer a moment later)
        table = lease_table(peer)
        return table if table.get(lease["ip"]) == "" else None
    leases = wait_for(released, 5, what="the release flooded to the peer")
    assert leases[lease["ip"]] == ""  # released: an empty value, flooded
    # A restart (SIGTERM: procd does it on every `uci commit`) must not be
    # seen by the client: the routes stay in the kernel and no RA says the
    # router is gone (before: final RA with router lifetime 0, routes removed).
    service.stop()
    assert f"{prefix64} dev wl0" in routes44(ap, "-6")
    time.sleep(1)
    assert "default via fe80::44" in client.ns.ip("-6", "route")
    # The new instance adopts the routes (held until its store is synced).
    service = Service(lab, ap.ns)
    routes = service.status()["service"]["routes"]
    assert routes["held"] == 1 and routes["added"] == 0
    assert f"{prefix64} dev wl0" in routes44(ap, "-6")
    # A stop for good (the init script's `stop`: SIGUSR2, then SIGTERM):
    # final RA (router lifetime 0) and no proto-44 route left.
    service.proc.signal(signal.SIGUSR2)
    log = service.stop()
    assert "stopping for good" in log
    assert routes44(ap) == "" and routes44(ap, "-6") == ""
    wait_for(lambda: "default via fe80::44" not in client.ns.ip("-6", "route"), 5,
             what="default route withdrawn by the final RA")


def test_arrival_sends_arp_na_ra_and_installs_routes(lab):
    ap = make_ap(lab, "ap1")
    service = Service(lab, ap.ns, stations=("wl0",))  # hostapd.wl0 on ubus
    client = make_client(lab, ap, "a")
    service.station("wl0", "assoc", client.mac)  # associated and authorized
    wait_for(lambda: served(service) == 1, 5, what="association handled")
    lease = udhcpc_once(lab, client)
    [ra] = probe(client, "rs")
    assert lease["ip"] in routes44(ap) and ra["prefixes"][0] in routes44(ap, "-6")
    service.station("wl0", "disassoc", client.mac)
    wait_for(lambda: served(service) == 0, 5, what="disassociation handled")
    assert routes44(ap) == "" and routes44(ap, "-6") == ""
    sniffer = client.ns.spawn(["env", f"PYTHONPATH={ROOT}", sys.executable, PROBE, "sniff",
                               client.ifname, "5"], name="sniff")
    wait_for(lambda: "listening" in sniffer.output(), 5, what="sniffer")
    t0 = time.monotonic()
    handled = len(service.status()["assoc_ms"])
    service.station("wl0", "assoc", client.mac)
    # (handled synchronously: once the daemon counts it, routes and ARP/NA are done)
    wait_for(lambda: len(service.status()["assoc_ms"]) > handled, 2, interval=0.005,
             what="association handled")
    assert served(service) == 1
    assert f"{lease['ip']} dev wl0" in routes44(ap)
    assert f"{ra['prefixes'][0]}/64 dev wl0" in routes44(ap, "-6")
    sniffer.popen.wait(10)
    seen = json.loads(sniffer.output().strip().splitlines()[-1])
    assert time.monotonic() - t0 < 2
    ap_mac = ap.mac.replace(":", "")
    assert seen["arp"] == {"op": 2, "src_mac": ap_mac, "sender_mac": ap_mac, "sender_ip": GATEWAY}
    assert seen["na"] == {"override": True, "checksum_ok": True, "target": "fe80::44",
                          "tlla": ap_mac}
    assert seen["ra"]  # a fresh RA for its /64 at once


def test_two_aps_share_leases_through_flooding(lab):
    aps = [make_ap(lab, "ap1"), make_ap(lab, "ap2")]
    for i, ap in enumerate(aps):
        lab.backbone(ap.ns)
        ap.ns.addr("eth0", f"198.51.100.{i + 1}/24")
    # (each daemon listens on port 4444 of its namespace, tests/daemon_netns.py)
    services = [Service(lab, aps[0].ns),
                Service(lab, aps[1].ns, extra=("-F", "198.51.100.1:4444"))]
    observer = services[1].peer()  # sees what ap2's store holds
    client = make_client(lab, aps[0], "t")
    first = udhcpc_once(lab, client)
    [ra1] = probe(client, "rs")
    wait_for(lambda: first["ip"] in lease_table(observer), 5, what="lease flooded to ap2")
    lab.roam(client, aps[1])
    second = udhcpc_once(lab, client)
    [ra2] = probe(client, "rs")
    assert second["ip"] == first["ip"]
    assert ra2["prefixes"] == ra1["prefixes"]
    assert f"{first['ip']} dev wl0" in routes44(aps[1])


def test_interface_missing_at_start_then_replaced(lab):
    ns = lab.netns("ap1")
    air = lab.air("air-ap1")
    service = Service(lab, ns)
    assert service.status()["service"]["interfaces"] == {"wl0": None}
    client = lab.client("c1", None, ifname="c1")
    lab.move_port(client.port, air)
    indexes = []
    for round in range(2):
        if round:
            ns.ip("link", "del", "wl0")
            wait_for(lambda: service.status()["service"]["interfaces"]["wl0"] is None, 5,
                     what="interface gone")
        lab.plug(ns, "wl0", air)
        ns.addr("wl0", f"{GATEWAY}/24")
        ns.ip("addr", "add", "fe80::44/64", "dev", "wl0")
        index = wait_for(lambda: service.status()["service"]["interfaces"]["wl0"], 5,
                         what="interface seen")
        indexes.append(index)
        lease = udhcpc_once(lab, client)
        check_lease(lease)
        assert f"{lease['ip']} dev wl0" in ns.ip("route", "show", "proto", "44")
        [ra] = probe(client, "rs")
        assert ra["prefixes"]
    assert indexes[0] != indexes[1]
