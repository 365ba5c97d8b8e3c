"""Flooding the store to peers over TCP (asyncio adapter around store + wire).

Every session, accepted or connected, works the same way: send our
handshake, wait for the peer's, then stream a dump of the whole store, and
from then on every change.  A change is sent to every established session
except the one it came from.  Conflicts are answered to the sender (see
store.py), so both sides of a conflict converge on one value.

Trust (DESIGN.md 7; the decisions are in flood_policy.py):
  * An incoming connection is admitted or refused at once, before the
    handshake: never from the client side (a roaming interface, a served
    prefix), only from flood_allow when it is set, at most
    MAX_INBOUND_SESSIONS at a time.  Listening is on flood_listen only when
    it is set.  Refusals are counted by reason and logged without flooding
    the log (sroamd.loglimit: the first of each reason, then at most one a
    minute, saying how many were left out).
  * Every received Update, from any session, is validated before the store;
    refused data are dropped, counted and not relayed, and the session goes
    on.  A malformed TLV framing closes the session (as C sroamd does).
  * An exception raised while a datum is merged (a store listener: routes,
    roaming, ...) is contained: counted, logged, and the session goes on.

Bounds per session: the input buffer holds at most one partial TLV, and a
partial TLV that stays incomplete for PARTIAL_TLV_TIMEOUT closes the session;
TCP keepalive finds dead peers; the dump is streamed with back-pressure
(DUMP_BATCH data at a time, waiting while more than DUMP_HIGH_WATER bytes are
unsent), so a node of any size resyncs a new peer and holds only a list of
references per dump in progress; outside the dump, a peer whose unsent output
exceeds MAX_PENDING_OUTPUT (it stopped reading) is disconnected rather than
buffered without limit.  Updates for one session are gathered while a burst
is processed and written together (TCP_NODELAY stays on).

Sync (for "sync before serving"): Flooder.synced becomes True, and the
callables in Flooder.on_synced are called once (with the peer's name), when some established
session has received the peer's whole dump.  The protocol has no
end-of-dump marker, so: a peer that marks its dump (this sroamd sends PadN
markers around it, which C sroamd skips) is complete at its end marker; for
any other peer (C sroamd), the dump is taken as complete once the session is
established and SYNC_QUIET seconds pass without an Update from it.

A node not synced itself (Flooder.store_synced False: the daemon says when)
ends its dumps with DUMP_UNSYNCED instead of DUMP_END, and sends DUMP_END
once it is synced: two nodes restarted together must not take each other's
empty stores for the domain's (Session.peer_unsynced marks such a peer).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import time

from sroamd.config import Config, format_peer
from sroamd.flood_policy import (DATA_REFUSALS, SESSION_REFUSALS, Admission, DataPolicy,
                                 RoamingView, parse_host)
from sroamd.loglimit import LogLimiter
from sroamd.store import Datum, Outcome, Store
from sroamd.wire.flood import (DUMP_BEGIN, DUMP_BEGIN_BODY, DUMP_END, DUMP_END_BODY,
                               DUMP_UNSYNCED, DUMP_UNSYNCED_BODY,
                               HANDSHAKE_BYTES, HANDSHAKE_LEN, MAX_BODY, UPDATE_FIXED,
                               FloodFormatError, Update, build_fields, parse_handshake,
                               parse_stream)

log = logging.getLogger("sroamd.flood")

MAX_PENDING_OUTPUT = 4 * 1024 * 1024  # steady-state bytes queued to one peer before we give up on it
HANDSHAKE_TIMEOUT = 30.0
PARTIAL_TLV_TIMEOUT = 30.0  # seconds one TLV may stay incomplete
KEEPALIVE_IDLE = 30  # seconds of silence before TCP keepalive probes start
KEEPALIVE_INTERVAL = 10
KEEPALIVE_COUNT = 3
USER_TIMEOUT_MS = 60_000  # data unacknowledged this long: the peer is gone
DUMP_BATCH = 512  # data built and written at a time
DUMP_HIGH_WATER = 256 * 1024  # unsent bytes above which the dump waits for the peer
DUMP_STALL_TIMEOUT = 120.0  # the dump waited this long for the peer to read: close
SYNC_QUIET = 0.5  # seconds without an Update after which an unmarked dump is complete
ROAMING_VIEW_TTL = 1.0  # seconds the roaming interfaces' addresses are reused
RECONNECT_MIN = 1.0
RECONNECT_MAX = 30.0
READ_SIZE = 65536

SESSION_CLOSES = ("partial_tlv", "output_cap", "dump_stalled", "malformed", "handshake_timeout")


class Session:
    """One TCP connection to a peer, in either direction."""

    def __init__(self, flooder: "Flooder", reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, name: str, outgoing: bool):
        self.flooder = flooder
        self.reader = reader
        self.writer = writer
        self.name = name
        self.outgoing = outgoing
        self.established = False  # the peer's handshake is in (our dump is under way)
        self.dump_sent = False  # our whole dump has been handed to the socket
        self.dump_received = False  # the peer's whole dump is in (see the module doc)
        self.end_sent = False  # our DUMP_END went out (only once we are synced)
        self.peer_unsynced = False  # the peer's dump ended with DUMP_UNSYNCED
        self.since = time.monotonic()
        self.updates_in = 0
        self.updates_out = 0
        self.refused = 0  # updates from this peer refused by the data policy
        self.closed = False
        self._out: list[bytes] = []  # gathered output, written by _flush
        self._pending: list[Datum] = []  # data to send, built as a batch by _flush
        self._flush_handle: asyncio.Handle | None = None
        self._dump_task: asyncio.Task | None = None
        self._partial_timer: asyncio.TimerHandle | None = None
        self._quiet_timer: asyncio.TimerHandle | None = None
        self._peer_marks_dump = False
        self._last_update = 0.0

    def __repr__(self) -> str:
        return f"<Session {self.name}>"

    # -- output ------------------------------------------------------------

    def send_updates(self, data) -> None:
        """Data to send, built at the end of the current burst: all of a
        burst's data go out as one batch of TLVs (wire.flood.build_updates),
        each with its state at that time."""
        if self.closed:
            return
        self._pending.extend(data)
        self._schedule_flush()

    def _queue(self, data: bytes) -> None:
        """Output written at the end of the current burst (one send for many updates)."""
        self._build_pending()  # (after the data queued before it)
        self._out.append(data)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._flush()
                return
            self._flush_handle = loop.call_soon(self._flush)

    def _build_pending(self) -> None:
        if self._pending:
            data, self._pending = self._pending, []
            built, count = self.flooder.build_data(data)
            if built:
                self.updates_out += count
                self._out.append(built)

    def _flush(self, capped: bool = True) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self.closed:
            self._out.clear()
            self._pending.clear()
            return
        self._build_pending()
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        if capped and self.writer.transport.get_write_buffer_size() + len(data) > MAX_PENDING_OUTPUT:
            log.warning("peer %s is not reading (over %d bytes pending): disconnecting",
                        self.name, MAX_PENDING_OUTPUT)
            self.flooder.closes["output_cap"] += 1
            self.close()
            return
        self.writer.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._out.clear()
            self._pending.clear()
            for timer in (self._flush_handle, self._partial_timer, self._quiet_timer):
                if timer is not None:
                    timer.cancel()
            self._flush_handle = self._partial_timer = self._quiet_timer = None
            self.writer.transport.abort()

    # -- the session -------------------------------------------------------

    def _configure_socket(self) -> None:
        sock = self.writer.get_extra_info("socket")
        if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
                   (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
        for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                            ("TCP_KEEPCNT", KEEPALIVE_COUNT), ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS)):
            if hasattr(socket, name):
                options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
        for level, option, value in options:
            try:
                sock.setsockopt(level, option, value)
            except OSError as e:
                log.debug("peer %s: setsockopt %d: %s", self.name, option, e)
        # drain() (the dump) waits while more than this is unsent.
        self.writer.transport.set_write_buffer_limits(high=DUMP_HIGH_WATER,
                                                      low=DUMP_HIGH_WATER // 4)

    async def run(self) -> None:
        """Speak the protocol until the connection ends; never raises for peer faults."""
        self._configure_socket()
        try:
            self.writer.write(HANDSHAKE_BYTES)
            handshake = await asyncio.wait_for(self.reader.readexactly(HANDSHAKE_LEN),
                                               HANDSHAKE_TIMEOUT)
            parse_handshake(handshake)
            log.info("peer %s: handshake received", self.name)
            # Only now that the peer speaks our protocol does it get the dump
            # (upstream floods before the handshake is in).
            self.established = True
            loop = asyncio.get_running_loop()
            self._last_update = time.monotonic()
            self._quiet_timer = loop.call_later(SYNC_QUIET, self._check_quiet)
            self._dump_task = loop.create_task(self._send_dump())
            await self._read_loop()
        except FloodFormatError as e:
            log.warning("peer %s sent a malformed message, closing: %s", self.name, e)
            self.flooder.malformed += 1
            self.flooder.closes["malformed"] += 1
        except asyncio.TimeoutError:
            log.warning("peer %s sent no handshake within %.0f s, closing",
                        self.name, HANDSHAKE_TIMEOUT)
            self.flooder.closes["handshake_timeout"] += 1
        except asyncio.IncompleteReadError:
            log.info("peer %s closed the connection before its handshake", self.name)
        except OSError as e:
            log.info("peer %s: %s", self.name, e)
        finally:
            self.established = False
            self.close()
            if self._dump_task is not None and not self._dump_task.done():
                self._dump_task.cancel()
                try:
                    await self._dump_task
                except (asyncio.CancelledError, Exception):
                    pass

    async def _read_loop(self) -> None:
        buffer = bytearray()
        loop = asyncio.get_running_loop()
        while not self.closed:
            chunk = await self.reader.read(READ_SIZE)
            if not chunk:
                if not self.closed:
                    log.info("peer %s closed the connection", self.name)
                return
            buffer += chunk
            updates, used, markers = parse_stream(buffer)
            if used:
                del buffer[:used]
            if updates:
                self._last_update = time.monotonic()
                for update in updates:
                    self.updates_in += 1
                    self.flooder.receive(update, self)
            if markers:
                self._on_markers(markers)
            # A partial TLV must complete within PARTIAL_TLV_TIMEOUT (a peer
            # that progresses, however slowly, completes one now and then).
            if not buffer or used:
                if self._partial_timer is not None:
                    self._partial_timer.cancel()
                    self._partial_timer = None
            if buffer and self._partial_timer is None and not self.closed:
                self._partial_timer = loop.call_later(PARTIAL_TLV_TIMEOUT, self._partial_timeout)

    def _partial_timeout(self) -> None:
        self._partial_timer = None
        self.flooder.closes["partial_tlv"] += 1
        self.flooder.log_limited("close:partial_tlv", logging.WARNING,
                                 "peer %s left a TLV incomplete for %.0f s, closing",
                                 self.name, PARTIAL_TLV_TIMEOUT)
        self.close()

    # -- our dump ------------------------------------------------------------

    async def _send_dump(self) -> None:
        """The whole store, streamed: DUMP_BATCH data at a time, waiting
        while the peer has more than DUMP_HIGH_WATER bytes unread.  Data that
        change meanwhile are sent as they change (the session is established),
        so the snapshot is only a list of references."""
        store = self.flooder.store
        snapshot = None
        try:
            self._queue(DUMP_BEGIN)
            snapshot = list(store)
            for start in range(0, len(snapshot), DUMP_BATCH):
                now = store.clock()
                batch = [datum for datum in snapshot[start:start + DUMP_BATCH]
                         if store.remaining(datum, now) > 0 and store.get(datum.key) is datum]
                # (expired or forgotten since: left out)
                self._build_pending()  # changes queued meanwhile go first
                built, count = self.flooder.build_data(batch)
                self.updates_out += count
                self._out.append(built)
                self._flush(capped=False)
                if self.closed:
                    return
                await self._wait_for_room()
                if self.closed:
                    return
            snapshot = None
            self.end_sent = self.flooder.store_synced
            self._queue(DUMP_END if self.end_sent else DUMP_UNSYNCED)
            self._flush(capped=False)
            self.dump_sent = True
            log.info("peer %s: dump sent", self.name)
        except (ConnectionError, OSError) as e:
            log.info("peer %s: %s", self.name, e)
            e.__traceback__ = None  # the reader keeps e: no cycle through this frame
            self.close()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("peer %s: dump failed", self.name)
            self.close()
        finally:
            # A peer that goes mid-dump raises here an exception its
            # StreamReader keeps: the traceback holds this frame, and the
            # frame the snapshot (200,000 references are 1.6 MB), in a cycle
            # only the gc's rare full collections free (one per session
            # churned: 13 MB a round of 30 before this).
            snapshot = None

    async def _wait_for_room(self) -> None:
        transport = self.writer.transport
        if transport.get_write_buffer_size() > DUMP_HIGH_WATER:
            try:
                await asyncio.wait_for(self.writer.drain(), DUMP_STALL_TIMEOUT)
            except asyncio.TimeoutError:
                log.warning("peer %s read none of our dump for %.0f s, closing",
                            self.name, DUMP_STALL_TIMEOUT)
                self.flooder.closes["dump_stalled"] += 1
                self.close()
                return
        # Let the read loop and every other task run between batches.
        await asyncio.sleep(0)

    # -- the peer's dump -----------------------------------------------------

    def _on_markers(self, markers: list[bytes]) -> None:
        for marker in markers:
            if marker == DUMP_BEGIN_BODY:
                self._peer_marks_dump = True
                if self._quiet_timer is not None:
                    self._quiet_timer.cancel()
                    self._quiet_timer = None
            elif marker == DUMP_UNSYNCED_BODY:
                self.peer_unsynced = True  # its whole store, but not the domain's
            elif marker == DUMP_END_BODY:
                self.peer_unsynced = False
                if not self.dump_received:
                    self._dump_complete("end marker")

    def _check_quiet(self) -> None:
        self._quiet_timer = None
        if self.closed or self.dump_received or self._peer_marks_dump:
            return
        wait = self._last_update + SYNC_QUIET - time.monotonic()
        if wait > 0:
            self._quiet_timer = asyncio.get_running_loop().call_later(wait, self._check_quiet)
            return
        self._dump_complete(f"{SYNC_QUIET} s without an update")

    def _dump_complete(self, how: str) -> None:
        self.dump_received = True
        log.info("peer %s: its dump is in (%s; %d updates in %.2f s)", self.name, how,
                 self.updates_in, time.monotonic() - self.since)
        self.flooder._dump_received(self)


class Flooder:
    """Owns the listening sockets, the configured peers and all sessions."""

    def __init__(self, store: Store, listen_port: int | None = None,
                 peers: list[tuple[str, int]] = (), config: Config | None = None):
        config = config if config is not None else Config()
        self.store = store
        self.listen_port = listen_port
        self.peers = list(peers)
        self.listen = [str(a) for a in config.flood_listen]  # empty: every address
        self.interfaces = list(config.interfaces)
        self.admission = Admission.from_config(config, self.peers)
        self.data_policy = DataPolicy.from_config(config)
        self.sessions: set[Session] = set()
        self.peer_state: dict[str, str] = {format_peer(p): "connecting" for p in self.peers}
        self.synced = False  # a peer's whole dump came in (module doc)
        self.store_synced = True  # our store is the domain's (module doc; the daemon sets it)
        self.on_synced: list = []  # called once, with the peer's name, when synced
        self.malformed = 0
        self.refused_sessions = collections.Counter({r: 0 for r in SESSION_REFUSALS})
        self.refused_data = collections.Counter({r: 0 for r in DATA_REFUSALS})
        self.closes = collections.Counter({r: 0 for r in SESSION_CLOSES})
        self.times_clamped = 0
        self.listener_errors = 0
        self._limiters: dict[str, LogLimiter] = {}
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._view: RoamingView | None = None
        self._view_at = 0.0
        # key -> (datum, seqno, remaining, value, TLV) built in this burst
        store.listeners.append(self._on_store_change)

    async def start(self) -> None:
        for peer in self.admission.peers_in_served_prefixes():
            log.warning("peer %s is inside a served prefix: its connections to us will be "
                        "refused as from the client side (ours to it work); number the "
                        "backbone outside the served prefixes (or in the first /64 of the "
                        "IPv6 prefix, which is never handed out)", peer)
        if self.listen_port is not None:
            # host=None: one socket per address family, IPv4 and IPv6.
            self._server = await asyncio.start_server(
                self._accept, host=self.listen or None, port=self.listen_port,
                reuse_address=True)
            log.info("listening for peers on port %d (%s)", self.listen_port,
                     ", ".join(self.listen) or "every address")
        for peer in self.peers:
            self._spawn(self._keep_connected(peer))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for session in list(self.sessions):
            session.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def log_limited(self, what: str, level: int, message: str, *args, exc_info=None) -> None:
        """Log, at most once a minute for each kind of event `what` (a fixed
        set: reasons of refusal and closing)."""
        limiter = self._limiters.get(what)
        if limiter is None:
            limiter = self._limiters[what] = LogLimiter(log)
        limiter.log(level, message, *args, exc_info=exc_info)

    # -- sessions ----------------------------------------------------------

    async def _accept(self, reader, writer) -> None:
        # asyncio.start_server runs this in a task of its own: track it, so
        # that stop() cancels and awaits it like the others (an untracked one
        # cancelled at exit makes Python 3.11 log a spurious traceback).
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            peername = writer.get_extra_info("peername")
            name = format_peer((str(parse_host(peername[0])), peername[1]))
            reason = self._admit(writer)
            if reason is not None:
                self._refuse(reason, name, writer)
                return
            await self._run_session(Session(self, reader, writer, name, outgoing=False))
        except asyncio.CancelledError:
            pass  # shutting down
        finally:
            self._tasks.discard(task)

    def _admit(self, writer) -> str | None:
        peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        remote_scope = peer[3] if len(peer) > 3 else 0
        local_scope = local[3] if len(local) > 3 else 0
        inbound = [s for s in self.sessions if not s.outgoing]
        from_remote = sum(1 for s in inbound
                          if (s.writer.get_extra_info("peername") or ("",))[0] == peer[0])
        return self.admission.check(parse_host(local[0]), local_scope, parse_host(peer[0]),
                                    remote_scope, self._roaming_view(), len(inbound),
                                    from_remote)

    def _refuse(self, reason: str, name: str, writer) -> None:
        self.refused_sessions[reason] += 1
        self.log_limited(f"session:{reason}", logging.WARNING,
                         "refused a flooding session from %s to %s: %s", name,
                         writer.get_extra_info("sockname")[0], describe_reason(reason))
        writer.transport.abort()

    def _roaming_view(self) -> RoamingView:
        """The roaming interfaces' indexes and addresses, read at accept time
        (accepts are rare; reused for ROAMING_VIEW_TTL)."""
        if not self.interfaces:
            return RoamingView()
        now = time.monotonic()
        if self._view is None or now - self._view_at > ROAMING_VIEW_TTL:
            try:
                self._view = read_roaming_view(self.interfaces)
            except Exception as e:  # (netlink, or a message pyroute2 cannot decode)
                self.log_limited("roaming_view", logging.WARNING,
                                 "cannot read the roaming interfaces' addresses (%s): judging "
                                 "sessions by the gateway address and prefixes only", e)
                self._view = RoamingView()
            self._view_at = now
        return self._view

    async def _run_session(self, session: Session) -> None:
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)

    async def _keep_connected(self, peer: tuple[str, int]) -> None:
        """Connect to a configured peer, and again whenever the connection drops."""
        name = format_peer(peer)
        delay = RECONNECT_MIN
        while True:
            self.peer_state[name] = "connecting"
            try:
                reader, writer = await asyncio.open_connection(*peer)
            except OSError as e:
                log.info("peer %s: cannot connect (%s), retrying in %.0f s", name, e.strerror or e, delay)
                self.peer_state[name] = f"down: {e.strerror or e}"
            else:
                self.peer_state[name] = "up"
                session = Session(self, reader, writer, name, outgoing=True)
                await self._run_session(session)
                self.peer_state[name] = "down"
                if session.updates_in or time.monotonic() - session.since > RECONNECT_MAX:
                    delay = RECONNECT_MIN  # it worked for a while: retry promptly
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    def mark_store_synced(self, synced: bool = True) -> None:
        """Our store is (or is not yet) the domain's: dumps end with DUMP_END
        (or DUMP_UNSYNCED); sessions whose dump ended unsynced get DUMP_END."""
        self.store_synced = synced
        if not synced:
            return
        for session in self.sessions:
            if session.dump_sent and not session.end_sent and not session.closed:
                session.end_sent = True
                session._queue(DUMP_END)

    def sessions_with_synced_peers(self) -> int:
        """Established sessions to peers that did not say they are unsynced."""
        return sum(1 for s in self.sessions if s.established and not s.peer_unsynced)

    def _dump_received(self, session: Session) -> None:
        if self.synced:
            return
        self.synced = True
        log.info("synced: the whole dump of peer %s is in", session.name)
        for callback in list(self.on_synced):
            try:
                callback(session.name)
            except Exception:
                log.exception("on_synced callback %r failed", callback)

    # -- data --------------------------------------------------------------

    def receive(self, update: Update, session) -> None:
        """An Update from a peer: validated, merged, answered.  Never raises."""
        reason, remaining = self.data_policy.check(update.key, update.value, update.time,
                                                   self.store)
        if reason is not None:
            self.refused_data[reason] += 1
            if isinstance(session, Session):
                session.refused += 1
            self.log_limited(f"data:{reason}", logging.WARNING,
                             "refused an update from %s: %s (key %s, value %s, time %d)",
                             getattr(session, "name", session), describe_reason(reason),
                             update.key.hex(), update.value.hex(), update.time)
            return
        if remaining != update.time:
            self.times_clamped += 1
            self.log_limited("data:time_clamped", logging.WARNING,
                             "update from %s for key %s: remaining time %d cut to %d",
                             getattr(session, "name", session), update.key.hex(), update.time,
                             remaining)
        try:
            errors = self.store.listener_errors
            outcome, datum = self.store.receive(update.key, update.seqno, update.value,
                                                remaining, origin=session)
            if self.store.listener_errors != errors:
                # The store contained a failing listener (it logs it): count
                # it here too, with the peer that sent the datum.
                self.listener_errors += self.store.listener_errors - errors
            # CHANGED and CONFLICT_LOST were passed on to the other sessions by
            # _on_store_change.  A conflict also goes back to the sender: when we
            # won, it must adopt our value; when we lost, our echo lets a sender
            # that decided the other way settle the disagreement.
            if outcome in (Outcome.CONFLICT_WON, Outcome.CONFLICT_LOST):
                session.send_updates([datum])
        except Exception:
            # A listener (routes, roaming, the client service) failed on this
            # datum: the datum is merged, the session and the others go on.
            self.listener_errors += 1
            self.log_limited("listener_error", logging.ERROR,
                             "handling the update for key %s from %s failed",
                             update.key.hex(), getattr(session, "name", session),
                             exc_info=True)

    def build_data(self, data: list[Datum]) -> tuple[bytes, int]:
        """The Update TLVs of data now (their remaining times counted now), built
        as one batch; and how many there are (a datum too large for a TLV is
        left out, and logged).  (Each session builds its own: at 0.3 us a TLV,
        sharing them between sessions saved nothing.)"""
        store = self.store
        now = store.clock()
        fields: list[tuple] = []
        for datum in data:
            if UPDATE_FIXED + len(datum.key) + len(datum.value) > MAX_BODY:
                log.warning("not sending %s: datum too large for one Update TLV",
                            datum.key.hex())
                continue
            fields.append((datum.key, datum.seqno, datum.value, store.remaining(datum, now)))
        return (build_fields(fields), len(fields)) if fields else (b"", 0)

    def _on_store_change(self, datum: Datum, old: bytes | None, origin: object) -> None:
        for session in self.sessions:
            if session is not origin and session.established:
                session.send_updates((datum,))

    # -- status --------------------------------------------------------------

    def status(self) -> list[dict]:
        """Live sessions, for status and SIGUSR1 dumps."""
        sessions = [{"peer": s.name, "direction": "out" if s.outgoing else "in",
                     "established": s.established, "updates_in": s.updates_in,
                     "updates_out": s.updates_out,
                     "refused": getattr(s, "refused", 0),
                     "dump_sent": getattr(s, "dump_sent", False),
                     "dump_received": getattr(s, "dump_received", False),
                     "seconds": int(time.monotonic() - s.since)}
                    for s in self.sessions]
        return sessions

    def counters(self) -> dict:
        """What the flooding boundary refused, cut and closed, for `ubus call sroamd status`."""
        return {
            "synced": self.synced,
            "listen": list(self.listen) or ["*"],
            "sessions_in": sum(1 for s in self.sessions if not s.outgoing),
            "sessions_out": sum(1 for s in self.sessions if s.outgoing),
            "max_sessions_in": self.admission.max_inbound,
            "refused_sessions": dict(self.refused_sessions),
            "refused_data": dict(self.refused_data),
            "times_clamped": self.times_clamped,
            "listener_errors": self.listener_errors,
            "closed_sessions": dict(self.closes),
            "max_data": self.data_policy.max_data,
            "max_time": self.data_policy.max_time,
        }


REASONS = {
    "roaming_interface": "it came in on a roaming interface (the client side)",
    "client_prefix": "its source is in a served prefix (the client side)",
    "roaming_subnet": "its source is on a roaming interface's subnet (the client side)",
    "not_allowed": "its source is not in flood_allow",
    "too_many": "too many flooding sessions",
    "too_many_from_source": "too many flooding sessions from that address",
    "kind": "unknown kind of key",
    "key_length": "wrong key length for its kind",
    "value": "value of the wrong shape",
    "prefix": "lease outside our prefixes",
    "reserved": "lease of an address no client holds (network, broadcast, gateway, first /64)",
    "store_full": "new key while the store is full (max_data)",
}


def describe_reason(reason: str) -> str:
    return REASONS.get(reason, reason)


def read_roaming_view(names: list[str]) -> RoamingView:
    """The roaming interfaces' indexes, addresses and (global) subnets, from
    the kernel.  Link-local subnets are left out: every interface has
    fe80::/64; link-local connections are judged by their scope instead."""
    import ipaddress

    from sroamd.rtnl import Rtnl
    from pyroute2.netlink.rtnl import RTM_GETADDR
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

    indexes = set()
    for name in names:
        try:
            indexes.add(socket.if_nametoindex(name))
        except OSError:
            continue  # absent now
    if not indexes:
        return RoamingView()
    addresses = set()
    networks = []
    rtnl = Rtnl()
    try:
        for family in (socket.AF_INET, socket.AF_INET6):
            request = ifaddrmsg()
            request["family"] = family
            for msg in rtnl.dump(request, RTM_GETADDR):
                if msg["index"] not in indexes:
                    continue
                text = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
                if text is None:
                    continue
                address = ipaddress.ip_address(text)
                addresses.add(address)
                if not (address.version == 6 and address.is_link_local):
                    networks.append(ipaddress.ip_network((address, msg["prefixlen"]), strict=False))
    finally:
        rtnl.close()
    return RoamingView(frozenset(indexes), frozenset(addresses), tuple(networks))
