"""A TCP relay with faults under control, for the chaos tests (no netem here).

A RelayHub runs an asyncio event loop in a background thread; each Link it
holds listens on one socket and forwards every accepted connection to one
target, in both directions, with

  delay, jitter   each chunk read is delivered `delay + uniform(0, jitter)`
                  seconds later, never before the chunk read before it (a TCP
                  stream stays in order);
  stall(s)        nothing is delivered for s seconds (data are kept and
                  delivered afterwards, as a link that stops and recovers);
  reset()         every connection of the link is aborted, both sides, with
                  a TCP RST (SO_LINGER 0);
  partition(mode) "hold": connections stay open but nothing is delivered until
                  heal() (new connections are accepted and held too: as a
                  network that drops everything for a while, but shorter than
                  TCP's retransmission give-up);
                  "drop": every connection is reset, and new ones are reset as
                  soon as they are accepted (the peer reconnects with backoff);
  heal(reset)     delivery resumes (and, with reset=True, every connection is
                  aborted so that both ends reconnect at once).

A connection whose target refuses (a daemon that is down) is reset at once,
as the target's host would.  The listening and connecting sockets come from
factories, so a link can join two network namespaces (a socket stays in the
namespace it was made in).

Every control method is called from the test's thread; it runs in the hub's
loop and returns when done.  Random numbers come from a generator seeded per
link, so a run's delays are reproducible given the same chunks.
"""

from __future__ import annotations

import asyncio
import collections
import random
import socket
import struct
import threading
import time
from typing import Callable


