"""Flooding the store to peers over TCP (asyncio adapter around store + wire).

Every session, accepted or connected, works the same way: send our
handshake, wait for the peer's, then send a dump of the whole store, and from
then on every change.  A change is sent to every established session except
the one it came from.  Conflicts are answered to the sender (see store.py),
so both sides of a conflict converge on one value.

Memory per session is bounded: the input buffer never holds more than one
partial TLV, and a peer whose unsent output exceeds MAX_PENDING_OUTPUT (it
stopped reading) is disconnected rather than buffered without limit.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

from sroamd.config import format_peer
from sroamd.store import Datum, Outcome, Store
from sroamd.wire.flood import (HANDSHAKE_BYTES, HANDSHAKE_LEN, FloodFormatError,
                               Update, build_update, parse_handshake, parse_tlvs)

log = logging.getLogger("sroamd.flood")

MAX_PENDING_OUTPUT = 4 * 1024 * 1024  # bytes queued to one peer before we give up on it
HANDSHAKE_TIMEOUT = 30.0
RECONNECT_MIN = 1.0
RECONNECT_MAX = 30.0
READ_SIZE = 65536


class Session:
    """One TCP connection to a peer, in either direction."""

    def __init__(self, flooder: "Flooder", reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, name: str, outgoing: bool):
        self.flooder = flooder
        self.reader = reader
        self.writer = writer
        self.name = name
        self.outgoing = outgoing
        self.established = False  # the peer's handshake is in and our dump sent
        self.since = time.monotonic()
        self.updates_in = 0
        self.updates_out = 0
        self.closed = False

    def __repr__(self) -> str:
        return f"<Session {self.name}>"

    def send_updates(self, data: list[Datum]) -> None:
        if self.closed:
            return
        store = self.flooder.store
        chunks = []
        for datum in data:
            try:
                chunks.append(build_update(Update(datum.key, datum.seqno, datum.value,
                                                  store.remaining(datum))))
            except FloodFormatError as e:
                log.warning("not sending %s to %s: %s", datum.key.hex(), self.name, e)
        self.updates_out += len(chunks)
        self._write(b"".join(chunks))

    def _write(self, data: bytes) -> None:
        if self.writer.transport.get_write_buffer_size() + len(data) > MAX_PENDING_OUTPUT:
            log.warning("peer %s is not reading (over %d bytes pending): disconnecting",
                        self.name, MAX_PENDING_OUTPUT)
            self.close()
            return
        self.writer.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.transport.abort()

    async def run(self) -> None:
        """Speak the protocol until the connection ends; never raises for peer faults."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.writer.write(HANDSHAKE_BYTES)
            handshake = await asyncio.wait_for(self.reader.readexactly(HANDSHAKE_LEN),
                                               HANDSHAKE_TIMEOUT)
            parse_handshake(handshake)
            log.info("peer %s: handshake received", self.name)
            # Only now that the peer speaks our protocol does it get the dump
            # (upstream floods before the handshake is in).
            self.established = True
            self.send_updates(list(self.flooder.store.live_data()))
            buffer = bytearray()
            while not self.closed:
                chunk = await self.reader.read(READ_SIZE)
                if not chunk:
                    log.info("peer %s closed the connection", self.name)
                    break
                buffer += chunk
                updates, used = parse_tlvs(buffer)
                del buffer[:used]
                for update in updates:
                    self.updates_in += 1
                    self.flooder.receive(update, self)
        except FloodFormatError as e:
            log.warning("peer %s sent a malformed message, closing: %s", self.name, e)
            self.flooder.malformed += 1
        except asyncio.TimeoutError:
            log.warning("peer %s sent no handshake within %.0f s, closing",
                        self.name, HANDSHAKE_TIMEOUT)
        except asyncio.IncompleteReadError:
            log.info("peer %s closed the connection before its handshake", self.name)
        except OSError as e:
            log.info("peer %s: %s", self.name, e)
        finally:
            self.established = False
            self.close()


class Flooder:
    """Owns the listening socket, the configured peers and all sessions."""

    def __init__(self, store: Store, listen_port: int | None,
                 peers: list[tuple[str, int]]):
        self.store = store
        self.listen_port = listen_port
        self.peers = peers
        self.sessions: set[Session] = set()
        self.peer_state: dict[str, str] = {format_peer(p): "connecting" for p in peers}
        self.malformed = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        store.listeners.append(self._on_store_change)

    async def start(self) -> None:
        if self.listen_port is not None:
            # host=None: one socket per address family, IPv4 and IPv6.
            self._server = await asyncio.start_server(
                self._accept, host=None, port=self.listen_port, reuse_address=True)
            log.info("listening for peers on port %d", self.listen_port)
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

    # -- sessions ----------------------------------------------------------

    async def _accept(self, reader, writer) -> None:
        # asyncio.start_server runs this in a task of its own: track it, so
        # that stop() cancels and awaits it like the others (an untracked one
        # cancelled at exit makes Python 3.11 log a spurious traceback).
        task = asyncio.current_task()
        self._tasks.add(task)
        host, port = writer.get_extra_info("peername")[:2]
        name = format_peer((host.removeprefix("::ffff:"), port))
        try:
            await self._run_session(Session(self, reader, writer, name, outgoing=False))
        except asyncio.CancelledError:
            pass  # shutting down
        finally:
            self._tasks.discard(task)

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

    # -- data --------------------------------------------------------------

    def receive(self, update: Update, session: Session) -> None:
        outcome, datum = self.store.receive(update.key, update.seqno, update.value,
                                            update.time, origin=session)
        # CHANGED and CONFLICT_LOST were passed on to the other sessions by
        # _on_store_change.  A conflict also goes back to the sender: when we
        # won, it must adopt our value; when we lost, our echo lets a sender
        # that decided the other way settle the disagreement.
        if outcome in (Outcome.CONFLICT_WON, Outcome.CONFLICT_LOST):
            session.send_updates([datum])

    def _on_store_change(self, datum: Datum, old: bytes | None, origin: object) -> None:
        for session in self.sessions:
            if session is not origin and session.established:
                session.send_updates([datum])

    def status(self) -> list[dict]:
        """Configured peers and live sessions, for status and SIGUSR1 dumps."""
        sessions = [{"peer": s.name, "direction": "out" if s.outgoing else "in",
                     "established": s.established, "updates_in": s.updates_in,
                     "updates_out": s.updates_out,
                     "seconds": int(time.monotonic() - s.since)}
                    for s in self.sessions]
        return sessions
