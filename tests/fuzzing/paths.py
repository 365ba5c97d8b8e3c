"""The harnesses, one per receive path.

Each has: name; __init__(seed, epoch) building fresh state; generate(rng) ->
an input (deterministic given the rng and the state); execute(input), which
raises Violation when an invariant breaks (any other exception is a crash);
check() for invariants between inputs; stats() (outcome counters); close().
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import random
import struct

from sroamd.flood import Session
from sroamd.store import ASSOCIATION, IPV4_LEASE, IPV6_LEASE, seqno_compare
from sroamd.wire import dhcp, icmpv6
from sroamd.wire.flood import (DUMP_BEGIN_BODY, DUMP_END_BODY, HANDSHAKE_BYTES)
from sroamd.wire.ip import BROADCAST_MAC, ipv4_udp_frame

from fuzzing.mutate import mutate, random_bytes, split
from fuzzing.node import (CLIENT_MACS, GATEWAY, IFNAMES, IPV4_PREFIX, IPV6_PREFIX, LINK_LOCAL,
                          LINK_MACS, NODE_ID, PEER_IDS, Node)
from fuzzing.standins import FakeWriter, Violation

TIMES = (0, 1, 10, 59, 600, 1800, 3600, 5400, 10800, 86400, 0x7FFFFFFF, 0xFFFFFFFF)


def pick_mac(rng: random.Random, known: float = 0.8) -> bytes:
    if rng.random() < known:
        return rng.choice(CLIENT_MACS)
    mac = bytearray(rng.randbytes(6))
    if rng.random() < 0.8:
        mac[0] = (mac[0] & 0xFC) | 0x02  # locally administered unicast, as clients randomise
    return bytes(mac)


# -- 1. flooding stream -> store -> roaming -> client service -----------------

class FloodPath:
    """Bytes from backbone peers, cut into random reads, into real flooding
    sessions (Session.run: handshake, TLV buffering, Flooder.receive with
    its data policy), and from there the store, the roaming engine and the
    client service (routes, RAs); hostapd station events and the daemon's
    timers are interleaved so that served clients meet flooded data."""

    name = "flood"
    SLOTS = 3

    def __init__(self, seed: int, epoch: int):
        self.node = Node(seed * 1000003 + epoch)
        self.loop = asyncio.new_event_loop()
        self.slots: list[dict | None] = [None] * self.SLOTS
        self.opened = 0
        self.crashes: list[BaseException] = []
        for slot in range(self.SLOTS):
            self._open(slot, HANDSHAKE_BYTES)
        self._spin()

    # -- sessions --------------------------------------------------------------

    def _open(self, slot: int, handshake: bytes) -> None:
        reader = asyncio.StreamReader(loop=self.loop)
        writer = FakeWriter(peername=(f"198.51.100.{10 + slot}", 40000 + self.opened))
        self.opened += 1
        session = Session(self.node.flooder, reader, writer, f"peer{slot}-{self.opened}",
                          outgoing=bool(slot == 0))
        task = self.loop.create_task(self.node.flooder._run_session(session))
        reader.feed_data(handshake)
        self.slots[slot] = {"reader": reader, "writer": writer, "session": session, "task": task}

    def _reap(self) -> None:
        for slot, state in enumerate(self.slots):
            if state is not None and state["task"].done():
                task = state["task"]
                if not task.cancelled() and task.exception() is not None:
                    self.crashes.append(task.exception())
                self.slots[slot] = None

    def _spin(self, rounds: int = 3) -> None:
        async def spin():
            for _ in range(rounds):
                await asyncio.sleep(0)
        self.loop.run_until_complete(spin())
        self._reap()

    # -- inputs ----------------------------------------------------------------

    def generate(self, rng: random.Random) -> list:
        ops = []
        for _ in range(rng.choice((1, 1, 2, 3, 4))):
            r = rng.random()
            slot = rng.randrange(self.SLOTS)
            if self.slots[slot] is None and not any(op[0] == "open" and op[1] == slot
                                                    for op in ops):
                handshake = HANDSHAKE_BYTES if rng.random() < 0.9 else mutate(rng, HANDSHAKE_BYTES)
                ops.append(("open", slot, handshake))
            elif r < 0.62:
                stream = self._stream(rng)
                ops.append(("data", slot, split(rng, stream)))
            elif r < 0.80:
                mac = pick_mac(rng, 0.9)
                ops.append(("station", rng.choice(IFNAMES), mac, rng.random() < 0.65))
            elif r < 0.96:
                ops.append(("tick", rng.choice((0.5, 1, 1, 5, 10, 30, 300, 1000, 2000, 5400))))
            elif r < 0.98:
                ops.append(("eof", slot))
            else:
                ops.append(("stall", slot, rng.random() < 0.5))
        return ops

    def _stream(self, rng: random.Random) -> bytes:
        # (a malformed stream closes the session, and each new session gets
        # a dump of the whole store: kept rare, they dominate the cost)
        if rng.random() < 0.015:
            return random_bytes(rng, 600)
        tlvs = []
        for _ in range(rng.choice((1, 1, 2, 3, 5, 8, 20))):
            r = rng.random()
            if r < 0.8:
                tlvs.append(self._update(rng))
            elif r < 0.85:
                tlvs.append(b"\0")
            elif r < 0.92:
                body = rng.choice((DUMP_BEGIN_BODY, DUMP_END_BODY, b"", rng.randbytes(rng.randrange(40))))
                tlvs.append(bytes([1, len(body)]) + body)
            else:
                body = rng.randbytes(rng.randrange(60))
                tlvs.append(bytes([rng.randrange(3, 256), len(body)]) + body)
        stream = b"".join(tlvs)
        if rng.random() < 0.04:
            stream = mutate(rng, stream)
        return stream

    def _update(self, rng: random.Random) -> bytes:
        r = rng.random()
        kind = 0 if r < 0.3 else 1 if r < 0.5 else 2 if r < 0.85 else rng.randrange(3, 256)
        if kind == IPV4_LEASE:
            if rng.random() < 0.8:
                body = bytes([192, 0, 2, rng.choice((0, 1, 2, 3, 4, 5, 6, 254, 255,
                                                     rng.randrange(256)))])
            else:
                body = rng.choice((bytes([8, 8, 8, 8]), bytes([192, 0, 3, 7]), bytes(4),
                                   b"\xff" * 4, rng.randbytes(4)))
        elif kind == IPV6_LEASE:
            if rng.random() < 0.8:
                body = bytes.fromhex("20010db84444") + rng.choice(
                    (b"\0\0", b"\0\1", b"\0\2", b"\x97\xa2", rng.randbytes(2)))
            else:
                body = rng.choice((bytes.fromhex("2001486000000000"), bytes(8), rng.randbytes(8)))
        elif kind == ASSOCIATION:
            body = pick_mac(rng, 0.95)
        else:
            body = rng.randbytes(rng.choice((0, 1, 4, 6, 8, 16)))
        if rng.random() < 0.05:  # a key of the wrong length
            body = body[:rng.randrange(len(body) + 1)] if body and rng.random() < 0.5 \
                else body + rng.randbytes(rng.randint(1, 8))
        key = bytes([kind]) + body
        if kind == ASSOCIATION:
            value = rng.choice((PEER_IDS[0], PEER_IDS[1], PEER_IDS[0], b"", NODE_ID,
                                rng.randbytes(rng.choice((0, 6, 8, 9)))))
        else:
            r = rng.random()
            value = (pick_mac(rng, 0.9) if r < 0.75 else b"" if r < 0.85 else bytes(6) if r < 0.9
                     else rng.randbytes(rng.choice((1, 5, 7, 8, 16))))
        datum = self.node.store.get(key)
        if datum is not None and rng.random() < 0.85:
            seqno = (datum.seqno + rng.choice((0, 0, 1, 1, 2, -1, 0x8000, 0x7FFF))) & 0xFFFF
        else:
            seqno = rng.choice((0, 1, 2, 0x7FFF, 0x8000, 0xFFFF, rng.randrange(0x10000)))
        time = rng.choice(TIMES) if rng.random() < 0.8 else rng.randrange(1 << 32)
        body = struct.pack(">HIB", seqno, time, len(key)) + key + value
        body = body[:255]
        return bytes([2, len(body)]) + body

    # -- execution ---------------------------------------------------------------

    def execute(self, ops: list) -> None:
        node = self.node
        for op in ops:
            kind = op[0]
            if kind == "open":
                state = self.slots[op[1]]
                if state is not None:
                    state["session"].close()
                    state["reader"].feed_eof()
                    self._spin()
                self._open(op[1], op[2])
                self._spin()
            elif kind == "data":
                state = self.slots[op[1]]
                if state is None:
                    continue
                for chunk in op[2]:
                    if state["task"].done():
                        break
                    state["reader"].feed_data(chunk)
                    self._spin(2)
            elif kind == "eof":
                state = self.slots[op[1]]
                if state is not None:
                    state["reader"].feed_eof()
                    self._spin()
            elif kind == "stall":
                state = self.slots[op[1]]
                if state is not None:  # the peer stops reading, or reads again
                    state["writer"].transport.buffered = (8 << 20) if op[2] else 0
            elif kind == "station":
                node.station(op[1], op[2], op[3])
                self._spin(1)
            elif kind == "tick":
                node.tick(op[1])
                self._spin(1)
        if self.crashes:
            exc = self.crashes.pop(0)
            self.crashes.clear()
            raise exc

    def check(self) -> None:
        self.node.check(served_only_stations=True)

    def stats(self) -> dict:
        out = self.node.stats()
        out["sessions_opened"] = self.opened
        return out

    def close(self) -> None:
        for state in self.slots:
            if state is not None:
                state["session"].close()
                state["reader"].feed_eof()
        try:
            self._spin(5)
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            self.loop.close()


# -- 2. DHCP -----------------------------------------------------------------

MESSAGE_TYPES = (dhcp.DISCOVER, dhcp.REQUEST, dhcp.REQUEST, dhcp.RELEASE, dhcp.DECLINE,
                 dhcp.INFORM, dhcp.OFFER, dhcp.ACK, 0, 9, 255)


def in_prefix_v4(rng: random.Random) -> bytes:
    return bytes([192, 0, 2, rng.choice((0, 1, 2, 3, 255, rng.randrange(256)))])


def dhcp_message(rng: random.Random, mac: bytes, known: list[bytes]) -> bytes:
    """A DHCP message a client (or a liar) could send."""
    kind = rng.choice(MESSAGE_TYPES)
    options: dict[int, object] = {}
    if rng.random() < 0.97:
        options[dhcp.OPT_MESSAGE_TYPE] = kind
    if rng.random() < 0.5:
        options[dhcp.OPT_REQUESTED_ADDRESS] = rng.choice(known) if known and rng.random() < 0.5 \
            else in_prefix_v4(rng) if rng.random() < 0.8 else rng.randbytes(4)
    if rng.random() < 0.4:
        options[dhcp.OPT_SERVER_ID] = GATEWAY.packed if rng.random() < 0.8 else rng.randbytes(4)
    if rng.random() < 0.3:
        options[dhcp.OPT_CLIENT_ID] = b"\x01" + mac if rng.random() < 0.7 else rng.randbytes(rng.randrange(1, 20))
    if rng.random() < 0.5:
        options[dhcp.OPT_PARAMETER_REQUEST_LIST] = [1, 3, 6, 15, 51, 54]
    if rng.random() < 0.1:
        options[dhcp.OPT_LEASE_TIME] = rng.choice(TIMES)
    if rng.random() < 0.1:
        options[rng.randrange(60, 255)] = rng.randbytes(rng.randrange(12))
    ciaddr = dhcp.ZERO4
    if rng.random() < 0.35:
        ciaddr = rng.choice(known) if known and rng.random() < 0.6 else in_prefix_v4(rng)
    giaddr = dhcp.ZERO4 if rng.random() < 0.93 else bytes([198, 51, 100, rng.randrange(256)])
    chaddr = mac if rng.random() < 0.9 else pick_mac(rng, 0.5)
    message = dhcp.DhcpMessage(
        op=dhcp.BOOTREQUEST if rng.random() < 0.97 else rng.choice((2, 0, 3)),
        xid=rng.randrange(1 << 32), flags=rng.choice((0, 0, dhcp.FLAG_BROADCAST)),
        ciaddr=ciaddr, giaddr=giaddr, chaddr=chaddr.ljust(16, b"\0"),
        htype=1 if rng.random() < 0.97 else rng.randrange(256),
        hlen=6 if rng.random() < 0.97 else rng.choice((0, 5, 16, 17, 255)),
        options=options)
    try:
        data = dhcp.build(message, min_length=rng.choice((0, 300)))
    except dhcp.DhcpFormatError:
        data = rng.randbytes(300)
    r = rng.random()
    if r < 0.12:
        data = mutate(rng, data)
    elif r < 0.14:
        data = random_bytes(rng, 700)
    return data


class DhcpPath:
    """DHCP messages from Wi-Fi clients (lying in any field), as frames, into
    the client service's DHCP receive path (the packet-socket adapter when
    there is one: frame checks, chaddr against the frame's source, who is
    served), the DhcpServer on the real Leases and store, and the client
    service's reactions (a client seen is claimed by the roaming engine,
    served: routes, announcements).  Even epochs run a node without a station
    source (clients served on their packets' word), odd ones a node with one
    (hostapd station events interleaved; only its stations are served)."""

    name = "dhcp"

    def __init__(self, seed: int, epoch: int):
        self.node = Node(seed * 1000003 + epoch, station_source=bool(epoch % 2))
        self.cs = self.node.clients
        self.mode = _dhcp_mode(self.cs)
        self.replies = 0
        self.sources: set[bytes] = set()  # frame sources of the messages delivered

    def generate(self, rng: random.Random) -> list:
        r = rng.random()
        if r < 0.06:
            return [("tick", rng.choice((1, 5, 10, 30, 600, 1800, 3600)))]
        if self.node.station_source and r < 0.16:
            return [("station", rng.choice(IFNAMES), pick_mac(rng, 0.9), rng.random() < 0.7)]
        src = pick_mac(rng, 0.6)
        known = [d.key[1:] for d in self.node.store.leases_of(src, IPV4_LEASE)]
        payload = dhcp_message(rng, src, known)
        return [("dhcp", rng.choice(IFNAMES), src, payload, dhcp_frame(rng, src, payload, known))]

    def execute(self, ops: list) -> None:
        for op in ops:
            if op[0] == "tick":
                self.node.tick(op[1])
                continue
            if op[0] == "station":
                self.node.station(op[1], op[2], op[3])
                self.cs.sender.take()
                continue
            _, ifname, src, payload, frame = op
            self.sources.add(src)
            before = self.cs.sender.count
            deliver_dhcp(self.cs, self.mode, ifname, src, payload, frame)
            if self.cs.sender.count > before:
                self.replies += 1
            self._check_replies(src, payload)

    def _check_replies(self, src: bytes, payload: bytes) -> None:
        for ifname, frame in self.cs.sender.take():
            if frame[12:14] != b"\x08\x00" or frame[23] != 17:
                continue  # ARP, NA, RA (announcements to a client that arrived)
            udp = frame[14 + (frame[14] & 15) * 4:]
            if int.from_bytes(udp[2:4], "big") != dhcp.CLIENT_PORT:
                continue
            try:
                reply = dhcp.parse(udp[8:])
            except dhcp.DhcpFormatError as e:
                raise Violation("dhcp_reply_unparsable", str(e))
            if reply.op != dhcp.BOOTREPLY:
                raise Violation("dhcp_reply_not_reply", str(reply.op))
            if reply.yiaddr != dhcp.ZERO4:
                address = ipaddress.IPv4Address(reply.yiaddr)
                if (address not in IPV4_PREFIX or address == GATEWAY
                        or address in (IPV4_PREFIX.network_address, IPV4_PREFIX.broadcast_address)):
                    raise Violation("dhcp_address_outside_pool", str(address))
            if frame[0:6] not in (reply.mac, BROADCAST_MAC):
                raise Violation("dhcp_reply_to_other_mac",
                                f"frame to {frame[0:6].hex()}, chaddr {reply.mac.hex()}")
            if reply.message_type == dhcp.ACK and reply.yiaddr != dhcp.ZERO4:
                datum = self.node.store.live(bytes([IPV4_LEASE]) + reply.yiaddr)
                if datum is None or datum.value != reply.mac:
                    raise Violation("dhcp_ack_without_lease",
                                    f"ACK {address} to {reply.mac.hex()}, store says "
                                    f"{datum.value.hex() if datum else None}")

    def check(self) -> None:
        self.node.check(served_only_stations=self.node.station_source)
        # Nobody is claimed on what a packet says inside: only on the frame's
        # source (or, with a station source, on hostapd's word alone).
        for mac in self.node.roaming.clients:
            if mac not in self.sources and mac not in self.node.stations:
                raise Violation("claim_not_frame_source", mac.hex())

    def stats(self) -> dict:
        out = self.node.stats()
        out["dhcp_replies"] = self.replies
        out[f"dhcp_mode:{self.mode}"] = 1
        return out

    def close(self) -> None:
        pass


def dhcp_frame(rng: random.Random, src: bytes, payload: bytes, known: list[bytes]) -> bytes:
    """The Ethernet frame a client sends the message in (broadcast, or
    unicast to the gateway when renewing), now and then damaged."""
    if known and rng.random() < 0.3:
        frame = ipv4_udp_frame(src, LINK_MACS[0], rng.choice(known), GATEWAY.packed,
                               dhcp.CLIENT_PORT, dhcp.SERVER_PORT, payload)
    else:
        frame = ipv4_udp_frame(src, BROADCAST_MAC, dhcp.ZERO4, b"\xff\xff\xff\xff",
                               dhcp.CLIENT_PORT, dhcp.SERVER_PORT, payload)
    r = rng.random()
    if r < 0.04:
        frame = mutate(rng, frame)
    elif r < 0.06:  # a bad UDP checksum, or none
        frame = frame[:40] + rng.choice((b"\0\0", b"\x12\x34")) + frame[42:]
    elif r < 0.07:
        frame = frame[:rng.randrange(len(frame))]
    return frame


class _FakeDhcpEndpoint:
    """One received message, as either receive path reads it: recv() on the
    UDP socket (the payload), receive() on a packet socket (the frame)."""

    def __init__(self, src: bytes, payload: bytes, frame: bytes):
        self.payload = payload
        self.frame = frame
        self.done = False

    def _once(self, value):
        if self.done:
            return None
        self.done = True
        return value

    def recv(self, size: int = 65536) -> bytes:
        value = self._once(self.payload)
        if value is None:
            raise BlockingIOError
        return value

    def recvfrom(self, size: int = 65536):
        return self.recv(size), ("0.0.0.0", 68)

    def receive(self):
        return self._once(self.frame)

    def fileno(self) -> int:
        return -1

    def sendto(self, data, address) -> int:
        return len(data)


def _dhcp_mode(cs) -> str:
    """How the client service receives DHCP now: "adapter" when _on_dhcp
    takes (name, socket-like) and reads from it, else "server" (DhcpServer.handle
    directly, with the adapter's reaction replayed)."""
    method = getattr(cs, "_on_dhcp", None)
    if method is not None and len(inspect.signature(method).parameters) == 2:
        return "adapter"
    return "server"


def deliver_dhcp(cs, mode: str, ifname: str, src: bytes, payload: bytes, frame: bytes) -> None:
    if mode == "adapter":
        endpoint = _FakeDhcpEndpoint(src, payload, frame)
        # Whatever the receive path keeps per interface (UDP or packet socket).
        for attr in ("dhcp_receivers", "dhcp_sockets"):
            table = getattr(cs, attr, None)
            if isinstance(table, dict):
                table[ifname] = endpoint
        cs._on_dhcp(ifname, endpoint)
    else:
        link = cs.links.get(ifname)
        params = inspect.signature(cs.dhcp.handle).parameters
        if "src_mac" in params:
            outcome = cs.dhcp.handle(payload, cs._server_ip(link), src_mac=src)
        else:
            outcome = cs.dhcp.handle(payload, cs._server_ip(link))
        if outcome.mac is not None and not outcome.relayed and outcome.dropped is None:
            cs._seen(ifname, outcome.mac)


# -- 3. Router Solicitations ----------------------------------------------------

def rs_frame(rng: random.Random, mac: bytes) -> bytes:
    options = icmpv6.NdOptions()
    r = rng.random()
    if r < 0.5:
        options.source_lladdr = mac
    elif r < 0.55:
        options.source_lladdr = pick_mac(rng, 0.5)
    if rng.random() < 0.7:
        ip_src = b"\xfe\x80" + bytes(6) + bytes([mac[0] ^ 2]) + mac[1:3] + b"\xff\xfe" + mac[3:]
    else:
        ip_src = rng.choice((icmpv6.UNSPECIFIED, rng.randbytes(16)))
        if ip_src == icmpv6.UNSPECIFIED and rng.random() < 0.8:
            options.source_lladdr = None
    eth_src = mac if rng.random() < 0.95 else rng.choice((b"\x33\x33\0\0\0\1", b"\x01" + mac[1:]))
    message = icmpv6.build_rs(options)
    if rng.random() < 0.03:
        message["code"] = rng.randrange(1, 256)
    hop_limit = 255 if rng.random() < 0.95 else rng.choice((0, 1, 64, 254))
    try:
        frame = icmpv6.build_frame(message, eth_src, icmpv6.multicast_mac(icmpv6.ALL_ROUTERS),
                                   ip_src, icmpv6.ALL_ROUTERS, hop_limit)
    except icmpv6.Icmpv6FormatError:
        frame = rng.randbytes(70)
    r = rng.random()
    if r < 0.15:
        frame = mutate(rng, frame)
    elif r < 0.17:
        frame = random_bytes(rng, 200)
    return frame


class _FakeRs:
    def __init__(self):
        self.queue: list[tuple[str, bytes]] = []

    def receive(self):
        out, self.queue = self.queue, []
        return out

    def fileno(self) -> int:
        return -1


class RsPath:
    """Router Solicitations (whole frames, as the packet socket gives them)
    into the client service's RS handling: RouterAdvertiser.handle_rs on the
    real leases, the client seen and served, the RA sent."""

    name = "rs"

    def __init__(self, seed: int, epoch: int):
        self.node = Node(seed * 1000003 + epoch, station_source=bool(epoch % 2))
        self.cs = self.node.clients
        self.cs.rs = _FakeRs()
        self.adapter = hasattr(self.cs, "_on_rs")
        self.sources = set()

    def generate(self, rng: random.Random) -> list:
        r = rng.random()
        if r < 0.05:
            return [("tick", rng.choice((1, 10, 600, 1200, 3600)))]
        if self.node.station_source and r < 0.15:
            return [("station", rng.choice(IFNAMES), pick_mac(rng, 0.9), rng.random() < 0.7)]
        mac = pick_mac(rng, 0.6)
        return [("rs", rng.choice(IFNAMES), rs_frame(rng, mac))]

    def execute(self, ops: list) -> None:
        for op in ops:
            if op[0] == "tick":
                self.node.tick(op[1])
                continue
            if op[0] == "station":
                self.node.station(op[1], op[2], op[3])
                self.cs.sender.take()
                continue
            _, ifname, frame = op
            if len(frame) >= 12:
                self.sources.add(frame[6:12])
            if self.adapter:
                self.cs.rs.queue.append((ifname, frame))
                self.cs._on_rs()
            else:
                outcome = self.cs.ra.handle_rs(frame, self.cs._link_info(ifname))
                if outcome.frame is not None:
                    self.cs._seen(ifname, outcome.mac)
                    self.cs._send(ifname, outcome.frame)
            self._check_sent(frame)

    def _check_sent(self, rs: bytes) -> None:
        for ifname, frame in self.cs.sender.take():
            if frame[12:14] != b"\x86\xdd":
                continue
            try:
                parsed = icmpv6.parse_frame(frame)
            except icmpv6.Icmpv6FormatError as e:
                raise Violation("ra_unparsable", str(e))
            if parsed.type != icmpv6.ROUTER_ADVERTISEMENT:
                continue
            if not parsed.checksum_ok:
                raise Violation("ra_bad_checksum", frame.hex())
            if parsed.eth_src not in LINK_MACS or parsed.ip_src != LINK_LOCAL:
                raise Violation("ra_wrong_source", f"{parsed.eth_src.hex()} {parsed.ip_src.hex()}")
            for prefix in icmpv6.options_of(parsed.body).prefixes:
                net = ipaddress.ip_network(f"{ipaddress.IPv6Address(prefix.prefix)}/"
                                           f"{prefix.prefix_length}", strict=False)
                if prefix.valid_lifetime and not net.subnet_of(IPV6_PREFIX):
                    raise Violation("ra_prefix_outside", str(net))

    def check(self) -> None:
        self.node.check(served_only_stations=self.node.station_source)
        for mac in self.node.roaming.clients:
            if mac not in self.sources and mac not in self.node.stations:
                raise Violation("claim_not_frame_source", mac.hex())

    def stats(self) -> dict:
        return self.node.stats()

    def close(self) -> None:
        pass
