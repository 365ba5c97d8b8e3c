"""Human-readable state, for SIGUSR1 (as upstream prints it) and debugging."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Iterator

from sroamd.store import ASSOCIATION, IPV4_LEASE, IPV6_LEASE, KEY_LENGTHS, Datum, Store

if TYPE_CHECKING:
    from sroamd.daemon import Daemon


def format_mac(mac: bytes) -> str:
    return mac.hex(":")  # (what ":".join(f"{b:02x}" ...) gives, 5x faster: status tables)


def describe_datum(datum: Datum, store: Store) -> str:
    key, value = datum.key, datum.value
    left = f"{store.remaining(datum)}s"
    well_formed = len(key) == KEY_LENGTHS.get(datum.kind, -1)
    if datum.kind == IPV4_LEASE and well_formed:
        mac = format_mac(value) if len(value) == 6 else "(corrupt)"
        return f"Lease {ipaddress.IPv4Address(key[1:])} {mac} seqno {datum.seqno} {left}"
    if datum.kind == IPV6_LEASE and well_formed:
        prefix = ipaddress.IPv6Network((key[1:] + bytes(8), 64))
        mac = format_mac(value) if len(value) == 6 else "(corrupt)"
        return f"Lease {prefix} {mac} seqno {datum.seqno} {left}"
    if datum.kind == ASSOCIATION and well_formed:
        holder = "(gone)" if not value else value.hex() if len(value) == 8 else "(corrupt)"
        return f"Assoc {format_mac(key[1:])} {holder} seqno {datum.seqno} {left}"
    return f"Datum {key.hex()} = {value.hex()} seqno {datum.seqno} {left}"


def format_dump(daemon: "Daemon") -> Iterator[str]:
    yield f"Node {daemon.node_id.hex()}, interfaces {' '.join(daemon.config.interfaces) or '(none)'}"
    for datum in sorted(daemon.store, key=lambda d: d.key):
        yield describe_datum(datum, daemon.store)
    for mac, ifname in sorted(daemon.roaming.clients.items()):
        yield f"Client {format_mac(mac)} on {ifname}"
    for session in daemon.flooder.status():
        yield (f"Peer {session['peer']} ({session['direction']}) "
               f"{'established' if session['established'] else 'handshaking'}, "
               f"{session['updates_in']} updates in, {session['updates_out']} out")
