"""netlab: build throw-away test networks out of Linux network namespaces.

Plain Python on top of the `ip` command (iproute2); no pytest in here, so
bench/ scripts and demos use it as well as the tests.  Needs root.

Topology (DESIGN.md section 6)
------------------------------

Every namespace a Lab makes is named ``<prefix>-<name>``, where the prefix is
random per Lab (e.g. ``nl3fa9c1``), so two runs never collide.  Interfaces
live inside namespaces only, so their names need only be unique per
namespace; nothing is created in the host's own namespace.

::

    namespace   interface        its veth peer, in namespace <p>-sw (e.g.)
    <p>-ap1     wl0  (hostapd)   p1, port of air-ap1  (group_fwd_mask 8)
                eth0 (babeld)    p2, port of bb       (backbone)
    <p>-ap2     wl0  (hostapd)   p3, port of air-ap2  (group_fwd_mask 8)
                eth0 (babeld)    p4, port of bb
    <p>-c1      c0   (wpa_supp.) p5, port of air-ap1; lab.roam(c1, ap2)
                                     makes it a port of air-ap2

- One namespace ``sw`` holds every bridge: one "air" bridge per AP (the
  Wi-Fi medium of that AP) and the backbone bridge(s).  Each air bridge is
  created with ``group_fwd_mask 8`` so that it forwards EAPOL frames (sent to
  the PAE group address 01:80:c2:00:00:03), which a bridge drops by default.
  Ports are veth ends named p1, p2, ... in creation order.
- Each AP namespace holds the AP's roaming interface (``wl0`` by default,
  the same name on every AP as on real APs), a veth whose peer is a port of
  that AP's air bridge.  hostapd runs there with ``driver=wired``: hostapd
  does not see EAPOL on a bridge device itself, hence the veth.  Its
  backbone interface (``eth0``, :meth:`Lab.backbone`) is a veth whose peer
  is a port of ``bb``; babeld runs on it.
- Each client namespace holds the client's interface (``c0``), a veth whose
  peer (a port in ``sw``) is plugged into the air bridge of the AP it is
  "associated" with; wpa_supplicant ``-D wired`` runs there.  Client ports
  are isolated (they reach the AP's port, not each other, as Wi-Fi
  stations), and hostapd sends EAPOL to each station's own MAC
  (``use_pae_group_addr=0``): with group-addressed EAPOL every supplicant
  on an air bridge would take the others' EAP exchanges for its own.
- Roaming = moving the client's port to another AP's air bridge
  (:meth:`Lab.roam`), then ``wpa_cli reauthenticate``
  (:meth:`Supplicant.reauthenticate`), as a Wi-Fi client authenticates
  again when it associates with a new AP.

Control sockets (hostapd, wpa_supplicant) are files in the Lab's temporary
directory; unix sockets are filesystem objects, so any process on the
machine can talk to them without entering the namespace.

Example::

    with Lab(dad=False) as lab:
        ap1, ap2 = lab.access_point("ap1"), lab.access_point("ap2")
        h1, h2 = lab.hostapd(ap1), lab.hostapd(ap2)
        for ap in (ap1, ap2):
            lab.backbone(ap.ns)                  # eth0 on bridge bb
            lab.babeld(ap.ns, ["eth0"])
        c = lab.client("c1", ap1)
        supp = lab.wpa_supplicant(c)
        with h2.monitor() as events:
            supp.wait_authorized()               # ~2 s: see below
            assert h1.authorized(c.mac)
            lab.roam(c, ap2)
            supp.reauthenticate()
            events.wait_event("AP-STA-CONNECTED " + c.mac)   # milliseconds

Timings seen here (hostapd/wpa_supplicant 2.10, babeld 1.12): a new
supplicant sends its first EAPOL-Start after ~2 s (hard-coded startWhen);
reauthentication after a roam takes milliseconds; a station that logged off
or was deauthenticated stays in hostapd's table, unauthorized, for 5 s; a
re-logon during those 5 s is lost (the supplicant then waits 30 s), so wait
for the station to leave ``all_sta`` first.  babeld needs IPv6 link-local
addresses: with DAD on, routes flow ~4 s after start, with ``dad=False``
~0.3 s.

Everything a Lab made (processes by PID: SIGTERM, then SIGKILL; namespaces;
its directory) goes away when the ``with`` block ends, whatever the reason
(exception, Ctrl-C, SIGTERM while the Lab is open, interpreter exit), only
SIGKILL of the Python process excepted.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")

EAPOL_FWD_MASK = 8  # bit 3: 01:80:c2:00:00:03, the 802.1X PAE group address


def missing_requirements(*programs: str) -> str | None:
    """Why a lab cannot run here (not root, a program missing), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for prog in ("ip", *programs):
        if shutil.which(prog) is None:
            return f"{prog} is not installed"
    return None


