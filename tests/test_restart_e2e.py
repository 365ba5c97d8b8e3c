"""Restarts and quick bounces are invisible to a client: end to end (issue 10).

Real babeld, hostapd (wired 802.1X), wpa_supplicant, busybox udhcpc and the
kernel's SLAAC in network namespaces (tests/rig.py), a UDP probe every 10 ms
from the client to the server over IPv4 and over IPv6.

Restart (SIGTERM, as procd's restart or a reload after `uci commit`; and
SIGKILL with a respawn 5 s later, procd's default respawn timeout) of sroamd
on the AP that serves the client:

  * no station kicked: hostapd still lists it authorized, in the same 802.1X
    session (no EAPOL-Start, no new session id); the supplicant stays
    authorized and starts no EAP exchange; hostapd reports no
    AP-STA-DISCONNECTED;
  * the routes stay: `ip monitor route` in the AP's namespace sees no
    deletion of the client's /32 or /64, from before the signal until after
    the restarted daemon has synced (when it removes what it no longer
    wants) and a settling time;
  * no outage: neither probe loses more than MAX_LOST probes in a row
    (counted by sequence number, so a probe process held back by the
    scheduler does not count as an outage);
  * the client keeps its IPv4 address, its IPv6 address and its IPv6
    default route (a router-lifetime-0 RA would remove that);
  * the node id is the same (state file and the "starting, node id" line),
    and the peers still see the station held by it.

Every check is made and the failures are reported together, with the
daemon's log lines that matter.  The same checks with every peer of the
serving AP down (sync from the grace period, from an empty store) are an
expected failure for now (see that test).

Ping-pong A -> B -> A with B's claim held in a relay until the client is
back at A: the station stays at A (test docstring).
"""

import os
import re
import signal
import time

import pytest

from netlab import CtrlMonitor, missing_requirements, wait_for

_missing = missing_requirements("babeld", "hostapd", "wpa_supplicant", "busybox")
pytestmark = pytest.mark.skipif(_missing is not None, reason=_missing or "")

if _missing is None:
    from daemon_netns import in_netns
    from relay import RelayHub, host_listener, host_socket
    from rig import (FLOOD_PORT, SERVER_V4, SERVER_V6, Rig, logged_node_id, probe_losses,
                     read_probes, route_events)

INTERVAL_MS = 10
MAX_LOST = 3  # probes lost in a row that still count as "no outage" (30 ms)
SETTLE = 2.0  # seconds watched after the restarted daemon has synced
PROCD_RESPAWN_DELAY = 5.0  # procd's default respawn timeout
SYNCED = re.compile(r"store synced")


# -- helpers -----------------------------------------------------------------

def supplicant_monitor(rig, client) -> CtrlMonitor:
    """An ATTACHed client of the client's wpa_supplicant control socket."""
    return CtrlMonitor(os.path.join(client.supplicant.ctrl_dir, client.client.ifname),
                       rig.lab.dir)


def drain(monitor: CtrlMonitor) -> list[str]:
    """Every event the monitor has received so far (a PING's reply comes after them)."""
    monitor.request("PING")
    events, monitor.events = monitor.events, []
    return events


def interesting(log: str, mac: str, limit: int = 40) -> str:
    """The lines of a sroamd log that tell what happened to the client."""
    keep = re.compile(rf"{mac}|route|synced|sync|kick|node id|shutting|starting|hostapd|"
                      r"error|Error|Traceback|WARNING")
    dump = re.compile(r"WARNING: (Node|Lease|Assoc|Client|Peer|Datum) ")  # SIGUSR1 dumps
    lines = [line for line in log.splitlines() if keep.search(line) and not dump.search(line)]
    return "\n".join(lines[-limit:])


def echoes_after(out: str, end: float, timeout: float = 5.0) -> list:
    """The probes of `out` once one sent after `end` has been echoed (a probe
    process that the scheduler holds back writes late); all of them anyway
    after timeout (probe_losses then says that connectivity did not return)."""
    try:
        wait_for(lambda: any(sent > end for _, sent, _ in read_probes(out)), timeout=timeout,
                 interval=0.1)
    except TimeoutError:
        pass
    return read_probes(out)


