"""Command line: the original's flags, plus the station-source options.

  sroamd -P 2001:db8:4444::/48 -P 192.168.44.0/24 -f 4444 \\
         -F [2001:db8:4444::1234]:4444 -N 2001:db8:1234::42 -N 10.0.0.42 \\
         -a 192.168.44.1 wlan0
"""

from __future__ import annotations

import argparse
import sys

from sroamd import __version__
from sroamd.config import (STATION_SOURCES, Config, ConfigError, parse_address,
                           parse_int, parse_interface, parse_ipv4, parse_network,
                           parse_node_id, parse_peer, parse_port, parse_prefix, validate)


def _argtype(parser_fn, *args):
    """Adapt a config parser to argparse, which shows its message on error."""
    def convert(text):
        try:
            return parser_fn(text, *args)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = parser_fn.__name__.removeprefix("parse_")
    return convert


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sroamd",
        description="Seamless IP roaming for access points of one routed (Babel) "
                    "domain: serves DHCPv4 and Router Advertisements from a lease "
                    "store replicated between APs, and routes each client's "
                    "addresses to the AP it is associated with.")
    p.add_argument("-d", dest="debug", metavar="LEVEL", type=_argtype(parse_int, "debug level", 0, 9),
                   help="debug level: 0 (default) warnings only, 1 informational, 2+ debug")
    p.add_argument("-P", dest="prefixes", metavar="PREFIX", action="append",
                   type=_argtype(parse_prefix),
                   help="prefix to hand out from; give it once for IPv4 (e.g. 192.168.44.0/24: "
                        "one address per client) and once for IPv6 (e.g. 2001:db8:4444::/48: "
                        "one /64 per client)")
    p.add_argument("-N", dest="nameservers", metavar="ADDRESS", action="append",
                   type=_argtype(parse_address),
                   help="DNS server announced to clients (DHCPv4 for IPv4 addresses, RDNSS "
                        "in RAs for IPv6); repeatable")
    p.add_argument("-f", dest="port", metavar="PORT", type=_argtype(parse_port),
                   help="TCP port to accept flooding peers on (IPv4 and IPv6)")
    p.add_argument("-F", dest="peers", metavar="ADDR:PORT", action="append",
                   type=_argtype(parse_peer),
                   help="flooding peer to connect to (IPv6 in brackets: [2001:db8::1]:4444); "
                        "repeatable; reconnected when the connection drops")
    p.add_argument("-a", dest="gateway", metavar="ADDRESS", type=_argtype(parse_ipv4),
                   help="IPv4 address shared by the roaming interfaces of all APs, announced "
                        "as the clients' router (default: the interface's own IPv4 address)")
    p.add_argument("-c", "--config", metavar="FILE",
                   help="read settings from a UCI file (e.g. /etc/config/sroamd); command-line "
                        "flags override it")
    p.add_argument("--check", action="store_true",
                   help="validate the configuration, print the effective settings as JSON, "
                        "and exit (status 0 if valid, 1 if not)")
    p.add_argument("--station-source", choices=STATION_SOURCES,
                   help="where station associations come from: ubus (hostapd on OpenWrt), "
                        "hostapd (its control socket), none, or auto (default): ubus when "
                        "its socket exists, else the control socket")
    p.add_argument("--ubus-socket", metavar="PATH",
                   help="ubusd's socket (default /var/run/ubus/ubus.sock)")
    p.add_argument("--hostapd-dir", metavar="DIR",
                   help="hostapd's control socket directory (default /var/run/hostapd)")
    p.add_argument("--lease-time", metavar="SECONDS", type=_argtype(parse_int, "lease time", 60, 86400 * 7),
                   help="DHCPv4 lease time (default 1800)")
    p.add_argument("--route-metric", metavar="METRIC", type=_argtype(parse_int, "route metric", 0, 0xFFFFFFFF),
                   help="metric of the client host routes (default 128; run babeld with "
                        "'kernel-priority 256' so that ours win over its routes)")
    p.add_argument("--retract-proto", metavar="PROTO", type=_argtype(parse_int, "retract protocol", 0, 255),
                   help="protocol of the shadow route added for a moment before a client's "
                        "route is deleted, so that babeld retracts it (default 45; babeld "
                        "needs 'redistribute proto 45 metric 65534'; 0: none)")
    p.add_argument("--node-id", metavar="HEX", type=_argtype(parse_node_id),
                   help="this node's 8-byte id (16 hex digits); default: generated once and "
                        "kept in STATE_DIR/node_id, so that a restart keeps the stations")
    p.add_argument("--state-dir", metavar="DIR",
                   help="where the node id is kept (default /etc/sroamd)")
    p.add_argument("--flood-listen", metavar="ADDRESS", action="append",
                   type=_argtype(parse_address),
                   help="accept flooding peers on this address only (repeatable; default: "
                        "every address)")
    p.add_argument("--flood-allow", metavar="PREFIX", action="append",
                   type=_argtype(parse_network),
                   help="accept flooding sessions only from this prefix (repeatable); the -F "
                        "peers are always allowed")
    p.add_argument("--max-data", metavar="N", type=_argtype(parse_int, "store size", 16, 10_000_000),
                   help="most data the replicated store holds (default: derived from the "
                        "prefixes); new keys past it are refused and logged")
    p.add_argument("--sync-grace", metavar="SECONDS",
                   type=_argtype(parse_int, "sync grace", 0, 3600),
                   help="seconds after start without new leases unless a peer's dump came "
                        "in first (default 10)")
    p.add_argument("--version", action="version", version=f"sroamd {__version__}")
    p.add_argument("interfaces", metavar="INTERFACE", nargs="*", type=_argtype(parse_interface),
                   help="roaming interfaces (e.g. wlan0) to serve clients on")
    return p


