"""sroamd's settings, and the parsing of each value with a clear error.

The command line (cli.py) and the UCI file reader both turn text into a
Config through the parsers here, so a value means the same from either.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

DEFAULT_UBUS_SOCKET = "/var/run/ubus/ubus.sock"
DEFAULT_HOSTAPD_DIR = "/var/run/hostapd"
DEFAULT_LEASE_TIME = 1800  # seconds, as upstream
# Below babeld's routes with 'kernel-priority 256', so that on the AP a client
# has just moved to our host route wins over babeld's route to the old AP.
# Not 0: the kernel turns an IPv6 metric of 0 into 1024.
DEFAULT_ROUTE_METRIC = 128
DEFAULT_RETRACT_PROTO = 45  # babeld: 'redistribute proto 45 metric 65534' (README)
STATION_SOURCES = ("auto", "ubus", "hostapd", "none")
# Where the node id is kept when none is configured (written once, at first start).
DEFAULT_STATE_DIR = "/etc/sroamd"
# Seconds after start during which no new address is handed out unless a peer's
# complete dump came in first (sync before serving).
DEFAULT_SYNC_GRACE = 10.0
IFNAME_RE = re.compile(r"^[^/\s:]{1,15}$")


class ConfigError(ValueError):
    """A setting that cannot be used; the message says which and why."""


@dataclass
class Config:
    debug: int = 0
    ipv4_prefix: IPv4Network | None = None
    ipv6_prefix: IPv6Network | None = None
    nameservers: list[IPv4Address | IPv6Address] = field(default_factory=list)
    port: int | None = None  # TCP port to listen on for flooding peers
    peers: list[tuple[str, int]] = field(default_factory=list)
    gateway: IPv4Address | None = None  # -a: the IPv4 address all APs share
    interfaces: list[str] = field(default_factory=list)
    station_source: str = "auto"
    ubus_socket: str = DEFAULT_UBUS_SOCKET
    hostapd_dir: str = DEFAULT_HOSTAPD_DIR
    lease_time: int = DEFAULT_LEASE_TIME
    route_metric: int = DEFAULT_ROUTE_METRIC
    # Protocol of the shadow route that makes babeld retract a client's route
    # (routes.py: babeld 1.12 retracts ::/0 instead); 0: none.
    retract_proto: int = DEFAULT_RETRACT_PROTO
    enabled: bool = True  # UCI 'option enabled 0': the daemon refuses to start
    node_id: bytes | None = None  # 8 bytes; None: kept in state_dir/node_id
    state_dir: str = DEFAULT_STATE_DIR
    # Addresses to accept flooding peers on (empty: every address, IPv4 and IPv6).
    flood_listen: list[IPv4Address | IPv6Address] = field(default_factory=list)
    # When not empty, flooding sessions are accepted only from these prefixes
    # (and from the configured peers).
    flood_allow: list[IPv4Network | IPv6Network] = field(default_factory=list)
    max_data: int | None = None  # store bound; None: derived from the prefixes
    sync_grace: float = DEFAULT_SYNC_GRACE

    @property
    def dns_v4(self) -> list[IPv4Address]:
        return [a for a in self.nameservers if a.version == 4]

    @property
    def dns_v6(self) -> list[IPv6Address]:
        return [a for a in self.nameservers if a.version == 6]

    def set_prefix(self, network: IPv4Network | IPv6Network) -> None:
        """-P may be given once per address family."""
        if network.version == 4:
            if self.ipv4_prefix is not None and self.ipv4_prefix != network:
                raise ConfigError(f"a second IPv4 prefix {network} (already {self.ipv4_prefix})")
            self.ipv4_prefix = network
        else:
            if self.ipv6_prefix is not None and self.ipv6_prefix != network:
                raise ConfigError(f"a second IPv6 prefix {network} (already {self.ipv6_prefix})")
            self.ipv6_prefix = network

    def as_json(self) -> dict:
        """The effective settings, for --check and the ubus status."""
        return {
            "debug": self.debug,
            "prefixes": [str(p) for p in (self.ipv4_prefix, self.ipv6_prefix) if p],
            "nameservers": [str(a) for a in self.nameservers],
            "port": self.port,
            "peers": [format_peer(p) for p in self.peers],
            "address": str(self.gateway) if self.gateway else None,
            "interfaces": list(self.interfaces),
            "station_source": self.station_source,
            "ubus_socket": self.ubus_socket,
            "hostapd_dir": self.hostapd_dir,
            "lease_time": self.lease_time,
            "route_metric": self.route_metric,
            "retract_proto": self.retract_proto,
            "node_id": self.node_id.hex() if self.node_id else None,
            "state_dir": self.state_dir,
            "flood_listen": [str(a) for a in self.flood_listen],
            "flood_allow": [str(p) for p in self.flood_allow],
            "max_data": self.max_data,
            "sync_grace": self.sync_grace,
        }


def parse_prefix(text: str) -> IPv4Network | IPv6Network:
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as e:
        raise ConfigError(f"bad prefix {text!r}: {e}") from None
    if network.version == 6 and network.prefixlen > 64:
        raise ConfigError(f"IPv6 prefix {text!r} is longer than /64: no room for a /64 per client")
    if network.version == 4 and network.prefixlen > 30:
        raise ConfigError(f"IPv4 prefix {text!r} is too small to hand out addresses")
    return network


def parse_address(text: str) -> IPv4Address | IPv6Address:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise ConfigError(f"bad address {text!r}: not an IPv4 or IPv6 address") from None


def parse_ipv4(text: str) -> IPv4Address:
    address = parse_address(text)
    if address.version != 4:
        raise ConfigError(f"bad address {text!r}: an IPv4 address is needed here")
    return address


def parse_port(text: str) -> int:
    try:
        port = int(str(text).strip(), 10)
    except ValueError:
        raise ConfigError(f"bad port {text!r}: not a number") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"bad port {text!r}: must be 1-65535")
    return port


def parse_peer(text: str) -> tuple[str, int]:
    """ADDR:PORT, with an IPv6 address in brackets: [2001:db8::1]:4444."""
    text = text.strip()
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", text)
    if not match:
        raise ConfigError(f"bad peer {text!r}: expected ADDRESS:PORT or [IPV6]:PORT")
    host = match.group(1) or match.group(3)
    port = parse_port(match.group(2) or match.group(4))
    address = parse_address(host)
    if match.group(3) and address.version == 6:
        raise ConfigError(f"bad peer {text!r}: put an IPv6 address in brackets")
    return str(address), port


def format_peer(peer: tuple[str, int]) -> str:
    host, port = peer
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_int(text: str, what: str, low: int, high: int) -> int:
    try:
        value = int(str(text).strip(), 10)
    except ValueError:
        raise ConfigError(f"bad {what} {text!r}: not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"bad {what} {text!r}: must be {low}-{high}")
    return value


def parse_node_id(text: str) -> bytes:
    """A node id: 16 hex digits (8 bytes), colons allowed between bytes."""
    cleaned = text.strip().replace(":", "")
    try:
        node_id = bytes.fromhex(cleaned)
    except ValueError:
        node_id = b""
    if len(node_id) != 8:
        raise ConfigError(f"bad node id {text!r}: 16 hex digits (8 bytes) are needed")
    if node_id == bytes(8):
        raise ConfigError(f"bad node id {text!r}: must not be all zeros")
    return node_id


def parse_network(text: str) -> IPv4Network | IPv6Network:
    """Any prefix (an address alone is a host prefix), for flood_allow."""
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as e:
        raise ConfigError(f"bad prefix {text!r}: {e}") from None


def parse_interface(text: str) -> str:
    if not IFNAME_RE.match(text):
        raise ConfigError(f"bad interface name {text!r}")
    return text


def parse_station_source(text: str) -> str:
    if text not in STATION_SOURCES:
        raise ConfigError(f"bad station source {text!r}: one of {', '.join(STATION_SOURCES)}")
    return text


def validate(config: Config) -> None:
    """Checks that concern several settings together."""
    if config.ipv4_prefix is None and config.ipv6_prefix is None and config.interfaces:
        raise ConfigError("no prefix: give -P with an IPv4 and/or an IPv6 prefix to serve clients")
