"""A test peer that speaks the flood protocol to a running sroamd.

Tests inject data and observe a daemon's store only through this, as another
node would: no reaching into the daemon's internals.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time

from sroamd.wire.flood import HANDSHAKE_BYTES, Update, build_update, parse_tlvs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


class FloodPeer:
    """Blocking client: handshake, then send and collect Update TLVs."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0,
                 source: str | None = None):
        # source: the local address to connect from (127.0.0.x on loopback,
        # to stand for several hosts)
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(HANDSHAKE_BYTES)
        self.buffer = bytearray()
        self.handshake = False
        self.closed = False  # the daemon closed the connection
        self.data: dict[bytes, Update] = {}
        self.received: list[tuple[float, Update]] = []

    def send(self, *updates: Update) -> None:
        self.sock.sendall(b"".join(build_update(u) for u in updates))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def poll(self, timeout: float) -> bool:
        """Read what arrives within timeout; False when the daemon closed."""
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, BlockingIOError):
            return True
        if not chunk:
            self.closed = True
            return False
        now = time.monotonic()
        self.buffer += chunk
        if not self.handshake:
            if len(self.buffer) < 4:
                return True
            assert bytes(self.buffer[:4]) == HANDSHAKE_BYTES, self.buffer[:4].hex()
            del self.buffer[:4]
            self.handshake = True
        updates, used = parse_tlvs(self.buffer)
        del self.buffer[:used]
        for update in updates:
            self.data[update.key] = update
            self.received.append((now, update))
        return True

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            if not self.poll(min(0.1, max(0.001, deadline - time.monotonic()))):
                return predicate(self)
        return predicate(self)

    def has(self, key: bytes, value: bytes | None = None) -> bool:
        update = self.data.get(key)
        return update is not None and (value is None or update.value == value)

    def close(self) -> None:
        self.sock.close()


class Node:
    """A sroamd process on loopback with flooding only (no interfaces)."""

    def __init__(self, port: int, peers: list[int], debug: int = 1, peer_host: str = "127.0.0.1"):
        self.port = port
        self.peers = peers
        self.peer_host = peer_host
        self.debug = debug
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        # Its own state dir: the node id is kept there (never in /etc here).
        self.state_dir = getattr(self, "state_dir", None) or tempfile.mkdtemp(prefix="sroamd-state-")
        args = [sys.executable, "-m", "sroamd", "-d", str(self.debug), "-f", str(self.port),
                "--state-dir", self.state_dir]
        for peer in self.peers:
            host = f"[{self.peer_host}]" if ":" in self.peer_host else self.peer_host
            args += ["-F", f"{host}:{peer}"]
        # A file, not a pipe: a pipe nobody reads would block the daemon.
        self.logfile = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, cwd=REPO, stderr=self.logfile)
        wait_listening(self.port)

    def kill(self, signo: int = 9) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signo)
            self.proc.wait(10)

    def log_text(self) -> str:
        self.logfile.seek(0)
        return self.logfile.read().decode(errors="replace")


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on port {port}")