def host_listener(host: str = "127.0.0.1") -> socket.socket:
    """A listening TCP socket on host, on a free port (the test's namespace)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(64)
    sock.setblocking(False)
    return sock


def host_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def _rst(writer: asyncio.StreamWriter | None) -> None:
    """Abort a connection with a TCP RST rather than a FIN."""
    if writer is None:
        return
    transport = writer.transport
    if transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


class _Pipe:
    """One direction of a relayed connection."""

    def __init__(self, conn: "_Conn", reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        self.conn = conn
        self.link = conn.link
        self.reader = reader
        self.writer = writer
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.last_due = 0.0
        self.eof = False
        self.more = asyncio.Event()

    async def read_loop(self) -> None:
        link = self.link
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                due = time.monotonic() + link.delay + link.rng.uniform(0, link.jitter)
                due = max(due, self.last_due)
                self.last_due = due
                self.queue.append((due, data))
                self.more.set()
        except (ConnectionError, OSError):
            self.conn.abort()  # a reset travels on as a reset
        finally:
            self.eof = True
            self.more.set()

    async def write_loop(self) -> None:
        link = self.link
        try:
            while True:
                if not self.queue:
                    if self.eof:
                        break
                    self.more.clear()
                    await self.more.wait()
                    continue
                due, data = self.queue[0]
                now = time.monotonic()
                if link.mode == "hold" or link.stall_until > now:
                    wait = None if link.mode == "hold" else link.stall_until - now
                    await link.wait_change(wait)
                    continue
                if due > now:
                    await asyncio.sleep(due - now)
                    continue
                self.queue.popleft()
                self.writer.write(data)
                link.bytes += len(data)
                await self.writer.drain()
            # The source closed: pass the close on once everything is delivered.
            if not self.writer.transport.is_closing():
                self.writer.close()
        except (ConnectionError, OSError):
            self.conn.abort()


class _Conn:
    def __init__(self, link: "Link", down: tuple, up: tuple):
        self.link = link
        self.down_reader, self.down_writer = down
        self.up_reader, self.up_writer = up
        self.pipes = [_Pipe(self, self.down_reader, self.up_writer),
                      _Pipe(self, self.up_reader, self.down_writer)]

    def abort(self) -> None:
        _rst(self.down_writer)
        _rst(self.up_writer)

    async def run(self) -> None:
        tasks = [asyncio.ensure_future(c) for p in self.pipes
                 for c in (p.read_loop(), p.write_loop())]
        try:
            await asyncio.wait(tasks)
        finally:
            for task in tasks:
                task.cancel()
            self.abort()


class Link:
    """One relayed path: listen socket -> target (address, in a namespace or not)."""

    def __init__(self, hub: "RelayHub", name: str, target: tuple[str, int], *,
                 listener: socket.socket, connect_socket: Callable[[], socket.socket],
                 delay: float = 0.0, jitter: float = 0.0, seed: int = 0):
        self.hub = hub
        self.name = name
        self.target = target
        self.listener = listener
        self.port = listener.getsockname()[1]
        self.connect_socket = connect_socket
        self.delay = delay
        self.jitter = jitter
        self.rng = random.Random(seed)
        self.mode = "up"  # "up", "hold" or "drop"
        self.stall_until = 0.0
        self.conns: set[_Conn] = set()
        self.accepted = 0
        self.resets = 0
        self.bytes = 0
        self._changed = asyncio.Event()
        self.server: asyncio.AbstractServer | None = None

    def __repr__(self) -> str:
        return f"<Link {self.name} :{self.port} -> {self.target} {self.mode}>"

    # -- in the hub's loop ---------------------------------------------------

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, sock=self.listener)

    async def wait_change(self, timeout: float | None) -> None:
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _accept(self, reader, writer) -> None:
        # asyncio.start_server runs this in a task of its own; cancelled at
        # close, it must not end with CancelledError (Python 3.11 logs that
        # as an error in a callback).
        try:
            await self._relay(reader, writer)
        except asyncio.CancelledError:
            _rst(writer)

    async def _relay(self, reader, writer) -> None:
        self.accepted += 1
        if self.mode == "drop":
            _rst(writer)
            return
        loop = asyncio.get_running_loop()
        sock = self.connect_socket()
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, self.target)
        except OSError:
            sock.close()
            _rst(writer)  # as the target's host answers for a closed port
            return
        up_reader, up_writer = await asyncio.open_connection(sock=sock)
        for w in (writer, up_writer):
            s = w.get_extra_info("socket")
            if s is not None:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.mode == "drop":  # partitioned while we were connecting
            _rst(writer)
            _rst(up_writer)
            return
        conn = _Conn(self, (reader, writer), (up_reader, up_writer))
        self.conns.add(conn)
        try:
            await conn.run()
        finally:
            self.conns.discard(conn)

    def _reset(self) -> None:
        if self.conns:
            self.resets += 1
        for conn in list(self.conns):
            conn.abort()

    async def _close(self) -> None:
        if self.server is not None:
            self.server.close()
        self._reset()


class RelayHub:
    """Owns the event loop thread and every Link."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="relay",
                                       daemon=True)
        self.thread.start()
        self.links: list[Link] = []

    def _run(self, fn, *args):
        async def call():
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(15)

    def link(self, name: str, target: tuple[str, int], *,
             listener: socket.socket | None = None,
             connect_socket: Callable[[], socket.socket] = host_socket,
             delay: float = 0.0, jitter: float = 0.0, seed: int = 0) -> Link:
        """A new link listening on `listener` (default: 127.0.0.1, a free port)."""
        if listener is None:
            listener = host_listener()
        listener.setblocking(False)

        async def make():
            link = Link(self, name, target, listener=listener,
                        connect_socket=connect_socket, delay=delay, jitter=jitter, seed=seed)
            await link.start()
            return link
        link = self._run(make)
        self.links.append(link)
        return link

    # -- controls (from the test's thread) --------------------------------

    def set_delay(self, link: Link, delay: float, jitter: float | None = None) -> None:
        def apply():
            link.delay = delay
            if jitter is not None:
                link.jitter = jitter
        self._run(apply)

    def stall(self, link: Link, seconds: float) -> None:
        def apply():
            link.stall_until = max(link.stall_until, time.monotonic() + seconds)
            link._notify()
        self._run(apply)

    def reset(self, link: Link) -> None:
        self._run(link._reset)

    def partition(self, link: Link, mode: str = "hold") -> None:
        assert mode in ("hold", "drop"), mode

        def apply():
            link.mode = mode
            if mode == "drop":
                link._reset()
            link._notify()
        self._run(apply)

    def heal(self, link: Link, reset: bool = False) -> None:
        def apply():
            link.mode = "up"
            link.stall_until = 0.0
            if reset:
                link._reset()
            link._notify()
        self._run(apply)

    def stats(self) -> dict[str, dict]:
        return {l.name: {"accepted": l.accepted, "resets": l.resets, "bytes": l.bytes,
                         "open": len(l.conns), "mode": l.mode} for l in self.links}

    def close(self) -> None:
        """Close every link and stop the loop; idempotent."""
        if self.loop.is_closed():
            return
        try:
            for link in self.links:
                try:
                    self._run(link._close)
                except Exception:
                    pass
            # Let the aborted connections' tasks finish, then cancel and
            # await whatever is left (nothing pending when the loop closes).
            async def settle():
                await asyncio.sleep(0.05)
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks, timeout=5) if tasks else None
            try:
                self._run(settle)
            except Exception:
                pass
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
