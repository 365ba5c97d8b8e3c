#!/usr/bin/env python3
"""Traffic between a client and the server across roams (run inside namespaces).

  probe.py tcp-server PORT                 echo every line back, forever
  probe.py tcp-client HOST PORT OUT        send a line every 50 ms, check the
                                           echo; OUT gets "count" lines; exits
                                           1 if the connection ever breaks
  probe.py udp-echo PORT                   echo datagrams (IPv4 and IPv6)
  probe.py udp-probe HOST PORT OUT [MS]    a datagram every MS ms (10) to HOST
                                           (IPv4 or IPv6); OUT gets "seq
                                           send_time recv_time" for each echo
                                           received (monotonic s)
Stops on SIGTERM.
"""

import os
import select
import signal
import socket
import sys
import time


def tcp_server(port: int) -> None:
    server = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
    connections = []
    while True:
        ready, _, _ = select.select([server, *connections], [], [])
        for sock in ready:
            if sock is server:
                conn, _ = server.accept()
                connections.append(conn)
                continue
            data = sock.recv(65536)
            if not data:
                connections.remove(sock)
                sock.close()
            else:
                sock.sendall(data)


def tcp_client(host: str, port: int, out: str) -> None:
    sock = socket.create_connection((host, port), timeout=30)
    count = 0
    with open(out, "a", buffering=1) as f:
        while True:
            line = f"{count}\n".encode()
            sock.sendall(line)
            received = b""
            while not received.endswith(b"\n"):
                chunk = sock.recv(100)
                if not chunk:
                    f.write("closed\n")
                    sys.exit(1)
                received += chunk
            if received != line:
                f.write(f"mismatch {received!r}\n")
                sys.exit(1)
            count += 1
            f.write(f"{count}\n")
            time.sleep(0.05)


def udp_echo(port: int) -> None:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too (mapped)
    sock.bind(("::", port))
    while True:
        data, addr = sock.recvfrom(2048)
        try:
            sock.sendto(data, addr)
        except OSError:
            # No route back for a moment (EHOSTUNREACH while a roam's Babel
            # retraction is in and the new route not yet): a lost echo, not
            # the end of the echo server (and of every probe after it).
            pass


def udp_probe(host: str, port: int, out: str, interval_ms: float) -> None:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    interval = interval_ms / 1000
    sent: dict[int, float] = {}
    seq = 0
    next_send = time.monotonic()
    with open(out, "a", buffering=1) as f:
        while True:
            now = time.monotonic()
            if now >= next_send:
                try:
                    sock.sendto(seq.to_bytes(8, "big"), (host, port))
                except OSError:
                    pass  # no route for a moment: a lost probe
                sent[seq] = now
                seq += 1
                next_send += interval
            ready, _, _ = select.select([sock], [], [], max(0.0, next_send - time.monotonic()))
            if ready:
                try:
                    data, _ = sock.recvfrom(64)
                except OSError:
                    continue
                number = int.from_bytes(data[:8], "big")
                if number in sent:
                    f.write(f"{number} {sent.pop(number):.6f} {time.monotonic():.6f}\n")
            for old in [s for s in sent if s < seq - 1000]:
                del sent[old]


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "tcp-server":
        tcp_server(int(args[0]))
    elif mode == "tcp-client":
        tcp_client(args[0], int(args[1]), args[2])
    elif mode == "udp-echo":
        udp_echo(int(args[0]))
    elif mode == "udp-probe":
        udp_probe(args[0], int(args[1]), args[2], float(args[3]) if len(args) > 3 else 10.0)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