def wait_for(predicate: Callable[[], T], timeout: float = 5.0,
             interval: float = 0.02, what: str | None = None) -> T:
    """Call predicate until it returns something true; return that.

    Raises TimeoutError after `timeout` seconds.  Exceptions from the
    predicate propagate.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for "
                               f"{what or getattr(predicate, '__name__', 'condition')}")
        time.sleep(interval)


def run(argv: Sequence[str], check: bool = True,
        timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output as text, raise with stderr on failure."""
    cp = subprocess.run(list(argv), stdin=subprocess.DEVNULL,
                        capture_output=True, text=True, timeout=timeout)
    if check and cp.returncode != 0:
        raise CommandError(cp.returncode, cp.args, cp.stdout, cp.stderr)
    return cp


class CommandError(subprocess.CalledProcessError):
    """CalledProcessError whose message includes the command's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}: {(self.stderr or '').strip()}"


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def random_mac() -> str:
    """A random locally administered unicast MAC."""
    b = bytearray(secrets.token_bytes(6))
    b[0] = (b[0] & 0xFC) | 0x02
    return mac_str(bytes(b))


class Process:
    """A long-running process in a namespace, tracked by PID."""

    def __init__(self, ns: "Netns", argv: Sequence[str], log: str):
        self.ns = ns
        self.argv = list(argv)
        self.log = log
        with open(log, "ab") as out:
            # `ip netns exec` execs the command (no fork), so the PID is the
            # program's own.  A new session keeps Ctrl-C (sent to the
            # terminal's process group) from killing it before the Lab's
            # teardown does, in order.
            self.popen = subprocess.Popen(
                ["ip", "netns", "exec", ns.name, *self.argv],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 2.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; return the exit status."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self.popen.wait()

    def kill(self) -> int:
        """SIGKILL: the process gets no chance to clean up (sockets stay)."""
        self.signal(signal.SIGKILL)
        return self.popen.wait()

    def output(self) -> str:
        with open(self.log, errors="replace") as f:
            return f.read()

    def __repr__(self) -> str:
        return f"<Process {self.pid} in {self.ns.name}: {' '.join(self.argv)}>"


class Netns:
    """A network namespace made by a Lab."""

    def __init__(self, lab: "Lab", short: str):
        self.lab = lab
        self.short = short
        self.name = f"{lab.prefix}-{short}"
        self.dir = os.path.join(lab.dir, short)

    def run(self, *argv: str, check: bool = True,
            timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace and wait for it."""
        return run(["ip", "netns", "exec", self.name, *argv], check=check,
                   timeout=timeout)

    def ip(self, *args: str, check: bool = True) -> str:
        """`ip -n NS ARGS...`; returns stdout."""
        return run(["ip", "-n", self.name, *args], check=check).stdout

    def spawn(self, argv: Sequence[str], name: str | None = None) -> Process:
        """Start a long-running process here; the Lab stops it at teardown."""
        return self.lab._track(self, argv, name)

    def up(self, ifname: str) -> None:
        self.ip("link", "set", "dev", ifname, "up")

    def addr(self, ifname: str, cidr: str) -> None:
        self.ip("addr", "add", cidr, "dev", ifname)

    def mac(self, ifname: str) -> str:
        out = self.ip("-br", "link", "show", "dev", ifname)
        # "c0@if5  UP  02:..:..  <BROADCAST,...>"
        return out.split()[2]

    def __repr__(self) -> str:
        return f"<Netns {self.name}>"


@dataclass
class AccessPoint:
    """An AP namespace with its roaming interface on an air bridge in sw."""
    name: str
    ns: Netns
    ifname: str          # roaming interface inside ns, e.g. "wl0"
    air: str             # the AP's air bridge (in the sw namespace)
    port: str            # peer of ifname: a port of `air`
    mac: str


@dataclass
class Client:
    """A client namespace whose interface's peer port sits on an air bridge."""
    name: str
    ns: Netns
    ifname: str          # e.g. "c0"
    port: str            # peer of ifname in the sw namespace
    mac: str
    ap: AccessPoint | None = None