def default_route6(client) -> bool:
    return bool(client.ns.ip("-6", "route", "show", "default").strip())


def assoc_holder(rig, ap, mac: str) -> tuple[str, int] | None:
    """(holder node id, seqno) of mac's association in ap's store."""
    for line in rig.store_dump(ap):
        words = line.split()
        if words[0] == "Assoc" and words[1] == mac:
            return words[2], int(words[4])
    return None


# -- ping-pong ---------------------------------------------------------------

def test_ping_pong_roam_keeps_the_station_where_it_is():
    """A -> B -> A, with B's claim reaching A only after the client is back at A.

    Two APs whose daemons flood through one TCP relay (tests/relay.py): B's
    sroamd connects to a relay port in B's namespace that forwards to A's
    flooding port (A has no -F peer; no other path between them).  The relay
    holds everything (partition "hold") from before the client leaves A
    until it is back at A, and then delivers it in order: B's claim is in
    flight for the whole bounce, which is what a bounce faster than the
    flooding is, whatever its duration.  (The data flowing from A to B are
    held as well: the relay holds a link's two directions together.)

    With hostapd's wired driver the return to A must be a new association
    for hostapd to report it: a station that hostapd still has authorized
    and that authenticates again produces no AP-STA-CONNECTED (checked: a
    re-authentication of an authorized station emits no event at all), so
    A's sroamd would never learn of the return.  The client therefore says
    goodbye as it leaves A (EAPOL-Logoff, as a Wi-Fi station disassociates),
    logs on at B, and comes back to A once A's hostapd has forgotten it
    (~5 s: netlab's notes), which gives A AP-STA-DISCONNECTED on the way out
    and AP-STA-CONNECTED on the way back.  The bounce in which A hears
    nothing of the leave (its re-association alone makes the claim that
    beats B's) is covered in-process by
    tests/test_roaming.py::test_ping_pong_keeps_the_station_where_it_is.

    Then: B's claim reaches A late and changes nothing there; A's claim
    reaches B, which gives the station up and kicks it (it is not at B any
    more); A never kicks it, keeps its routes, hostapd at A keeps it
    authorized, both stores say A holds it, and the client's traffic flows.
    """
    with Rig(aps=2, start_sroamd=False) as rig:
        a, b = rig.aps
        hub = RelayHub()
        try:
            link = hub.link("b-to-a", (a.backbone_ip, FLOOD_PORT),
                            listener=in_netns(b.ns.name, host_listener),
                            connect_socket=lambda: in_netns(b.ns.name, host_socket))
            rig.start_sroamd(a, peers=[])
            rig.start_sroamd(b, peers=[f"127.0.0.1:{link.port}"])
            for ap in (a, b):
                wait_for(lambda: SYNCED.search(rig.sroamd_log(ap)), timeout=15,
                         what=f"{ap.name} synced")
            ping_pong(rig, hub, link, a, b)
        finally:
            hub.close()


