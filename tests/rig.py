"""The roaming rig: a Babel domain with three APs running sroamd, in namespaces.

Reused by the end-to-end tests, `make demo` and bench/roam.py.  Built on
netlab (tests/netlab.py), which removes everything it made when the Lab
closes, also on failure or Ctrl-C.

    srv  198.51.100.10, 2001:db8:5100::10   babeld on eth0
     |
    bb (backbone bridge, 203.0.113.0/24)
     |            |            |
    ap1          ap2          ap3          babeld on eth0 (203.0.113.N)
    wl0          wl0          wl0          hostapd (wired 802.1X) + sroamd;
                                           192.0.2.1/32 and fe80::44 on every wl0
    air-ap1      air-ap2      air-ap3      "air" bridges; a client's port is
       \\__ c1 (wpa_supplicant, udhcpc, SLAAC)  moved between them to roam

sroamd on each AP: -P 192.0.2.0/24 -P 2001:db8:4444::/48 -a 192.0.2.1,
flooding to the two other APs, stations from hostapd's control socket.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from typing import Iterable

from babel_monitor import BabelMonitor, local_path
from netlab import AccessPoint, Client, Hostapd, Lab, Process, Supplicant, wait_for

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SERVER_V4 = "198.51.100.10"
SERVER_V6 = "2001:db8:5100::10"
GATEWAY_V4 = "192.0.2.1"
GATEWAY_LL = "fe80::44"
PREFIX_V4 = "192.0.2.0/24"
PREFIX_V6 = "2001:db8:4444::/48"
DNS = ("198.51.100.53", "2001:db8:5100::53")
FLOOD_PORT = 4444
# babeld statements for every router of the rig (netlab.babeld adds
# redistribute proto 44 and 45 and kernel-priority 256 on the APs): what the
# README recommends ("The Babel side").  A new AP's babeld announces the
# client's route with its next Hello (or 0.75 to 1.25 hello intervals
# later): hello-interval 0.1 brings the handover outage from p50 330 ms to
# about 60 ms (bench/roam.py); smoothing-half-life 0 lets routers take the
# new route as soon as the old one is retracted.
BABEL_DEFAULTS = ("default hello-interval 0.1", "smoothing-half-life 0")

# The udhcpc script: what a distribution's default script does, for a /32
# lease whose router is not in the subnet (route to the router first).
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface" ;;
  bound|renew)
    ip -4 addr replace "$ip/$mask" dev "$interface"
    for r in $router; do
      ip -4 route replace "$r/32" dev "$interface"
      ip -4 route replace default via "$r" dev "$interface"
    done
    echo "{\\"event\\": \\"$1\\", \\"ip\\": \\"$ip\\", \\"router\\": \\"$router\\", \\"dns\\": \\"$dns\\"}" >> "$OUT"
    ;;
esac
exit 0
"""


@dataclass(eq=False)
class RigAP:
    ap: AccessPoint
    backbone_ip: str
    hostapd: Hostapd
    sroamd: Process | None = None
    babeld: Process | None = None
    # The command line it was started with: a restart (restart_sroamd) keeps
    # it, as procd does, and with it the state directory (the node id).
    sroamd_argv: list[str] | None = None

    @property
    def ns(self):
        return self.ap.ns

    @property
    def name(self):
        return self.ap.name


@dataclass(eq=False)
class RigClient:
    client: Client
    supplicant: Supplicant
    dhcp: Process
    dhcp_out: str
    at: RigAP
    history: list = field(default_factory=list)

    @property
    def ns(self):
        return self.client.ns

    @property
    def mac(self):
        return self.client.mac

    def ipv4(self) -> str | None:
        out = self.ns.ip("-j", "-4", "addr", "show", "dev", self.client.ifname)
        for info in json.loads(out or "[]"):
            for a in info.get("addr_info", []):
                return a["local"]
        return None

    def ipv6(self) -> str | None:
        out = self.ns.ip("-j", "-6", "addr", "show", "dev", self.client.ifname, "scope", "global")
        for info in json.loads(out or "[]"):
            for a in info.get("addr_info", []):
                # (iproute2 prints {} for each address the scope filter left out)
                if "local" in a and not a.get("tentative"):
                    return a["local"]
        return None

    def prefix64(self) -> str | None:
        address = self.ipv6()
        return str(ipaddress.IPv6Network((address, 64), strict=False)) if address else None


