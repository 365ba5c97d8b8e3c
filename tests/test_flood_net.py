"""Flooding between real sroamd processes on loopback.

Data are injected and observed only through test peers that speak the flood
protocol, as any other node would.
"""

import asyncio
import os
import signal
import socket
import time

import pytest

from floodpeer import FloodPeer, Node, free_port
from sroamd import flood as flood_module
from sroamd.flood import Flooder
from sroamd.store import Store, association_key, ipv4_lease_key
from sroamd.wire.flood import HANDSHAKE_BYTES, Update


@pytest.fixture
def network():
    """Starts sroamd nodes; kills every one of them afterwards."""
    nodes = []

    def start(peers_of):
        ports = [free_port() for _ in peers_of]
        for i, peers in enumerate(peers_of):
            # A peer is an index into this batch, or a Node started before.
            nodes.append(Node(ports[i], [j.port if isinstance(j, Node) else ports[j]
                                         for j in peers]))
        return nodes[-len(peers_of):]

    start.nodes = nodes
    yield start
    for node in nodes:
        node.kill()


@pytest.fixture
def peers():
    opened = []

    def connect(node, **kw):
        peer = FloodPeer(node.port, **kw)
        opened.append(peer)
        return peer

    yield connect
    for peer in opened:
        peer.close()


def lease(n: int, mac: bytes = b"\x02\0\0\0\0\x01", seqno=0, time_left=600) -> Update:
    return Update(ipv4_lease_key(bytes([192, 0, 2, n])), seqno, mac, time_left)


def everyone_has(observers, key, value=None, timeout=10.0):
    return all(o.wait_for(lambda p: p.has(key, value), timeout) for o in observers)


@pytest.mark.parametrize("topology", ["chain", "ring", "star"])
def test_update_reaches_every_node(network, peers, topology):
    n = 6
    if topology == "chain":
        links = [[]] + [[i - 1] for i in range(1, n)]
    elif topology == "ring":
        links = [[(i + 1) % n] for i in range(n)]
    else:
        links = [[]] + [[0] for _ in range(1, n)]
    nodes = network(links)
    observers = [peers(node) for node in nodes]
    source = observers[-1]
    update = lease(7)
    source.send(update)
    assert everyone_has(observers[:-1], update.key, update.value)
    # A later change floods too, and replaces the value everywhere.
    changed = lease(7, mac=b"\x02\0\0\0\0\x02", seqno=1)
    observers[0].send(changed)
    assert everyone_has(observers[1:], changed.key, changed.value)


def test_restarted_node_gets_the_whole_store_back(network, peers):
    a, b, c = network([[], [0], [1]])
    feeder = peers(a)
    updates = [lease(i) for i in range(1, 51)] + [
        Update(association_key(bytes([2, 0, 0, 0, 0, i])), 3, bytes(8), 900) for i in range(1, 21)]
    feeder.send(*updates)
    watch_c = peers(c)
    assert watch_c.wait_for(lambda p: len(p.data) == len(updates))

    b.kill(signal.SIGKILL)
    b.start()
    # b connects to a again (a -F peer) and c reconnects to b (backoff <= 30 s,
    # first retry after about 1 s).
    fresh = peers(b)
    assert fresh.wait_for(lambda p: len(p.data) == len(updates), timeout=10)
    assert all(fresh.data[u.key].value == u.value for u in updates)
    # And b floods again: a new datum entered at c reaches a through b.
    late = lease(200)
    watch_c.send(late)
    assert everyone_has([peers(a)], late.key, late.value, timeout=15)


@pytest.mark.parametrize("case", ["same_times", "times_do_not_matter"])
def test_conflicting_halves_converge_after_join(network, peers, case):
    """The greater value wins everywhere, whatever the remaining times (which
    transit delays make unreliable to compare: see sroamd/store.py)."""
    a, b, c, d = network([[], [0], [], [2]])  # halves: a-b and c-d
    key = ipv4_lease_key(bytes([192, 0, 2, 99]))
    low, high = b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x09"
    if case == "same_times":
        left, right, winner = Update(key, 4, low, 600), Update(key, 4, high, 600), high
    else:
        left, right, winner = Update(key, 4, low, 3000), Update(key, 4, high, 600), high
    peers(a).send(left)
    peers(d).send(right)
    watch = [peers(n) for n in (a, b, c, d)]
    assert everyone_has(watch[:2], key, left.value) and everyone_has(watch[2:], key, right.value)

    (bridge,) = network([[b, c]])  # joins the halves: connects to b and c
    watch.append(peers(bridge))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for w in watch:
            w.poll(0.02)
        if all(w.has(key, winner) for w in watch):
            break
    assert [w.data[key].value for w in watch] == [winner] * 5


