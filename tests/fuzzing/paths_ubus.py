"""4. ubus frames -> the ubus client -> the hostapd (ubus) station source.

The real UbusClient runs its real connection code (_serve_connection: hello,
restoring the registrations, _read_loop reading frames off a StreamReader,
_dispatch, the callback task) against a stand-in ubusd: what the client
writes is decoded and answered as ubusd would (lookup, add_object,
subscribe, invoke of hostapd's get_clients and del_client), and the fuzzer
feeds its own frames in the same stream: notifications with any method and
blobmsg data, objects going and coming back, stray replies, captured frames
of a real ubusd mutated, random bytes.  The UbusStationSource is the real
one, subscribed through that client; its events are what the daemon gets.

Time is the event loop's (a virtual clock here), so the get_clients
polling of the station source runs as it would.
"""

from __future__ import annotations

import asyncio
import os
import random

from sroamd.stations import StationEvent
from sroamd.stations_ubus import UbusStationSource
from sroamd.ubus_client import UbusClient
from sroamd.wire.ubus import (SYSTEM_OBJECT_EVENT, UbusFormatError, decode_message,
                              encode_message, frame_length)

from fuzzing.mutate import mutate, random_bytes, split
from fuzzing.node import CLIENT_MACS, IFNAMES
from fuzzing.paths import pick_mac
from fuzzing.standins import Violation
from ubus_agreement import decode_disagreement, encode_disagreement

CAPTURE_DIRS = (os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "captures"),
                os.environ.get("SROAMD_CAPTURES"))
UBUSD_PEER = 0x5EED0001
HOSTAPD_IDS = {ifname: 0x4A000000 + i for i, ifname in enumerate(IFNAMES)}
METHODS = ("assoc", "sta-authorized", "sta-authorized", "disassoc", "deauth", "local-deauth",
           "inactive-deauth", "key-mismatch", "probe", "auth", "bss.switch", "", "ASSOC",
           "sta-authorized\x00x")


def capture_frames() -> list[bytes]:
    """The raw frames of the real ubusd session capture (none if not found)."""
    import json
    for directory in CAPTURE_DIRS:
        path = directory and os.path.join(directory, "ubus-session.jsonl")
        if path and os.path.exists(path):
            with open(path) as f:
                return [bytes.fromhex(json.loads(line)["hex"]) for line in f if line.strip()]
    return []


_CAPTURES: list[bytes] | None = None


def captures() -> list[bytes]:
    global _CAPTURES
    if _CAPTURES is None:
        _CAPTURES = capture_frames()
    return _CAPTURES


def mac_text(rng: random.Random, mac: bytes) -> object:
    r = rng.random()
    text = ":".join(f"{b:02x}" for b in mac)
    if r < 0.8:
        return text
    return rng.choice((text.upper(), text.replace(":", ""), text[:-3], text + ":00",
                       text.replace(":", "-"), "", "zz:zz:zz:zz:zz:zz", 42, None, [text],
                       {"address": text}, 3.5, True, " " + text))