class Rig:
    """Three APs, a server and clients; call close() (or use `with`)."""

    def __init__(self, aps: int = 3, debug: int = 1, keep_dir: bool = False,
                 start_sroamd: bool = True, babel: Iterable[str] = (),
                 sroamd_args: Iterable[str] = (), star: bool = False):
        """start_sroamd=False: no sroamd yet (the caller starts each with
        start_sroamd(ap, peers=...), e.g. to put a relay between two).
        babel: babeld statements for every router, after BABEL_DEFAULTS
        (a later statement overrides an earlier one); sroamd_args: more
        command-line options for every sroamd.  star: the server and each
        AP on a link of their own to a core router (babeld), instead of all
        on one backbone link; the APs' backbone addresses are then /32s that
        Babel carries."""
        self.star = star
        self.lab = Lab(dad=False, keep_dir=keep_dir)
        self.debug = debug
        self.babel = list(BABEL_DEFAULTS) + list(babel)
        self.sroamd_extra = list(sroamd_args)
        self.aps: list[RigAP] = []
        self.clients: list[RigClient] = []
        try:
            self._build(aps, start_sroamd)
        except BaseException:
            self.lab.close()
            raise

    def __enter__(self) -> "Rig":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for monitor in getattr(self, "_monitors", {}).values():
            monitor.close()
        self.lab.close()

    # -- building ----------------------------------------------------------

    def _build(self, count: int, start_sroamd: bool) -> None:
        lab = self.lab
        # The bridges in sw would otherwise send Router Solicitations into
        # the air bridges: sroamd would take them for clients.
        lab.sw.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                   "net.ipv6.conf.default.disable_ipv6=1")
        srv = self.server = lab.netns("srv")
        self.core = None
        if self.star:
            # A core router with a link to each of the others.
            core = self.core = lab.netns("core")
            core.run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
            links = ["srv"] + [f"ap{i}" for i in range(1, count + 1)]
            for name in links:
                lab.backbone(core, f"to-{name}", bridge=f"bb-{name}")
            self.core_babeld = lab.babeld(core, [f"to-{name}" for name in links],
                                          ["local-path " + local_path(core.dir)] + self.babel)
        lab.backbone(srv, bridge="bb-srv" if self.star else "bb")
        srv.addr("eth0", f"{SERVER_V4}/32")
        srv.addr("eth0", f"{SERVER_V6}/128")
        srv.addr("eth0", "203.0.113.100/32" if self.star else "203.0.113.100/24")
        os.makedirs(os.path.join(srv.dir, "babeld"), exist_ok=True)
        argv = ["babeld", "-I", os.path.join(srv.dir, "babeld.pid"),
                "-S", os.path.join(srv.dir, "babeld.state"),
                "-g", local_path(srv.dir),
                "-C", f"redistribute local ip {SERVER_V4}/32 allow",
                "-C", f"redistribute local ip {SERVER_V6}/128 allow",
                "-C", "redistribute local deny"]
        for statement in self.babel:
            argv += ["-C", statement]
        self.server_babeld = lab.spawn(srv, argv + ["eth0"], name="babeld")
        for i in range(1, count + 1):
            ap = lab.access_point(f"ap{i}")
            ns = ap.ns
            lab.backbone(ns, bridge=f"bb-ap{i}" if self.star else "bb")
            backbone_ip = f"203.0.113.{i}"
            ns.addr("eth0", f"{backbone_ip}/32" if self.star else f"{backbone_ip}/24")
            ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
            # The same gateway addresses on every AP's roaming interface; /32
            # so that no AP thinks the whole prefix is on its own link.
            ns.addr(ap.ifname, f"{GATEWAY_V4}/32")
            ns.addr(ap.ifname, f"{GATEWAY_LL}/64")
            babeld = lab.babeld(ns, ["eth0"], ["local-path " + local_path(ns.dir)] + self.babel,
                                redistribute=[f"redistribute local ip {backbone_ip}/32 allow"]
                                if self.star else [])
            self.aps.append(RigAP(ap, backbone_ip, lab.hostapd(ap), babeld=babeld))
        if start_sroamd:
            for ap in self.aps:
                self.start_sroamd(ap)

    def sroamd_argv(self, ap: RigAP, peers: list[str] | None = None) -> list[str]:
        """sroamd's command line on ap; peers ("host:port", for -F) default to
        the other APs."""
        argv = [sys.executable, "-m", "sroamd", "-d", str(self.debug),
                "-P", PREFIX_V6, "-P", PREFIX_V4, "-f", str(FLOOD_PORT),
                "-a", GATEWAY_V4, "--station-source", "hostapd",
                "--hostapd-dir", ap.hostapd.ctrl_dir,
                "--ubus-socket", os.path.join(self.lab.dir, "no-ubus.sock"),
                # kept across restarts of this AP's sroamd: its node id
                "--state-dir", os.path.join(self.lab.dir, f"state-{ap.name}")]
        for dns in DNS:
            argv += ["-N", dns]
        if peers is None:
            peers = [f"{other.backbone_ip}:{FLOOD_PORT}" for other in self.aps if other is not ap]
        for peer in peers:
            argv += ["-F", peer]
        return argv + self.sroamd_extra + [ap.ap.ifname]

    def start_sroamd(self, ap: RigAP, peers: list[str] | None = None) -> Process:
        """Start sroamd on ap (see sroamd_argv) and wait until it is up."""
        ap.sroamd_argv = ["env", f"PYTHONPATH={REPO}"] + self.sroamd_argv(ap, peers)
        return self._spawn_sroamd(ap)

    def _spawn_sroamd(self, ap: RigAP) -> Process:
        proc = ap.sroamd = ap.ns.spawn(ap.sroamd_argv, name="sroamd")

        def up():
            if not proc.alive():
                raise RuntimeError(f"sroamd on {ap.name} exited: {proc.output()[-3000:]}")
            return (f":{FLOOD_PORT}" in ap.ns.run("ss", "-ltn", check=False).stdout
                    and "attached to hostapd on" in proc.output())
        wait_for(up, timeout=10, what=f"sroamd listening and attached to hostapd on {ap.name}")
        return proc

    def restart_sroamd(self, ap: RigAP, sig: int = signal.SIGTERM, respawn_delay: float = 0.0,
                       stop_timeout: float = 5.0) -> "Restart":
        """Stop ap's sroamd with sig and start it again with the same command line.

        As procd does: `/etc/init.d/sroamd restart` (or a reload after `uci
        commit`) sends SIGTERM, waits up to stop_timeout (procd's term_timeout,
        5 s) and then SIGKILLs, and starts it again at once; a crashed or
        SIGKILLed daemon is respawned after respawn_delay (procd's default
        respawn timeout is 5 s).  Returns when the new daemon is up (flooding
        port open, attached to hostapd)."""
        old = ap.sroamd
        signalled = time.monotonic()
        old.signal(sig)
        try:
            code = old.popen.wait(stop_timeout)
            killed = False
        except subprocess.TimeoutExpired:
            code = old.kill()
            killed = True
        exited = time.monotonic()
        if respawn_delay:
            time.sleep(respawn_delay)
        spawned = time.monotonic()
        new = self._spawn_sroamd(ap)
        return Restart(old, new, code, killed, signalled, exited, spawned, time.monotonic())

    def add_client(self, name: str, ap: RigAP | None = None) -> RigClient:
        ap = ap or self.aps[0]
        lab = self.lab
        client = lab.client(name, ap.ap)
        ns = client.ns
        ns.run("sysctl", "-qw", f"net.ipv6.conf.{client.ifname}.accept_ra=1",
               f"net.ipv6.conf.{client.ifname}.autoconf=1")
        supplicant = lab.wpa_supplicant(client)
        supplicant.wait_authorized(timeout=15)
        out = os.path.join(ns.dir, "udhcpc.out")
        script = os.path.join(ns.dir, "udhcpc.sh")
        with open(script, "w") as f:
            f.write(UDHCPC_SCRIPT)
        os.chmod(script, 0o755)
        dhcp = ns.spawn(["env", f"OUT={out}", "busybox", "udhcpc", "-f", "-i", client.ifname,
                         "-s", script, "-t", "10", "-T", "1"], name="udhcpc")
        rig_client = RigClient(client, supplicant, dhcp, out, ap)
        self.clients.append(rig_client)
        return rig_client

    def wait_addresses(self, client: RigClient, timeout: float = 20) -> tuple[str, str]:
        """Until the client has its IPv4 address and a global IPv6 address."""
        wait_for(lambda: client.ipv4() and client.ipv6(), timeout=timeout,
                 what=f"addresses of {client.client.name}")
        return client.ipv4(), client.ipv6()

    # -- roaming -----------------------------------------------------------

    def roam(self, client: RigClient, to: RigAP, timeout: float = 10) -> tuple[float, float]:
        """Move the client's radio to `to` and authenticate again.

        Returns the times (monotonic) at which the radio moved and at which
        the new AP's hostapd accepted the station."""
        # An AP that kicked this station keeps it, unauthorized, for ~5 s,
        # and its removal then would end the new session (wired driver;
        # netlab's notes): associate again only once it has let go.
        wait_for(lambda: client.mac not in to.hostapd.all_sta(), timeout=10,
                 what=f"{to.name} to forget {client.mac}")
        with to.hostapd.monitor() as events:
            moved = time.monotonic()
            self.lab.roam(client.client, to.ap)
            client.supplicant.reauthenticate()
            events.wait_event("AP-STA-CONNECTED " + client.mac, timeout=timeout)
        connected = time.monotonic()
        client.history.append((client.at.name, to.name))
        client.at = to
        return moved, connected

    # -- observing ---------------------------------------------------------

    def routes(self, ap: RigAP, family: str = "-4") -> list[dict]:
        """The proto-44 routes in an AP's routing table."""
        return json.loads(ap.ns.ip("-j", family, "route", "show", "proto", "44") or "[]")

    def serves(self, ap: RigAP, address: str) -> bool:
        """Whether ap has sroamd's host route for a client address."""
        network = ipaddress.ip_network(address)
        family = "-6" if network.version == 6 else "-4"
        for route in self.routes(ap, family):
            dst = route["dst"]
            if ipaddress.ip_network(dst if "/" in dst else f"{dst}/{network.max_prefixlen}") == network:
                return True
        return False

    def ping(self, ns, address: str, count: int = 1, timeout: float = 1.0) -> bool:
        result = ns.run("ping", "-n", "-q", "-c", str(count), "-W", str(timeout),
                        "-i", "0.2", address, check=False, timeout=30)
        return result.returncode == 0

    def babel_monitors(self) -> dict[str, BabelMonitor]:
        """`monitor` on every router's babeld, by name ("srv", "ap1"...),
        started on first call (babel_monitor.py)."""
        if not getattr(self, "_monitors", None):
            self._monitors = {"srv": BabelMonitor("srv", local_path(self.server.dir))}
            for ap in self.aps:
                self._monitors[ap.name] = BabelMonitor(ap.name, local_path(ap.ns.dir))
            if self.core is not None:
                self._monitors["core"] = BabelMonitor("core", local_path(self.core.dir))
        return self._monitors

    def backbone_link_local(self, ap: RigAP) -> str:
        """ap's link-local address on the backbone: the next hop babeld names."""
        out = ap.ns.ip("-j", "-6", "addr", "show", "dev", "eth0", "scope", "link")
        for info in json.loads(out or "[]"):
            for a in info.get("addr_info", []):
                if "local" in a:
                    return a["local"]
        raise RuntimeError(f"{ap.name} has no link-local address on eth0")

    def sroamd_log(self, ap: RigAP) -> str:
        return ap.sroamd.output() if ap.sroamd else ""

    def state_dir(self, ap: RigAP) -> str:
        return os.path.join(self.lab.dir, f"state-{ap.name}")

    def node_id(self, ap: RigAP) -> str | None:
        """The node id kept in ap's state directory (hex), if any."""
        try:
            with open(os.path.join(self.state_dir(ap), "node_id")) as f:
                return f.read().strip()
        except FileNotFoundError:
            return None

    def watch_routes(self, ap: RigAP) -> Process:
        """`ip monitor route` in ap's namespace, from now on (route_events())."""
        proc = ap.ns.spawn(["ip", "monitor", "route"], name="ip-monitor-route")
        time.sleep(0.2)  # subscribed (it prints nothing until a change)
        return proc

    def store_dump(self, ap: RigAP, timeout: float = 5.0) -> list[str]:
        """The store as ap's sroamd prints it on SIGUSR1 (its last dump)."""
        marker = f"Dump {time.monotonic_ns()}"
        before = self.sroamd_log(ap).count("sroamd: WARNING: Node ")
        ap.sroamd.signal(signal.SIGUSR1)
        wait_for(lambda: self.sroamd_log(ap).count("sroamd: WARNING: Node ") > before,
                 timeout=timeout, what=f"{marker} of {ap.name}")
        time.sleep(0.1)  # the rest of the dump follows within the same loop turn
        lines = self.sroamd_log(ap).splitlines()
        start = max(i for i, line in enumerate(lines) if "sroamd: WARNING: Node " in line)
        dump = []
        for line in lines[start + 1:]:
            if not line.startswith("sroamd: WARNING: "):
                break
            text = line.removeprefix("sroamd: WARNING: ")
            if not text.startswith(("Lease ", "Assoc ", "Client ", "Peer ", "Datum ")):
                break
            dump.append(text)
        return dump

    def leases_of(self, ap: RigAP, mac: str) -> set[str]:
        """The addresses/prefixes ap's store leases to mac."""
        return {line.split()[1] for line in self.store_dump(ap)
                if line.startswith("Lease ") and line.split()[2] == mac}

    # -- traffic -----------------------------------------------------------

    def start_tcp_stream(self, client: RigClient, port: int = 5001) -> tuple[Process, str]:
        """A TCP connection client -> server, a line echoed every 50 ms."""
        probe = os.path.join(REPO, "tests", "probe.py")
        if not getattr(self, "_tcp_server", None):
            self._tcp_server = self.server.spawn([sys.executable, probe, "tcp-server", str(port)],
                                                 name="tcp-server")
            wait_for(lambda: f":{port}" in self.server.run("ss", "-ltn").stdout, timeout=5,
                     what="tcp server")
        out = os.path.join(client.ns.dir, "tcp.out")
        proc = client.ns.spawn([sys.executable, probe, "tcp-client", SERVER_V4, str(port), out],
                               name="tcp-client")
        wait_for(lambda: tcp_count(out) > 0, timeout=10, what="tcp stream")
        return proc, out

    def start_udp_probe(self, client: RigClient, port: int = 5002,
                        interval_ms: float = 10, server: str = SERVER_V4) -> str:
        """A UDP probe every interval_ms from the client, echoed by the server
        (to SERVER_V4, or SERVER_V6); returns the file of echoes (read_probes)."""
        probe = os.path.join(REPO, "tests", "probe.py")
        if not getattr(self, "_udp_echo", None):
            self._udp_echo = self.server.spawn([sys.executable, probe, "udp-echo", str(port)],
                                               name="udp-echo")
        out = os.path.join(client.ns.dir, "udp6.out" if ":" in server else "udp.out")
        client.ns.spawn([sys.executable, probe, "udp-probe", server, str(port), out,
                         str(interval_ms)], name="udp-probe")
        wait_for(lambda: os.path.exists(out) and os.path.getsize(out) > 0, timeout=10,
                 what="udp probe echoes")
        return out