def test_garbage_truncated_and_silent_peers_do_not_stop_a_node(network, peers):
    a, b = network([[], [0]])
    silent = socket.create_connection(("127.0.0.1", a.port))  # never says anything
    garbage = socket.create_connection(("127.0.0.1", a.port))
    garbage.sendall(b"GET / HTTP/1.0\r\n\r\n")
    truncated = FloodPeer(a.port)
    truncated.send_raw(bytes([2, 7, 0, 1, 0, 0, 0, 9, 1]))  # key length past the body
    # The daemon closed the two bad sessions...
    assert truncated.wait_for(lambda p: p.closed, timeout=5)
    assert truncated.handshake  # it did speak the protocol before
    garbage.settimeout(5)
    assert garbage.recv(100) == HANDSHAKE_BYTES and garbage.recv(100) == b""
    # ...and keeps serving the others.
    update = lease(42)
    peers(a).send(update)
    assert everyone_has([peers(b)], update.key, update.value)
    assert a.proc.poll() is None
    log = a.log_text()
    assert "malformed" in log and "bad handshake" in log
    silent.close()
    garbage.close()
    truncated.close()


def test_peer_that_stops_reading_is_disconnected(monkeypatch):
    """In-process: a small output limit, a peer that never reads."""
    monkeypatch.setattr(flood_module, "MAX_PENDING_OUTPUT", 64 * 1024)

    async def scenario():
        store = Store()
        port = free_port()
        flooder = Flooder(store, port, [])
        await flooder.start()
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            await asyncio.get_running_loop().sock_sendall(sock, HANDSHAKE_BYTES)
            for _ in range(100):
                if any(s.established for s in flooder.sessions):
                    break
                await asyncio.sleep(0.01)
            assert any(s.established for s in flooder.sessions)
            for i in range(200000):
                store.put(ipv4_lease_key(i.to_bytes(4, "big")), b"\x02" * 6, 600)
                if not flooder.sessions:
                    break
                if i % 1000 == 0:
                    await asyncio.sleep(0)
            assert not flooder.sessions, "the non-reading peer is still connected"
            assert i < 200000
            sock.close()
        finally:
            await flooder.stop()

    asyncio.run(scenario())


def test_sigusr1_dumps_store_and_peers(network, peers):
    (a,) = network([[]])
    feeder = peers(a)
    feeder.send(lease(5), Update(association_key(b"\x02\0\0\0\0\x05"), 1, bytes.fromhex("00112233445566ff"), 100))
    feeder.wait_for(lambda p: False, timeout=0.3)
    os.kill(a.proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while "Assoc" not in a.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = a.log_text()
    assert "Lease 192.0.2.5 02:00:00:00:00:01 seqno 0" in log
    assert "Assoc 02:00:00:00:00:05 00112233445566ff seqno 1" in log
    assert "Peer 127.0.0.1:" in log


def test_sigterm_shuts_down_cleanly(network, peers):
    (a,) = network([[]])
    b = Node(free_port(), [a.port])  # a has an incoming session open when it stops
    network.nodes.append(b)
    assert peers(a).wait_for(lambda p: p.handshake)
    time.sleep(0.2)
    a.proc.send_signal(signal.SIGTERM)
    assert a.proc.wait(5) == 0
    log = a.log_text()
    assert "shutting down" in log and "Traceback" not in log, log


def test_c_sroamd_session_replayed_into_the_daemon(network, peers):
    """The bytes a real C sroamd sent (captured) are understood and passed on."""
    from captures import load_jsonl
    frames = [bytes.fromhex(f["hex"]) for f in load_jsonl("flood-c-sroamd.jsonl")
              if f["dir"] == "connector->listener"]
    (a,) = network([[]])
    watcher = peers(a)
    c_peer = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    for frame in frames:  # the handshake, then the updates, chunk by chunk as read()
        c_peer.sendall(frame)
    assert c_peer.recv(4) == HANDSHAKE_BYTES  # what the C sroamd expects back
    assoc = association_key(bytes.fromhex("7e477967bcf4"))
    lease4 = ipv4_lease_key(bytes([192, 0, 2, 163]))
    lease6 = bytes.fromhex("0120010db8444497a2")
    assert watcher.wait_for(lambda p: p.has(assoc) and p.has(lease4) and p.has(lease6))
    assert watcher.data[assoc].value == bytes.fromhex("3f17adf6da335b37")
    assert 1790 <= watcher.data[lease4].time <= 1800  # the 10 s offer was renewed to 1800 s
    assert watcher.data[lease6].value == bytes.fromhex("7e477967bcf4")
    c_peer.close()


def test_peers_over_ipv6(network, peers):
    (a,) = network([[]])
    b = Node(free_port(), [a.port], peer_host="::1")
    network.nodes.append(b)
    update = lease(77)
    peers(a, host="::1").send(update)
    assert everyone_has([peers(b, host="::1")], update.key, update.value)