def ping_pong(rig, hub, link, a, b):
    node_a, node_b = rig.node_id(a), rig.node_id(b)
    client = rig.add_client("c1", a)
    v4, _ = rig.wait_addresses(client)
    v6, prefix, mac = client.ipv6(), client.prefix64(), client.mac
    wait_for(lambda: rig.serves(a, f"{v4}/32") and rig.serves(a, prefix), timeout=10,
             what="routes at A")
    wait_for(lambda: assoc_holder(rig, b, mac) == assoc_holder(rig, a, mac), timeout=10,
             what="B knows A's claim")
    claimed = assoc_holder(rig, a, mac)
    assert claimed[0] == node_a
    probe = rig.start_udp_probe(client, interval_ms=INTERVAL_MS)

    # Out: A -> B, with the relay holding everything.
    hub.partition(link, "hold")
    with b.hostapd.monitor() as events_b:
        client.supplicant.logoff()
        wait_for(lambda: not a.hostapd.authorized(mac), timeout=5, what="A sees the leave")
        rig.lab.roam(client.client, b.ap)
        client.supplicant.logon()
        events_b.wait_event("AP-STA-CONNECTED " + mac, timeout=10)
    client.at = b
    wait_for(lambda: rig.serves(b, f"{v4}/32") and rig.serves(b, prefix), timeout=10,
             what="routes at B")
    claim_b = assoc_holder(rig, b, mac)
    assert claim_b[0] == node_b, claim_b

    # And back: B -> A, B's claim still held in the relay.
    log_a = len(rig.sroamd_log(a))
    routes_a = rig.watch_routes(a)
    with a.hostapd.monitor() as events_a:
        returned, _ = rig.roam(client, a)
        wait_for(lambda: rig.serves(a, f"{v4}/32") and rig.serves(a, prefix), timeout=10,
                 what="routes at A again")
        claim_a = assoc_holder(rig, a, mac)
        assert claim_a[0] == node_a, claim_a
        # Nothing crossed the relay: B still serves the client, A has not heard of B's claim.
        assert rig.serves(b, f"{v4}/32") and assoc_holder(rig, b, mac) == claim_b
        print(f"held in the relay: B's claim seqno {claim_b[1]}; A's claims: "
              f"before {claimed[1]}, after the return {claim_a[1]}")

        healed = time.monotonic()
        hub.heal(link)
        # B hears A's claim: it stops serving the client and kicks it there.
        wait_for(lambda: not rig.serves(b, f"{v4}/32") and not rig.serves(b, prefix),
                 timeout=10, what="B drops its routes")
        wait_for(lambda: "kicking it" in rig.sroamd_log(b), timeout=5, what="B kicks")
        wait_for(lambda: assoc_holder(rig, b, mac) == assoc_holder(rig, a, mac), timeout=10,
                 what="stores agree")
        time.sleep(SETTLE)  # anything late from B has had time to arrive at A
        seen_a = drain(events_a)
    routes_a.stop()

    problems = []
    holder_a, holder_b = assoc_holder(rig, a, mac), assoc_holder(rig, b, mac)
    if holder_a[0] != node_a or holder_b != holder_a:
        problems.append(f"stores: A says {holder_a}, B says {holder_b}; A is {node_a}")
    log = rig.sroamd_log(a)[log_a:]
    if "kicking it" in log:
        problems.append(f"A kicked the station: {interesting(log, mac)}")
    gone = [e for e in seen_a if "AP-STA-DISCONNECTED" in e and mac in e]
    if gone or not a.hostapd.authorized(mac):
        problems.append(f"hostapd on A disconnected the station: {gone}")
    if not client.supplicant.is_authorized():
        problems.append("the supplicant is not authorized")
    deleted = [line for line in route_events(routes_a, v4, prefix) if line.startswith("Deleted")]
    if deleted or not (rig.serves(a, f"{v4}/32") and rig.serves(a, prefix)):
        problems.append(f"A's routes went: {deleted}")
    if (client.ipv4(), client.ipv6(), client.prefix64()) != (v4, v6, prefix):
        problems.append("the client's addresses changed")
    for address in (v4, v6):
        try:
            wait_for(lambda: rig.ping(rig.server, address, timeout=0.5), timeout=10)
        except TimeoutError:
            problems.append(f"the server does not reach {address}")
    # Traffic flows again soon after the heal (Babel moves the route back), then without loss.
    end = time.monotonic()
    try:
        longest, lost, sent = probe_losses(echoes_after(probe, end), healed + 2.0, end)
        if lost:
            problems.append(f"probes lost from 2 s after the heal on: {lost}/{sent}")
        longest, lost, sent = probe_losses(read_probes(probe), returned, end)
        print(f"probe from the return to A on: longest loss {longest * INTERVAL_MS} ms, "
              f"{lost}/{sent} lost; the heal came {healed - returned:.1f} s after the return")
    except ValueError as e:
        probes = read_probes(probe)
        problems.append(f"probe: {e} (now {time.monotonic():.2f}, window end {end:.2f}, last "
                        f"echoes {probes[-3:]})")
    assert not problems, "\n".join(problems) + "\n--- A ---\n" + interesting(
        rig.sroamd_log(a), mac) + "\n--- B ---\n" + interesting(rig.sroamd_log(b), mac)