def read_probes(out: str) -> list[tuple[int, float, float]]:
    """(seq, sent, received) of every echoed UDP probe, by seq."""
    probes = []
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                probes.append((int(parts[0]), float(parts[1]), float(parts[2])))
    return sorted(probes)


def outage_ms(probes: list[tuple[int, float, float]], start: float, end: float,
              interval_ms: float) -> float:
    """The longest run of lost probes sent between start and end, in ms.

    The gap between the send times of two consecutive echoed probes, less
    one interval: 0 when nothing was lost."""
    sent = [p[1] for p in probes if start - 1 <= p[1] <= end]
    if len(sent) < 2:
        raise ValueError("no probes echoed around the roam")
    gap = max(b - a for a, b in zip(sent, sent[1:])) * 1000
    return max(0.0, gap - interval_ms)


def probe_losses(probes: list[tuple[int, float, float]], start: float,
                 end: float) -> tuple[int, int, int]:
    """(longest run of consecutive lost probes, probes lost, probes sent)
    among those sent between start and end.

    Counted by sequence number, not by time: a probe process that the
    scheduler holds back sends late but loses nothing.  Raises ValueError if
    no probe sent after `end` was echoed (the outage has not ended)."""
    seqs = [seq for seq, sent, _ in probes if start <= sent <= end]
    if not any(sent > end for _, sent, _ in probes):
        raise ValueError("no probe echoed after the window: connectivity did not come back")
    before = [seq for seq, sent, _ in probes if sent < start]
    after = [seq for seq, sent, _ in probes if sent > end]
    # The echoed probes just outside the window bound the runs at its edges.
    bounded = ([before[-1]] if before else []) + seqs + [after[0]]
    longest = max((b - a - 1 for a, b in zip(bounded, bounded[1:])), default=0)
    first, last = bounded[0], bounded[-1]
    return longest, (last - first + 1) - len(bounded), last - first + 1