class CtrlMonitor:
    """Blocking hostapd/wpa_supplicant control-socket client (ATTACHed).

    For tests and demos that want to see events (AP-STA-CONNECTED ...);
    the daemon has its own asyncio client.
    """

    def __init__(self, ctrl_path: str, local_dir: str):
        self.ctrl_path = ctrl_path
        self.local = os.path.join(local_dir,
                                  f"mon-{os.getpid()}-{secrets.token_hex(3)}")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.local)
        self.sock.connect(ctrl_path)
        self.events: list[str] = []
        if self.request("ATTACH") != "OK":
            self.close()
            raise OSError(f"ATTACH to {ctrl_path} refused")

    def request(self, cmd: str, timeout: float = 2.0) -> str:
        """Send a command; return its reply (events seen meanwhile are kept)."""
        self.sock.send(cmd.encode())
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            data = self.sock.recv(65536).decode(errors="replace")
            if data.startswith("<"):
                self.events.append(data)
            else:
                return data.rstrip("\n")

    def wait_event(self, substring: str, timeout: float = 5.0) -> str:
        """Return (and consume) the first event containing `substring`."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if substring in ev:
                    del self.events[i]
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no event {substring!r} on {self.ctrl_path}"
                                   f" within {timeout}s (seen: {self.events})")
            self.sock.settimeout(left)
            try:
                self.events.append(self.sock.recv(65536).decode(errors="replace"))
            except socket.timeout:
                pass

    def close(self) -> None:
        try:
            self.sock.send(b"DETACH")
        except OSError:
            pass
        self.sock.close()
        try:
            os.unlink(self.local)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "CtrlMonitor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Hostapd:
    """hostapd (driver=wired, 802.1X, internal EAP-MD5 server) on an AP.

    The control socket is ``ctrl_dir/ifname`` (ctrl_path).  ctrl_dir is
    per AP by default, because every AP's roaming interface usually has the
    same name; APs with different interface names may share one (as the
    hostapds of one real AP do).
    """

    def __init__(self, lab: "Lab", ap: AccessPoint,
                 users: dict[str, str], extra_conf: str = "",
                 debug: bool = False, ctrl_dir: str | None = None):
        self.lab = lab
        self.ap = ap
        self.ifname = ap.ifname
        base = os.path.join(ap.ns.dir, "hostapd")
        os.makedirs(base, exist_ok=True)
        self.ctrl_dir = ctrl_dir or os.path.join(base, "ctrl")
        self.ctrl_path = os.path.join(self.ctrl_dir, ap.ifname)
        self.conf = os.path.join(base, "hostapd.conf")
        self.users = os.path.join(base, "eap_users")
        self.debug = debug
        with open(self.users, "w") as f:
            for user, password in users.items():
                f.write(f'"{user}" MD5 "{password}"\n')
        with open(self.conf, "w") as f:
            f.write(f"interface={ap.ifname}\n"
                    "driver=wired\n"
                    f"ctrl_interface={self.ctrl_dir}\n"
                    "logger_stdout=-1\n"
                    "logger_stdout_level=2\n"
                    "ieee8021x=1\n"
                    "eapol_version=2\n"
                    "use_pae_group_addr=0\n"  # EAPOL to each station, not to all

                    "eap_server=1\n"
                    f"eap_user_file={self.users}\n"
                    + extra_conf)
        self.proc: Process | None = None
        self.start()

    def start(self, timeout: float = 5.0) -> None:
        """Start hostapd and wait until its control socket answers PING."""
        argv = ["hostapd"] + (["-dd"] if self.debug else []) + [self.conf]
        self.proc = self.ap.ns.spawn(argv, name="hostapd")
        wait_for(self.ready, timeout, what=f"hostapd on {self.ap.name} "
                 f"(log {self.proc.log})")

    def ready(self) -> bool:
        if self.proc is not None and not self.proc.alive():
            raise RuntimeError(f"hostapd exited: {self.proc.output()[-2000:]}")
        return (os.path.exists(self.ctrl_path)
                and self.cli("ping", check=False).strip() == "PONG")

    def stop(self) -> None:
        """Terminate hostapd cleanly (it removes its control socket)."""
        if self.proc:
            self.proc.stop()

    def kill(self) -> None:
        """SIGKILL hostapd: its control socket file stays behind, stale."""
        if self.proc:
            self.proc.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def cli(self, *args: str, check: bool = True) -> str:
        return run(["hostapd_cli", "-p", self.ctrl_dir, "-i", self.ifname,
                    *args], check=check).stdout

    def all_sta(self) -> list[str]:
        """MACs of the stations hostapd knows (whatever their state)."""
        return [line for line in self.cli("all_sta").splitlines()
                if len(line) == 17 and line.count(":") == 5]

    def sta(self, mac: str) -> dict[str, str]:
        """Key=value lines of `sta MAC` ({} if hostapd does not know it)."""
        out = self.cli("sta", mac, check=False)
        lines = out.splitlines()
        if not lines or lines[0].strip().lower() != mac.lower():
            return {}
        return dict(l.split("=", 1) for l in lines[1:] if "=" in l)

    def authorized(self, mac: str) -> bool:
        return "[AUTHORIZED]" in self.sta(mac).get("flags", "")

    def monitor(self) -> CtrlMonitor:
        """An ATTACHed control-socket client; close it (or use `with`)."""
        return CtrlMonitor(self.ctrl_path, self.lab.dir)


class Supplicant:
    """wpa_supplicant -D wired with 802.1X EAP-MD5 in a client namespace."""

    def __init__(self, lab: "Lab", client: Client, identity: str,
                 password: str, debug: bool = False):
        self.lab = lab
        self.client = client
        base = os.path.join(client.ns.dir, "wpa_supplicant")
        os.makedirs(base, exist_ok=True)
        self.ctrl_dir = os.path.join(base, "ctrl")
        self.conf = os.path.join(base, "wpa_supplicant.conf")
        with open(self.conf, "w") as f:
            f.write(f"ctrl_interface={self.ctrl_dir}\n"
                    "ap_scan=0\n"
                    "network={\n"
                    "  key_mgmt=IEEE8021X\n"
                    "  eap=MD5\n"
                    f'  identity="{identity}"\n'
                    f'  password="{password}"\n'
                    "  eapol_flags=0\n"
                    "}\n")
        argv = ["wpa_supplicant", "-D", "wired", "-i", client.ifname,
                "-c", self.conf] + (["-dd"] if debug else [])
        self.proc = client.ns.spawn(argv, name="wpa_supplicant")
        wait_for(lambda: self.cli("ping", check=False).strip() == "PONG",
                 5.0, what=f"wpa_supplicant in {client.name}")

    def cli(self, *args: str, check: bool = True) -> str:
        return run(["wpa_cli", "-p", self.ctrl_dir, "-i", self.client.ifname,
                    *args], check=check).stdout

    def status(self) -> dict[str, str]:
        return dict(l.split("=", 1) for l in self.cli("status").splitlines()
                    if "=" in l)

    def is_authorized(self) -> bool:
        return self.status().get("suppPortStatus") == "Authorized"

    def wait_authorized(self, timeout: float = 5.0) -> None:
        wait_for(self.is_authorized, timeout,
                 what=f"802.1X authorization of {self.client.name}")

    def reauthenticate(self) -> None:
        self.cli("reauthenticate")

    def logoff(self) -> None:
        """EAPOL-Logoff: hostapd then reports AP-STA-DISCONNECTED."""
        self.cli("logoff")

    def logon(self) -> None:
        self.cli("logon")


class Lab:
    """A set of namespaces, links and processes, all removed by close().

    Use as a context manager.  `prefix` defaults to a random "nlXXXXXX"
    (namespaces are "<prefix>-<name>"); `keep_dir` keeps the directory with
    configs and logs (printed at close) for post-mortems; dad=False turns
    off IPv6 DAD in its namespaces (see netns()).
    """

    _open: "weakref.WeakSet[Lab]" = weakref.WeakSet()

    def __init__(self, prefix: str | None = None, keep_dir: bool = False,
                 dad: bool = True):
        reason = missing_requirements()
        if reason:
            raise PermissionError(reason)
        self.prefix = prefix or "nl" + secrets.token_hex(3)
        self.dir = tempfile.mkdtemp(prefix=f"netlab-{self.prefix}-")
        os.chmod(self.dir, 0o755)
        self.keep_dir = keep_dir
        self.dad = dad
        self.namespaces: dict[str, Netns] = {}
        self.processes: list[Process] = []
        self.bridges: set[str] = set()
        self._ports = 0
        self._closed = False
        self._old_sigterm = None
        Lab._open.add(self)
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            # Turn SIGTERM into an exception so `with` blocks unwind.
            self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm)

    # -- basic building blocks -------------------------------------------

    def netns(self, name: str, dad: bool | None = None) -> Netns:
        """The namespace <prefix>-<name>, created (with lo up) on first use.

        dad=False (default: the Lab's `dad`) turns off IPv6 duplicate
        address detection for interfaces made afterwards, so link-local
        addresses are usable at once (babeld starts ~2 s sooner).
        """
        ns = self.namespaces.get(name)
        if ns is None:
            ns = Netns(self, name)
            run(["ip", "netns", "add", ns.name])
            self.namespaces[name] = ns
            os.makedirs(ns.dir, exist_ok=True)
            if not (self.dad if dad is None else dad):
                ns.run("sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
                       "net.ipv6.conf.default.accept_dad=0")
            ns.up("lo")
        return ns

    def veth(self, a: Netns, if_a: str, b: Netns, if_b: str,
             mac_a: str | None = None, mac_b: str | None = None) -> None:
        """A veth pair a:if_a <-> b:if_b, both ends up."""
        argv = ["link", "add", if_a]
        if mac_a:
            argv += ["address", mac_a]
        argv += ["type", "veth", "peer", "name", if_b, "netns", b.name]
        if mac_b:
            argv += ["address", mac_b]
        a.ip(*argv)
        a.up(if_a)
        b.up(if_b)

    def bridge(self, ns: Netns, name: str,
               group_fwd_mask: int | None = None) -> str:
        """A Linux bridge (STP off: ports forward at once), up."""
        argv = ["link", "add", name, "type", "bridge"]
        if group_fwd_mask is not None:
            argv += ["group_fwd_mask", str(group_fwd_mask)]
        ns.ip(*argv)
        ns.up(name)
        return name

    def spawn(self, ns: Netns, argv: Sequence[str],
              name: str | None = None) -> Process:
        return self._track(ns, argv, name)

    def _track(self, ns: Netns, argv: Sequence[str],
               name: str | None) -> Process:
        name = name or os.path.basename(argv[0])
        n = sum(1 for p in self.processes if p.ns is ns)
        log = os.path.join(ns.dir, f"{name}.{n}.log")
        proc = Process(ns, argv, log)
        self.processes.append(proc)
        return proc

    # -- the switch namespace: air bridges and backbones -----------------

    @property
    def sw(self) -> Netns:
        """The namespace holding every bridge."""
        return self.netns("sw")

    def switch(self, name: str, group_fwd_mask: int | None = None) -> str:
        """A bridge in the sw namespace (created once)."""
        if name not in self.bridges:
            self.bridge(self.sw, name, group_fwd_mask)
            self.bridges.add(name)
        return name

    def air(self, name: str) -> str:
        """An "air" bridge: forwards EAPOL (group_fwd_mask 8)."""
        return self.switch(name, EAPOL_FWD_MASK)

    def plug(self, ns: Netns, ifname: str, bridge: str,
             mac: str | None = None, isolated: bool = False) -> str:
        """veth ns:ifname <-> sw:pN, pN a port of `bridge`; returns pN.

        An isolated port talks only to the bridge's non-isolated ports.
        """
        self.switch(bridge)
        self._ports += 1
        port = f"p{self._ports}"
        self.veth(ns, ifname, self.sw, port, mac_a=mac)
        self._enslave(port, bridge, isolated)
        return port

    def move_port(self, port: str, bridge: str) -> None:
        """Move a port to another bridge (keeping it isolated or not)."""
        isolated = '"isolated":true' in self.sw.ip(
            "-d", "-j", "link", "show", "dev", port).replace(" ", "")
        self.sw.ip("link", "set", "dev", port, "nomaster")
        self._enslave(port, bridge, isolated)

    def _enslave(self, port: str, bridge: str, isolated: bool) -> None:
        self.sw.ip("link", "set", "dev", port, "master", bridge)
        if isolated:
            self.sw.ip("link", "set", "dev", port, "type", "bridge_slave",
                       "isolated", "on")

    # -- APs and clients --------------------------------------------------

    def access_point(self, name: str, ifname: str = "wl0",
                     mac: str | None = None,
                     dad: bool | None = None) -> AccessPoint:
        """Namespace `name` with `ifname` plugged into air bridge air-<name>."""
        ns = self.netns(name, dad)
        air = self.air(f"air-{name}"[:15])
        port = self.plug(ns, ifname, air, mac)
        return AccessPoint(name, ns, ifname, air, port, ns.mac(ifname))

    def backbone(self, ns: Netns, ifname: str = "eth0",
                 bridge: str = "bb") -> str:
        """Plug ns:ifname into the backbone bridge; returns the sw port."""
        return self.plug(ns, ifname, bridge)

    def client(self, name: str, ap: AccessPoint | None = None,
               ifname: str = "c0", mac: str | None = None,
               dad: bool | None = None) -> Client:
        """Namespace `name` with `ifname` (random MAC unless given), its port
        on ap's air bridge (on a bridge of its own if ap is None)."""
        ns = self.netns(name, dad)
        mac = (mac or random_mac()).lower()
        bridge = ap.air if ap else self.switch("unplugged")
        # Isolated, as Wi-Fi stations are from each other: otherwise a
        # supplicant sees its neighbours' EAPOL (sent to the PAE group
        # address), takes their EAP exchange for its own and waits 30 s.
        port = self.plug(ns, ifname, bridge, mac, isolated=True)
        return Client(name, ns, ifname, port, mac, ap)

    def roam(self, client: Client, ap: AccessPoint) -> None:
        """Move the client's "radio" to ap's air bridge (no reauth here)."""
        self.move_port(client.port, ap.air)
        client.ap = ap

    # -- daemons ----------------------------------------------------------

    def hostapd(self, ap: AccessPoint, users: dict[str, str] | None = None,
                extra_conf: str = "", debug: bool = False,
                ctrl_dir: str | None = None) -> Hostapd:
        """Start hostapd on ap's roaming interface (default user: user/password)."""
        return Hostapd(self, ap, users or {"user": "password"}, extra_conf,
                       debug, ctrl_dir)

    def wpa_supplicant(self, client: Client, identity: str = "user",
                       password: str = "password",
                       debug: bool = False) -> Supplicant:
        return Supplicant(self, client, identity, password, debug)

    def babeld(self, ns: Netns, ifaces: Iterable[str],
               extra: Iterable[str] = (), redistribute: Iterable[str] = ()) -> Process:
        """babeld on ifaces, redistributing proto 44 (sroamd's host routes)
        and 45 (its shadow routes).

        redistribute: statements put before 'redistribute local deny' (the
        first filter that matches wins), e.g. 'redistribute local ip
        203.0.113.1/32 allow'.

        Runs in the foreground rather than with -D so the PID we track is
        babeld's own (no pidfile race); -I/-S/-L still point into the Lab
        directory.
        """
        base = os.path.join(ns.dir, "babeld")
        os.makedirs(base, exist_ok=True)
        argv = ["babeld",
                "-I", os.path.join(base, "babeld.pid"),
                "-S", os.path.join(base, "babeld.state"),
                "-L", os.path.join(base, "babeld.log"),
                "-C", "redistribute proto 44 allow",
                # sroamd's shadow routes (routes.py: babeld then retracts
                # a deleted client route for real)
                "-C", "redistribute proto 45 metric 65534"]
        for stmt in redistribute:
            argv += ["-C", stmt]
        argv += ["-C", "redistribute local deny",
                "-C", "kernel-priority 256",
                "-C", "default hello-interval 1"]
        for stmt in extra:
            argv += ["-C", stmt]
        return ns.spawn(argv + list(ifaces), name="babeld")

    # -- teardown ---------------------------------------------------------

    def close(self, raise_errors: bool = True) -> None:
        """Stop processes (reverse order), delete namespaces and the dir."""
        if self._closed:
            return
        self._closed = True
        errors = []
        for proc in reversed(self.processes):
            try:
                proc.stop()
            except Exception as e:  # keep tearing down
                errors.append(e)
        for ns in reversed(list(self.namespaces.values())):
            cp = run(["ip", "netns", "del", ns.name], check=False)
            if cp.returncode != 0:
                errors.append(RuntimeError(cp.stderr))
        if self.keep_dir:
            print(f"netlab: kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self._old_sigterm is not None:
            try:
                signal.signal(signal.SIGTERM, self._old_sigterm)
            except ValueError:
                pass
        Lab._open.discard(self)
        if errors:
            if raise_errors:
                raise RuntimeError(f"netlab teardown: {errors}")
            print(f"netlab teardown: {errors}", file=sys.stderr)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Do not hide the exception that ended the block behind our own.
        self.close(raise_errors=exc_type is None)


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)


@atexit.register
def _close_all() -> None:
    for lab in list(Lab._open):
        lab.close(raise_errors=False)