def blob_value(rng: random.Random, depth: int = 0) -> object:
    r = rng.random()
    if r < 0.3:
        return rng.choice(("", "x", "wlan0", "aa:bb:cc:dd:ee:ff", "\udcff"))
    if r < 0.5:
        return rng.choice((0, 1, -1, 2 ** 31 - 1, -2 ** 31, 2 ** 40, -2 ** 63))
    if r < 0.6:
        return rng.choice((True, False))
    if r < 0.65:
        return rng.choice((0.0, -1.5, float("inf"), float("nan")))
    if r < 0.7:
        return None
    if depth < 3 and r < 0.85:
        return {rng.choice(("a", "b", "address", "authorized", "")): blob_value(rng, depth + 1)
                for _ in range(rng.randrange(4))}
    if depth < 3:
        return [blob_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return "deep"


def notification_data(rng: random.Random) -> object:
    data = {}
    if rng.random() < 0.9:
        data["address"] = mac_text(rng, pick_mac(rng, 0.85))
    for name in rng.sample(("target", "freq", "signal", "ifname", "auth-alg", "reason",
                            "x"), rng.randrange(4)):
        data[name] = blob_value(rng)
    return data


def clients_reply(rng: random.Random) -> dict:
    """A get_clients reply, as hostapd_bss or hostapd_wired list them, or worse."""
    clients = {}
    for _ in range(rng.choice((0, 1, 2, 3, 6))):
        mac = pick_mac(rng, 0.85)
        key = mac_text(rng, mac) if rng.random() < 0.1 else ":".join(f"{b:02x}" for b in mac)
        if not isinstance(key, str):
            key = str(key)
        r = rng.random()
        if r < 0.45:
            info = {"auth": True, "assoc": True, "authorized": rng.random() < 0.6,
                    "aid": rng.randrange(2008)}
        elif r < 0.7:
            info = {"authorized": rng.choice((True, False, 1, 0, "yes", None))}
        elif r < 0.85:
            info = {"auth": True, "assoc": True}
        else:
            info = blob_value(rng)
        clients[key] = info
    if rng.random() < 0.05:
        return {"clients": blob_value(rng)}
    if rng.random() < 0.03:
        return {}
    return {"freq": 2437, "clients": clients}


def attribute_offsets(frame: bytes) -> list[tuple[int, tuple[int, ...]]]:
    """Where each blob attribute of a well-formed frame starts, with the
    offsets of the attributes around it (message attributes, and the blobmsg
    attributes of data and signature, nested)."""
    found = []

    def walk(pos, end, blobmsg, parents):
        while pos + 4 <= end:
            word = int.from_bytes(frame[pos:pos + 4], "big")
            length = word & 0xFFFFFF
            if length < 4 or pos + length > end:
                return
            found.append((pos, parents))
            kind = word >> 24 & 0x7F
            if not blobmsg and kind in (6, 7):          # signature, data
                walk(pos + 4, pos + length, True, parents + (pos,))
            elif blobmsg and kind in (1, 2) and length >= 6:   # array, table
                name_len = int.from_bytes(frame[pos + 4:pos + 6], "big")
                walk(pos + 4 + (2 + name_len + 1 + 3) // 4 * 4, pos + length, True,
                     parents + (pos,))
            pos += (length + 3) // 4 * 4

    walk(12, len(frame), False, (8,))
    return found


def _with_length(frame: bytearray, at: int, change: int) -> None:
    word = int.from_bytes(frame[at:at + 4], "big")
    length = max(0, min(0xFFFFFF, (word & 0xFFFFFF) + change))
    frame[at:at + 4] = ((word & 0xFF000000) | length).to_bytes(4, "big")


def resize_attribute(rng: random.Random, frame: bytes) -> bytes:
    """frame with one attribute a little off, where random mutations seldom
    land: its length alone changed, or bytes added to its payload (or taken
    away) with every length around it adjusted, so that only the attribute's
    own content is wrong (an integer of 5 bytes, a string after its NUL...)."""
    offsets = attribute_offsets(frame)
    if not offsets:
        return frame
    at, parents = rng.choice(offsets)
    out = bytearray(frame)
    if rng.random() < 0.3:
        _with_length(out, at, rng.choice((-8, -4, -2, -1, 1, 2, 4, 8)))
        return bytes(out)
    length = int.from_bytes(frame[at + 1:at + 4], "big")
    change = rng.choice((1, 2, 3, 4, 8, -1, -2, -4))
    if length + change < 4:
        return frame
    body = frame[at:at + length]
    body = body + (bytes(change) if rng.random() < 0.5 else rng.randbytes(change)) \
        if change > 0 else body[:change]
    padded = body + bytes(-len(body) % 4)
    delta = len(padded) - (length + 3) // 4 * 4
    out[at:at + (length + 3) // 4 * 4] = padded
    _with_length(out, at, change)
    for parent in parents:
        _with_length(out, parent, delta)
    return bytes(out)


def _authorized(info) -> bool:
    """hostapd's word that a station is in, as the protocol carries it."""
    if not isinstance(info, dict):
        return False
    flag = info.get("authorized")
    return flag is True or (type(flag) is int and flag != 0)


def _parse_mac(text) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        mac = bytes.fromhex(text.replace(":", ""))
    except ValueError:
        return None
    return mac if len(mac) == 6 else None


class StandinUbusd:
    """Answers what the client writes, as ubusd (and hostapd behind it) would."""

    def __init__(self, harness: "UbusPath"):
        self.h = harness
        self.next_id = 0x10000
        self.frames_in = 0
        self.undecodable = 0

    def handle(self, data: bytes) -> None:
        self.frames_in += 1
        try:
            msg = decode_message(data)
        except UbusFormatError:
            self.undecodable += 1
            raise
        t, seq, peer = msg["type"], msg["seq"], msg["peer"]
        h = self.h
        if t == "lookup":
            path = msg.get("objpath")
            found = [(p, i) for p, i in h.objects.items() if path is None or p == path]
            for p, i in found:
                h.send({"type": "data", "seq": seq, "peer": peer, "objpath": p, "objid": i,
                        "objtype": 0x77, "data": {"get_clients": {}}})
            h.send({"type": "status", "seq": seq, "peer": peer, "status": 0 if found else 4})
        elif t == "add_object":
            self.next_id += 1
            h.send({"type": "data", "seq": seq, "peer": peer, "objid": self.next_id,
                    "objtype": self.next_id})
            h.send({"type": "status", "seq": seq, "peer": peer, "status": 0})
        elif t == "subscribe":
            target = msg.get("target")
            for ifname, objid in HOSTAPD_IDS.items():
                if objid == target:
                    h.sub_ids[ifname] = msg.get("objid")
            h.send({"type": "status", "seq": seq, "peer": peer, "status": 0})
        elif t in ("unsubscribe", "remove_object"):
            h.send({"type": "status", "seq": seq, "peer": peer, "status": 0})
        elif t == "invoke":
            objid = msg.get("objid")
            if objid == SYSTEM_OBJECT_EVENT:
                data = msg.get("data") or {}
                if data.get("pattern") == "ubus.object.add":
                    h.listener_id = data.get("object")
                h.send({"type": "status", "seq": seq, "peer": peer, "status": 0})
                return
            ifname = next((i for i, o in HOSTAPD_IDS.items() if o == objid), None)
            if ifname is None or ("hostapd." + ifname) not in h.objects:
                h.send({"type": "status", "seq": seq, "peer": peer, "status": 4})
                return
            if msg.get("method") == "get_clients":
                reply = h.next_clients.get(ifname, {"freq": 2437, "clients": {}})
                status = h.next_status.pop(ifname, 0)
                h.note_clients(ifname, reply)
                if status == 0:
                    h.send({"type": "data", "seq": seq, "peer": peer, "objid": objid,
                            "data": reply})
                h.send({"type": "status", "seq": seq, "peer": peer, "status": status})
            else:
                h.send({"type": "status", "seq": seq, "peer": peer, "status": 0})
        # data / status (our replies to invokes), notify: nothing to answer.


class _Writer:
    def __init__(self, ubusd: StandinUbusd):
        self.ubusd = ubusd
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.ubusd.handle(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    async def drain(self) -> None:
        pass


class _VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock the harness moves (timers fire when it does)."""

    def __init__(self):
        super().__init__()
        self.virtual_now = 1000.0

    def time(self) -> float:
        return self.virtual_now


class UbusPath:
    name = "ubus"

    def __init__(self, seed: int, epoch: int):
        self.loop = _VirtualLoop()
        self.client = UbusClient("/nonexistent/ubus.sock", timeout=5.0)
        self.ubusd = StandinUbusd(self)
        self.objects = {"hostapd." + i: o for i, o in HOSTAPD_IDS.items()}  # present now
        self.sub_ids: dict[str, int] = {}
        self.listener_id: int | None = None
        self.next_clients: dict[str, dict] = {}
        self.next_status: dict[str, int] = {}
        self.events: list[StationEvent] = []
        self.authorized: dict[str, set[bytes]] = {i: set() for i in IFNAMES}
        self.notifications = 0
        self.reported = 0
        self.connections = 0
        self.frames_fed = 0
        self.reader: asyncio.StreamReader | None = None
        self.conn_task: asyncio.Task | None = None
        self.crashes: list[BaseException] = []
        # Where the fast ubus codec and the interpreted declaration differed
        # on a frame fed or a message encoded here (issue 11).
        self.codec_disagreements: list[str] = []
        self.source = UbusStationSource(list(IFNAMES), client=self.client)
        self.errors_seen = self._source_errors()
        self.source_task = self.loop.create_task(self.source.run(self._on_event))
        # What UbusClient.connect() starts besides the connection task (_run,
        # which would open the socket: its _serve_connection is run here).
        self.loop.call_soon(lambda: self.client._spawn(self.client._run_callbacks()))
        self._connect()
        self._spin()

    # -- plumbing --------------------------------------------------------------

    def _on_event(self, event: StationEvent) -> None:
        self.reported += 1
        self.events.append(event)

    def _source_errors(self) -> int:
        errors = getattr(self.source, "errors", None)
        return getattr(errors, "failures", 0)

    def _connect(self) -> None:
        self.reader = asyncio.StreamReader(loop=self.loop)
        self.mirror = bytearray()
        writer = _Writer(self.ubusd)
        self.writer = writer
        self.connections += 1
        self._feed_to(self.reader, encode_message({"type": "hello", "seq": 0, "peer": UBUSD_PEER}))
        self.conn_task = self.loop.create_task(self.client._serve_connection(self.reader, writer))

    def send(self, msg: dict) -> None:
        """A message from ubusd to the client (after what is being handled now)."""
        data = self._encode(msg)
        reader = self.reader
        self.loop.call_soon(self._feed_to, reader, data)

    def feed(self, data: bytes) -> None:
        self.frames_fed += 1
        self._feed_to(self.reader, data)

    def _feed_to(self, reader, data: bytes) -> None:
        if reader is not self.reader or reader._eof:  # (at_eof() is False while bytes remain)
            return
        reader.feed_data(data)
        self._note_stream(data)

    def _note_stream(self, data: bytes) -> None:
        """What the frames fed to the client tell the station source, framed
        and decoded as the client's reader does (the same stream): a
        sta-authorized notification is hostapd's word that the station is in."""
        if self.mirror is None:
            return  # framing lost: the client drops this connection
        self.mirror += data
        while len(self.mirror) >= 12:
            try:
                length = frame_length(bytes(self.mirror[:12]))
            except UbusFormatError:
                self.mirror = None
                return
            if len(self.mirror) < length:
                return
            raw = bytes(self.mirror[:length])
            del self.mirror[:length]
            self._agree(decode_disagreement(raw))
            try:
                msg = decode_message(raw)
            except UbusFormatError:
                continue
            if msg.get("type") != "invoke" or msg.get("method") != "sta-authorized":
                continue
            data_ = msg.get("data")
            mac = _parse_mac(data_.get("address")) if isinstance(data_, dict) else None
            for ifname, objid in self.sub_ids.items():
                if mac is not None and msg.get("objid") == objid:
                    self.authorized[ifname].add(mac)

    def _agree(self, disagreement: str | None) -> None:
        if disagreement is not None:
            self.codec_disagreements.append(disagreement)

    def _encode(self, msg: dict) -> bytes:
        """encode_message, and whether the fast codec and the declaration agree on msg."""
        self._agree(encode_disagreement(msg))
        return encode_message(msg)

    def note_clients(self, ifname: str, reply: dict) -> None:
        clients = reply.get("clients") if isinstance(reply, dict) else None
        if isinstance(clients, dict):
            for addr, info in clients.items():
                mac = _parse_mac(addr)
                if mac is not None and _authorized(info):
                    self.authorized[ifname].add(mac)

    def _spin(self, limit: int = 400) -> None:
        loop = self.loop

        async def spin():
            quiet = 0
            for _ in range(limit):
                await asyncio.sleep(0)
                # (our own task is not in _ready while it runs)
                quiet = quiet + 1 if not loop._ready else 0
                if quiet >= 2:
                    return
        loop.run_until_complete(spin())
        if self.conn_task is not None and self.conn_task.done():
            task, self.conn_task = self.conn_task, None
            if not task.cancelled() and task.exception() is not None:
                self.crashes.append(task.exception())
        if self.source_task.done() and not self.source_task.cancelled():
            exc = self.source_task.exception()
            self.crashes.append(exc or RuntimeError("station source returned"))
            self.source_task = self.loop.create_task(self.source.run(self._on_event))

    # -- inputs ----------------------------------------------------------------

    def generate(self, rng: random.Random) -> list:
        ops = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            r = rng.random()
            ifname = rng.choice(IFNAMES)
            if self.conn_task is None:
                ops.append(("reconnect",))
            elif r < 0.45:
                ops.append(("notify", ifname, rng.choice(METHODS) if rng.random() < 0.95
                            else rng.randbytes(rng.randrange(12)).decode("latin-1"),
                            notification_data(rng) if rng.random() < 0.97 else blob_value(rng),
                            rng.random() < 0.9, rng.random() < 0.05))
            elif r < 0.55:
                ops.append(("clients", ifname, clients_reply(rng),
                            0 if rng.random() < 0.9 else rng.choice((2, 4, 7, 9, 99))))
            elif r < 0.62:
                ops.append(("gone", ifname))
            elif r < 0.70:
                ops.append(("added", ifname))
            elif r < 0.80:
                ops.append(("tick", rng.choice((0.1, 0.25, 0.5, 1, 2, 8, 31))))
            elif r < 0.84:
                ops.append(("kick", ifname, pick_mac(rng)))
            elif r < 0.97:
                ops.append(("bytes", self._junk(rng)))
            else:
                ops.append(("disconnect",))
        return ops

    def _junk(self, rng: random.Random) -> list[bytes]:
        caps = captures()
        r = rng.random()
        if caps and r < 0.4:
            data = mutate(rng, rng.choice(caps), caps)
        elif caps and r < 0.5:
            data = resize_attribute(rng, rng.choice(caps))
        elif r < 0.75:
            # A well-framed message of any type with random attributes.
            msg = {"type": rng.choice(("data", "status", "invoke", "notify", "unsubscribe",
                                       "hello", "lookup", "add_object")),
                   "seq": rng.choice((0, 1, 2, rng.randrange(0x10000))),
                   "peer": rng.choice((0, UBUSD_PEER, *HOSTAPD_IDS.values(),
                                       rng.randrange(1 << 32)))}
            ids = [*self.sub_ids.values(), self.listener_id, *HOSTAPD_IDS.values(), 0]
            for attr in rng.sample(("objid", "method", "data", "status", "no_reply",
                                    "objpath", "active"), rng.randrange(5)):
                msg[attr] = {"objid": rng.choice([i for i in ids if i is not None]),
                             "method": rng.choice(METHODS),
                             "data": notification_data(rng),
                             "status": rng.choice((0, 1, 4, 13, 2 ** 32 - 1)),
                             "no_reply": rng.randrange(2), "objpath": "hostapd.wl0",
                             "active": rng.randrange(2)}[attr]
            try:
                data = self._encode(msg)
            except UbusFormatError:
                data = random_bytes(rng, 64)
            if rng.random() < 0.3:
                data = mutate(rng, data)
        else:
            data = random_bytes(rng, 300)
        return split(rng, data)

    def _notification(self, ifname, method, data, no_reply, mutated, rng=None) -> bytes:
        msg = {"type": "invoke", "seq": 7, "peer": HOSTAPD_IDS[ifname],
               "objid": self.sub_ids.get(ifname, 0), "method": method, "data": data,
               "user": "root", "group": "root"}
        if no_reply:
            msg["no_reply"] = 1
        try:
            return self._encode(msg)
        except UbusFormatError:
            return b""

    # -- execution ---------------------------------------------------------------

    def execute(self, ops: list) -> None:
        for op in ops:
            kind = op[0]
            if kind == "reconnect":
                if self.conn_task is None:
                    self._connect()
            elif kind == "notify":
                _, ifname, method, data, no_reply, truncate = op
                frame = self._notification(ifname, method, data, no_reply, False)
                if truncate and frame:
                    frame = frame[:len(frame) // 2]
                if frame:
                    self.notifications += 1
                    self.feed(frame)
            elif kind == "clients":
                self.next_clients[op[1]] = op[2]
                if op[3]:
                    self.next_status[op[1]] = op[3]
            elif kind == "gone":
                path = "hostapd." + op[1]
                self.objects.pop(path, None)
                sub = self.sub_ids.pop(op[1], None)
                if sub is not None:
                    self.feed(encode_message({"type": "unsubscribe", "seq": 0, "peer": 0,
                                              "objid": sub}))
            elif kind == "added":
                path = "hostapd." + op[1]
                self.objects[path] = HOSTAPD_IDS[op[1]]
                if self.listener_id is not None:
                    self.feed(encode_message({
                        "type": "invoke", "seq": 0, "peer": UBUSD_PEER,
                        "objid": self.listener_id, "method": "ubus.object.add",
                        "data": {"id": HOSTAPD_IDS[op[1]], "path": path}, "no_reply": 1}))
            elif kind == "tick":
                self.loop.virtual_now += op[1]
            elif kind == "kick":
                self.loop.create_task(self.source.kick(op[1], op[2]))
            elif kind == "bytes":
                for chunk in op[1]:
                    self.feed(chunk)
                    self._spin(20)
            elif kind == "disconnect":
                if not self.reader._eof:
                    self.reader.feed_eof()
            self._spin()
        if self.crashes:
            exc = self.crashes.pop(0)
            self.crashes.clear()
            raise exc

    def check(self) -> None:
        if self.codec_disagreements:
            found, self.codec_disagreements = self.codec_disagreements, []
            raise Violation("ubus_fast_codec_disagrees", found[0][:1500])
        errors = self._source_errors()
        if errors != self.errors_seen:
            self.errors_seen = errors
            raise Violation("contained:ubus_station_source", f"{errors} failures")
        events, self.events = self.events, []
        for event in events:
            if len(event.mac) != 6 or event.ifname not in IFNAMES:
                raise Violation("ubus_bad_event", repr(event))
            if event.associated and event.mac not in self.authorized[event.ifname]:
                raise Violation("claim_without_authorized",
                                f"{event.ifname} {event.mac.hex()}: associated without "
                                "sta-authorized or get_clients 'authorized'")
        pending = getattr(self.source, "_pending", {})
        limit = getattr(self.source, "max_pending", 1 << 30)
        for ifname, waiting in pending.items():
            if len(waiting) > limit:
                raise Violation("unbounded_pending", f"{ifname}: {len(waiting)}")
        associated = getattr(self.source, "_associated", {})
        for ifname, macs in associated.items():
            if len(macs) > 4 * len(CLIENT_MACS) + 1024:
                raise Violation("unbounded_stations", f"{ifname}: {len(macs)}")
        if len(self.client._requests) > 64:
            raise Violation("unbounded_requests", str(len(self.client._requests)))
        if self.client._callbacks.qsize() > 64:
            raise Violation("unbounded_callbacks", str(self.client._callbacks.qsize()))

    def stats(self) -> dict:
        out = {"connections": self.connections, "frames_fed": self.frames_fed,
               "notifications": self.notifications, "station_events": self.reported,
               "client_frames_answered": self.ubusd.frames_in}
        for name, n in getattr(self.source, "counters", {}).items():
            if n:
                out[f"source:{name}"] = n
        return out

    def close(self) -> None:
        try:
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            if tasks:
                self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        finally:
            self.loop.close()