def route_events(monitor: Process, *prefixes: str) -> list[str]:
    """The lines of an `ip monitor route` (Rig.watch_routes) about sroamd's
    routes (proto 44) to one of prefixes ("192.0.2.7", "2001:db8:4444:5::/64")."""
    return [line for line in monitor.output().splitlines()
            if " proto 44 " in line + " " and any(re.search(rf"(^|\s){re.escape(p)}(/32)?\s", line + " ") for p in prefixes)]


@dataclass
class Restart:
    """What Rig.restart_sroamd did (times: time.monotonic())."""
    old: Process
    new: Process
    exit_code: int | None      # of the old daemon
    killed: bool               # it did not exit on its own within stop_timeout
    signalled: float
    exited: float
    spawned: float
    up: float


def logged_node_id(proc: Process) -> str | None:
    """The node id a sroamd logged at start ("starting, node id ...")."""
    found = re.search(r"starting, node id ([0-9a-f]{16})", proc.output())
    return found.group(1) if found else None


def tcp_count(out: str) -> int:
    """How many lines the TCP stream has had echoed; -1 if it broke."""
    if not os.path.exists(out):
        return 0
    with open(out) as f:
        lines = f.read().split()
    if any(not line.isdigit() for line in lines):
        return -1
    return int(lines[-1]) if lines else 0
