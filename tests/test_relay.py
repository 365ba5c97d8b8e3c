"""The chaos tests' TCP relay (tests/relay.py) does what it promises."""

import socket
import threading
import time

import pytest

from relay import RelayHub


@pytest.fixture
def echo():
    """An echo server on loopback; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    conns = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conns.append(conn)
            threading.Thread(target=pump, args=(conn,), daemon=True).start()

    def pump(conn):
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in conns:
        conn.close()


@pytest.fixture
def hub():
    hub = RelayHub()
    yield hub
    hub.close()


def roundtrip(sock, data=b"ping", timeout=5.0):
    sock.settimeout(timeout)
    start = time.monotonic()
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        got += chunk
    assert got == data
    return time.monotonic() - start


def test_delay_keeps_order(hub, echo):
    link = hub.link("l", ("127.0.0.1", echo), delay=0.1, jitter=0.05, seed=1)
    with socket.create_connection(("127.0.0.1", link.port)) as s:
        assert 0.2 <= roundtrip(s) < 1.0  # both directions delayed
        s.settimeout(5)
        for i in range(50):  # jitter never reorders a stream
            s.sendall(b"%03d" % i)
        got = b""
        while len(got) < 150:
            got += s.recv(1000)
        assert got == b"".join(b"%03d" % i for i in range(50))


def test_stall_then_delivery(hub, echo):
    link = hub.link("l", ("127.0.0.1", echo))
    with socket.create_connection(("127.0.0.1", link.port)) as s:
        roundtrip(s)
        hub.stall(link, 0.5)
        assert 0.45 <= roundtrip(s) < 2.0


def test_reset_aborts_both_sides(hub, echo):
    link = hub.link("l", ("127.0.0.1", echo))
    with socket.create_connection(("127.0.0.1", link.port)) as s:
        roundtrip(s)
        hub.reset(link)
        s.settimeout(5)
        with pytest.raises((ConnectionResetError, ConnectionError)):
            if s.recv(10) == b"":
                raise ConnectionError("closed")


def test_partition_hold_and_drop(hub, echo):
    link = hub.link("l", ("127.0.0.1", echo))
    s = socket.create_connection(("127.0.0.1", link.port))
    roundtrip(s)
    hub.partition(link, "hold")
    s.sendall(b"held")
    s.settimeout(0.3)
    with pytest.raises(socket.timeout):
        s.recv(10)
    hub.heal(link)
    s.settimeout(5)
    assert s.recv(10) == b"held"
    hub.partition(link, "drop")
    with pytest.raises((ConnectionResetError, ConnectionError)):
        if s.recv(10) == b"":
            raise ConnectionError("closed")
    s.close()
    s = socket.create_connection(("127.0.0.1", link.port))  # accepted, then reset
    s.settimeout(5)
    with pytest.raises((ConnectionResetError, ConnectionError)):
        if s.recv(10) == b"":
            raise ConnectionError("closed")
    s.close()
    hub.heal(link)
    with socket.create_connection(("127.0.0.1", link.port)) as s:
        roundtrip(s)


def test_target_down_resets(hub):
    port = socket.create_server(("127.0.0.1", 0))
    dead = port.getsockname()[1]
    port.close()
    link = hub.link("l", ("127.0.0.1", dead))
    with socket.create_connection(("127.0.0.1", link.port)) as s:
        s.settimeout(5)
        with pytest.raises((ConnectionResetError, ConnectionError)):
            if s.recv(10) == b"":
                raise ConnectionError("closed")
