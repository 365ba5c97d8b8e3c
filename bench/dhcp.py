"""DHCP load benchmark of sroamd's client service, in network namespaces (root).

    python3 bench/dhcp.py [--exchanges N]

Builds an AP namespace running the client service (tests/client_service_runner.py)
on wl0 (198.18.0.1/16, the RFC 2544 benchmarking range: room for 10,000
leases) and a load-generator namespace on the AP's bridge, then measures:

  dora_per_s      DISCOVER-OFFER-REQUEST-ACK exchanges per second, closed
                  loop with WINDOW exchanges outstanding (saturation)
  dora_p50_ms,    latency of a whole exchange (DISCOVER sent -> ACK received)
  dora_p99_ms     at an open-loop offered load of LATENCY_RATE exchanges/s
  ..._10k         the same with 10,000 leases already in the store
  assoc_p50_ms    client_arrived() of a client with an IPv4 and an IPv6 lease:
                  two routes installed, ARP + NA (+ RA) sent (in-process timing)

The load generator is our own (the --generate mode below, a raw packet
socket in the generator namespace), not perfdhcp: perfdhcp always acts as a
relay (it sets giaddr), so the server would answer it over UDP and never run
the path real clients take: replies built as Ethernet frames to a client
that has no address yet (unicast to yiaddr at the client's MAC), and the
client served (host route installed, ARP/NA sent) on its first DHCP
message.  Every generated client has its own MAC.

Prints one JSON object on its last line.  Cleans up its namespaces and
processes whatever happens (netlab), and stops by itself.
"""

import json
import os
import random
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

WINDOW = 16  # outstanding exchanges in the throughput run
LATENCY_RATE = 500  # exchanges/s offered in the latency run
TIMEOUT = 2.0  # seconds before an exchange counts as lost


# -- the load generator (runs in the generator namespace) ------------------

def generate(ifname: str, count: int, window: int, rate: float, seed: int) -> dict:
    from sroamd.wire import dhcp
    from sroamd.wire.ip import BROADCAST_MAC, ipv4_udp_frame

    rng = random.Random(seed)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    sock.bind((ifname, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    clients = {}  # xid -> [mac, t_discover, state]
    macs = [bytes([2]) + rng.randbytes(5) for _ in range(count)]
    latencies, lost = [], 0
    sent = 0
    start = time.perf_counter()
    last_ack = start

    def send(message):
        payload = dhcp.build(message)
        sock.send(ipv4_udp_frame(message.chaddr[:6], BROADCAST_MAC, bytes(4), b"\xff" * 4,
                                 68, 67, payload))

    def discover():
        nonlocal sent
        mac = macs[sent]
        xid = rng.getrandbits(32)
        clients[xid] = [mac, time.perf_counter()]
        send(dhcp.DhcpMessage(xid=xid, chaddr=mac + bytes(10),
                              options={dhcp.OPT_MESSAGE_TYPE: dhcp.DISCOVER}))
        sent += 1

    while sent < count or clients:
        now = time.perf_counter()
        if rate:
            while sent < count and start + sent / rate <= now:
                discover()
        else:
            while sent < count and len(clients) < window:
                discover()
        for xid, (mac, t0) in list(clients.items()):
            if now - t0 > TIMEOUT:
                del clients[xid]
                lost += 1
        wait = 0.05
        if rate and sent < count:
            wait = max(0.0, min(wait, start + sent / rate - time.perf_counter()))
        sock.settimeout(wait)
        try:
            frame = sock.recv(4096)
        except (socket.timeout, BlockingIOError):
            continue
        if len(frame) < 42 + 240 or frame[23] != 17 or frame[36:38] != b"\x00\x44":
            continue
        try:
            reply = dhcp.parse(frame[42:])
        except dhcp.DhcpFormatError:
            continue
        entry = clients.get(reply.xid)
        if entry is None or reply.op != dhcp.BOOTREPLY:
            continue
        if reply.message_type == dhcp.OFFER:
            send(dhcp.DhcpMessage(xid=reply.xid, chaddr=entry[0] + bytes(10), options={
                dhcp.OPT_MESSAGE_TYPE: dhcp.REQUEST,
                dhcp.OPT_REQUESTED_ADDRESS: reply.yiaddr,
                dhcp.OPT_SERVER_ID: reply.options[dhcp.OPT_SERVER_ID]}))
        elif reply.message_type == dhcp.ACK:
            last_ack = time.perf_counter()
            latencies.append((last_ack - entry[1]) * 1000)
            del clients[reply.xid]
        elif reply.message_type == dhcp.NAK:
            del clients[reply.xid]
            lost += 1
    elapsed = last_ack - start
    return {"completed": len(latencies), "lost": lost, "elapsed_s": elapsed,
            "per_s": len(latencies) / elapsed if elapsed > 0 else 0.0,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}


def percentile(values, pct):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(pct / 100 * (len(values) - 1))))]