# -- restarts ----------------------------------------------------------------

@pytest.fixture(scope="module")
def served():
    """A rig with a client on ap1, addresses and routes in place, probes running."""
    with Rig() as rig:
        client = rig.add_client("c1", rig.aps[0])
        v4, _ = rig.wait_addresses(client)
        prefix = client.prefix64()
        wait_for(lambda: rig.serves(client.at, f"{v4}/32") and rig.serves(client.at, prefix),
                 timeout=10, what="routes at ap1")
        wait_for(lambda: rig.ping(client.ns, SERVER_V4, timeout=0.5), timeout=15,
                 what="client reaches the server (IPv4)")
        wait_for(lambda: rig.ping(client.ns, SERVER_V6, timeout=0.5), timeout=15,
                 what="client reaches the server (IPv6)")
        probes = {"IPv4": rig.start_udp_probe(client, interval_ms=INTERVAL_MS),
                  "IPv6": rig.start_udp_probe(client, interval_ms=INTERVAL_MS, server=SERVER_V6)}
        yield rig, client, probes


def restart_and_check(rig, client, probes, sig, respawn_delay=0.0, peers_up=True):
    ap = client.at
    others = [other for other in rig.aps if other is not ap]
    mac = client.mac
    v4, v6, prefix = client.ipv4(), client.ipv6(), client.prefix64()
    node = rig.node_id(ap)
    assert node and logged_node_id(ap.sroamd) == node, "node id before the restart"
    session = ap.hostapd.sta(mac)
    assert "[AUTHORIZED]" in session.get("flags", ""), session
    assert client.supplicant.is_authorized()
    assert rig.serves(ap, f"{v4}/32") and rig.serves(ap, prefix)
    assert default_route6(client)

    problems = []
    routes = rig.watch_routes(ap)
    with ap.hostapd.monitor() as hostapd_events, supplicant_monitor(rig, client) as supp_events:
        start = time.monotonic()
        restart = rig.restart_sroamd(ap, sig, respawn_delay)
        try:
            wait_for(lambda: SYNCED.search(restart.new.output()), timeout=30,
                     what="the restarted daemon to sync")
        except TimeoutError as e:
            problems.append(str(e))
        synced = time.monotonic()
        time.sleep(SETTLE)
        end = time.monotonic()
        hostapd_seen = drain(hostapd_events)
        supplicant_seen = drain(supp_events)
    routes.stop()

    timing = (f"{signal.Signals(sig).name}: exited after {restart.exited - restart.signalled:.2f} s"
              f" (code {restart.exit_code}{', SIGKILLed' if restart.killed else ''}), respawned "
              f"{restart.spawned - restart.exited:.1f} s later, up in "
              f"{restart.up - restart.spawned:.2f} s, synced {synced - restart.up:.2f} s later")
    if sig == signal.SIGTERM and (restart.killed or restart.exit_code != 0):
        problems.append(f"SIGTERM: no clean exit ({timing})")

    # The node id.
    if logged_node_id(restart.new) != node or rig.node_id(ap) != node:
        problems.append(f"node id changed: {node} -> logged {logged_node_id(restart.new)}, "
                        f"state file {rig.node_id(ap)}")

    # No station kicked, no new 802.1X session.
    gone = [e for e in hostapd_seen if "AP-STA-DISCONNECTED" in e and mac in e]
    if gone:
        problems.append(f"hostapd on {ap.name} disconnected the station: {gone}")
    after = ap.hostapd.sta(mac)
    if "[AUTHORIZED]" not in after.get("flags", ""):
        problems.append(f"hostapd on {ap.name} no longer lists {mac} authorized: {after or 'gone'}")
    for counter in ("dot1xAuthSessionId", "dot1xAuthEapolStartFramesRx",
                    "dot1xAuthEntersConnecting", "dot1xAuthEapolLogoffFramesRx"):
        if after and after.get(counter) != session.get(counter):
            problems.append(f"hostapd {counter}: {session.get(counter)} -> {after.get(counter)}"
                            " (the station authenticated again)")
    reauth = [e for e in supplicant_seen
              if re.search(r"CTRL-EVENT-(EAP-STARTED|EAP-FAILURE|DISCONNECTED)", e)]
    if reauth or not client.supplicant.is_authorized():
        problems.append(f"the supplicant authenticated again or lost authorization: "
                        f"{reauth}, {client.supplicant.status().get('suppPortStatus')}")

    # The routes stayed, here only.
    changes = route_events(routes, v4, prefix)
    deleted = [line for line in changes if line.startswith("Deleted")]
    if deleted:
        problems.append(f"routes deleted on {ap.name} during the restart: {deleted}")
    if not (rig.serves(ap, f"{v4}/32") and rig.serves(ap, prefix)):
        problems.append(f"routes missing on {ap.name} after the restart: "
                        f"{rig.routes(ap)} {rig.routes(ap, '-6')}")
    for other in others:
        if rig.serves(other, f"{v4}/32") or rig.serves(other, prefix):
            problems.append(f"{other.name} has routes for the client")

    # No outage.
    outages = {}
    for family, out in probes.items():
        try:
            longest, lost, sent = probe_losses(echoes_after(out, end), start, end)
        except ValueError as e:
            problems.append(f"{family} probe: {e}")
            continue
        outages[family] = f"{family} longest loss {longest} probes ({longest * INTERVAL_MS} ms)" \
                          f", {lost}/{sent} lost"
        if longest > MAX_LOST:
            problems.append(f"{family} probe outage: {outages[family]}")

    # The client's addresses and IPv6 default route.
    now = (client.ipv4(), client.ipv6(), client.prefix64())
    if now != (v4, v6, prefix):
        problems.append(f"client addresses changed: {(v4, v6, prefix)} -> {now}")
    if not default_route6(client):
        problems.append("the client lost its IPv6 default route (a router-lifetime-0 RA?)")

    # Nothing kicked, and the peers still see the station here.
    log = restart.new.output()
    if "kicking it" in log:
        problems.append("the restarted daemon kicked a station")
    for other in others if peers_up else []:
        holder = assoc_holder(rig, other, mac)
        if holder is None or holder[0] != node:
            problems.append(f"{other.name}'s store: association of {mac} = {holder}, not {node}")

    report = (f"{timing}; {'; '.join(outages.values())}; route changes seen: {changes}")
    print(report)
    assert not problems, ("\n".join(problems) + f"\n\n{report}\n\n--- old daemon (tail) ---\n"
                          + "\n".join(restart.old.output().splitlines()[-15:])
                          + "\n--- restarted daemon ---\n" + interesting(log, mac))


def test_sigterm_restart_is_invisible_to_the_client(served):
    rig, client, probes = served
    restart_and_check(rig, client, probes, signal.SIGTERM)


def test_sigkill_and_respawn_is_invisible_to_the_client(served):
    rig, client, probes = served
    restart_and_check(rig, client, probes, signal.SIGKILL, PROCD_RESPAWN_DELAY)


def test_restart_with_no_peer_reachable_is_invisible_to_the_client(served):
    """The serving AP restarts while none of its flooding peers is up (a
    one-AP site, an uplink down, the peers restarting too): nobody can give
    it the client's leases back, and sync comes from the grace period
    (10 s).  The adopted routes must stay for a station hostapd still lists.
    (Failed before sroamd/snapshot.py: the store came back empty and the
    routes were removed as nobody's once synced.)

    Last of the restart tests: it stops the other APs' daemons (SIGKILL,
    which leaves everything of theirs in place)."""
    rig, client, probes = served
    for other in rig.aps:
        if other is not client.at:
            other.sroamd.kill()
    restart_and_check(rig, client, probes, signal.SIGTERM, peers_up=False)