def config_from_args(args: argparse.Namespace, base: Config | None = None) -> Config:
    """Apply command-line flags on top of base (e.g. the UCI file's settings)."""
    config = base or Config()
    if args.debug is not None:
        config.debug = args.debug
    if args.prefixes:
        # Flags override the file per address family.
        for family in {p.version for p in args.prefixes}:
            if family == 4:
                config.ipv4_prefix = None
            else:
                config.ipv6_prefix = None
        for prefix in args.prefixes:
            config.set_prefix(prefix)
    if args.nameservers:
        config.nameservers = list(args.nameservers)
    if args.port is not None:
        config.port = args.port
    if args.peers:
        config.peers = list(args.peers)
    if args.gateway is not None:
        config.gateway = args.gateway
    if args.interfaces:
        config.interfaces = list(args.interfaces)
    if args.flood_listen:
        config.flood_listen = list(args.flood_listen)
    if args.flood_allow:
        config.flood_allow = list(args.flood_allow)
    for name in ("station_source", "ubus_socket", "hostapd_dir", "lease_time", "route_metric",
                 "retract_proto", "node_id", "state_dir", "max_data", "sync_grace"):
        value = getattr(args, name)
        if value is not None:
            setattr(config, name, value)
    validate(config)
    return config


def _wants_check(argv: list[str]) -> bool:
    """Whether argv asks for --check (or an abbreviation argparse would accept)."""
    for arg in argv:
        if arg == "--":
            return False
        if len(arg) >= 4 and "--check".startswith(arg):
            return True
    return False


def load_config(argv: list[str]) -> tuple[argparse.Namespace, Config]:
    """Parse argv (and the config file it names); exits with status 2 on bad
    input, or 1 with --check, which promises 1 for any invalid configuration."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        if e.code == 2 and _wants_check(argv):
            raise SystemExit(1) from None
        raise
    base = None
    try:
        if args.config:
            from sroamd.uci import load_uci_config
            base = load_uci_config(args.config)
        return args, config_from_args(args, base)
    except ConfigError as e:
        parser.exit(2 if not args.check else 1, f"sroamd: {e}\n")


def main(argv: list[str] | None = None) -> int:
    args, config = load_config(sys.argv[1:] if argv is None else argv)
    if args.check:
        import json
        settings = config.as_json()
        settings["enabled"] = config.enabled
        print(json.dumps(settings, indent=2))
        return 0
    if not config.enabled:
        print(f"sroamd: not starting: disabled by option enabled '0' in {args.config}; "
              "set it to '1' once prefixes and interfaces are configured", file=sys.stderr)
        return 1
    from sroamd.lean import keep_openssl_out
    keep_openssl_out()
    from sroamd.daemon import run
    return run(config)