# -- the driver (host side) ------------------------------------------------

def measure(prefill: int, exchanges: int) -> dict:
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from netlab import Lab, wait_for
    from test_client_service_netns import Service

    with Lab(dad=False) as lab:
        ap = lab.access_point("ap")
        ap.ns.addr("wl0", "198.18.0.1/16")
        ap.ns.ip("addr", "add", "fe80::44/64", "dev", "wl0")
        runner = os.path.join(ROOT, "tests", "client_service_runner.py")
        ctl = os.path.join(lab.dir, "ctl")
        proc = ap.ns.spawn(["env", f"PYTHONPATH={ROOT}", sys.executable, runner, ctl,
                            "--prefill", str(prefill), "--",
                            "-P", "198.18.0.0/16", "-P", "2001:db8:4444::/48",
                            "-N", "192.0.2.53", "-a", "198.18.0.1", "wl0"], name="sroamd")
        wait_for(lambda: "ready" in proc.output() or not proc.alive(), 60, what="service")
        service = Service.__new__(Service)
        service.path, service.proc = ctl, proc
        gen = lab.client("gen", ap, ifname="gen0")

        def run_generator(window, rate, seed):
            cp = gen.ns.run("env", f"PYTHONPATH={ROOT}", sys.executable, __file__, "--generate",
                            "gen0", str(exchanges), str(window), str(rate), str(seed),
                            timeout=120)
            return json.loads(cp.stdout.strip().splitlines()[-1])

        throughput = run_generator(WINDOW, 0, 1)
        latency = run_generator(0, LATENCY_RATE, 2)
        assoc = service(cmd="assoc_bench", ifname="wl0", n=200)
        status = service(cmd="status")
        proc.stop(timeout=30)
    return {"throughput": throughput, "latency": latency,
            "assoc_p50_ms": statistics.median(assoc["ms"]), "status": status}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        ifname, count, window, rate, seed = sys.argv[2:7]
        print(json.dumps(generate(ifname, int(count), int(window), float(rate), int(seed))))
        return
    exchanges = int(sys.argv[sys.argv.index("--exchanges") + 1]) if "--exchanges" in sys.argv else 2000
    empty = measure(0, exchanges)
    full = measure(10000, exchanges)
    for name, run in (("empty store", empty), ("10,000 leases", full)):
        print(f"{name}: throughput {run['throughput']}, latency at {LATENCY_RATE}/s "
              f"{run['latency']}, dhcp {run['status']['dhcp']}, routes {run['status']['routes']}",
              file=sys.stderr)
    result = {
        "dora_per_s": round(empty["throughput"]["per_s"], 1),
        "dora_p50_ms": round(empty["latency"]["p50_ms"], 3),
        "dora_p99_ms": round(empty["latency"]["p99_ms"], 3),
        "dora_per_s_10k": round(full["throughput"]["per_s"], 1),
        "dora_p50_ms_10k": round(full["latency"]["p50_ms"], 3),
        "dora_p99_ms_10k": round(full["latency"]["p99_ms"], 3),
        "assoc_p50_ms": round(empty["assoc_p50_ms"], 3),
        "lost": sum(r[k]["lost"] for r in (empty, full) for k in ("throughput", "latency")),
        "exchanges_per_run": exchanges,
        "latency_offered_rate": LATENCY_RATE,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
