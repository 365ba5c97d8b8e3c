"""The ubus figures of bench/wire.py: CPU per frame of sroamd's ubus paths
(decode_message/encode_message: the codec derived from the declaration)
against construct interpreting the same declaration (what sroamd did before
issue 11).

  ubus_notify_parse_us        hostapd's sta-authorized notification as ubusd
                              delivers it (real bytes: ../shared/captures)
  ubus_get_clients_parse_us   a get_clients reply listing 20 stations, with the
                              fields OpenWrt's hostapd_bss_get_clients adds
  ubus_status_build_us        the reply to `ubus call sroamd status`
  ubus_leases_build_us        the reply to `ubus call sroamd leases` holding
                              2,000 leases (MAX_LEASES_REPLY), per frame and
                              ubus_leases_build_per_lease_us per lease
  ..._interpreted_us          the same, by construct's interpreter

A figure that cannot be measured (an exception) is recorded as null and
counted in ubus_bad_samples; a fast result that differs from the
interpreted one is counted in ubus_mismatches; ubus_fallbacks counts frames
the fast codec left to the declaration (0: every figure is the fast path's).
"""

from __future__ import annotations

import json
import os

from procstat import best_us
from sroamd.wire import ubus
from sroamd.wire.ubus import Typed

HERE = os.path.dirname(os.path.abspath(__file__))
CAPTURES = (os.path.join(HERE, "..", "..", "shared", "captures"),
            os.environ.get("SROAMD_CAPTURES"))

# The s2c `invoke sta-authorized` of ubus-session.jsonl, should the capture
# not be beside the repository (the same bytes).
STA_AUTHORIZED = bytes.fromhex(
    "00050003c49474e9000000980a00000501000000030000089cc3e6eb040000137374612d617574686f72"
    "697a656400000c000009726f6f74000000000d000009726f6f7400000000070000588300001600066966"
    "6e616d6500000000776c616e30000000830000150008617574682d616c6700006f70656e000000008300"
    "002200076164647265737300000061613a62623a63633a64643a65653a3031000000")


def notification_frame() -> tuple[bytes, str]:
    """hostapd's sta-authorized as a subscriber receives it, and where it came from."""
    for directory in CAPTURES:
        path = directory and os.path.join(directory, "ubus-session.jsonl")
        if path and os.path.exists(path):
            with open(path) as f:
                for line in f:
                    rec = json.loads(line)
                    raw = bytes.fromhex(rec["hex"])
                    if rec.get("dir") == "s2c" and b"sta-authorized" in raw:
                        return raw, "capture"
    return STA_AUTHORIZED, "embedded"


def get_clients_reply(stations: int = 20) -> dict:
    """hostapd_bss_get_clients' reply (OpenWrt hostapd ubus.c): the flags as
    int8, rrm as an int32 array, byte and airtime counters as int64."""
    def client(i):
        entry = {flag: flag in ("auth", "assoc", "authorized", "wmm", "ht")
                 for flag in ("auth", "assoc", "authorized", "preauth", "wds", "wmm", "ht",
                              "vht", "he", "wps", "mfp")}
        entry.update({
            "rrm": [0, 0, 0, 0, 0], "aid": i + 1,
            "bytes": {"rx": Typed("int64", 10**6 * i), "tx": Typed("int64", 3 * 10**6 * i)},
            "airtime": {"rx": Typed("int64", 1000 * i), "tx": Typed("int64", 2000 * i)},
            "packets": {"rx": 1000 + i, "tx": 2000 + i},
            "rate": {"rx": 65000, "tx": 72200}, "signal": -40 - i})
        return entry
    return {"type": "data", "seq": 12, "peer": 0x8AA3A3C4, "objid": 0x8AA3A3C4,
            "data": {"freq": 2437,
                     "clients": {"02:00:5e:00:%02x:%02x" % (i >> 8, i & 255): client(i)
                                 for i in range(stations)}}}


def status_reply() -> dict:
    """What sroamd/status.py's status() returns on a node with two interfaces,
    four peers and a full association-time history, as a data reply."""
    peers = [{"peer": f"192.0.2.{i}:4444", "state": "established"} for i in range(1, 5)]
    data = {
        "version": "0.9.0", "node_id": "0011223344556677", "uptime": 86400,
        "sync": {"synced": True, "state": "synced", "waited_s": 2.5, "peers_done": 4},
        "interfaces": ["wlan0", "wlan1"], "clients": 37, "data": 2150,
        "ipv4_leases": 1000, "ipv6_leases": 1000, "associations": 150,
        "roams_in": 812, "roams_out": 790, "reclaims": 3, "peers": peers, "sessions": 4,
        "malformed_peer_messages": 0,
        "flood": {"synced": True, "listen": ["*"], "sessions_in": 2, "sessions_out": 2,
                  "max_sessions_in": 16, "refused_sessions": {"not_allowed": 2},
                  "refused_data": {"prefix": 5, "reserved": 1}, "times_clamped": 0,
                  "listener_errors": 0, "closed_sessions": {"malformed": 1},
                  "max_data": 100000, "max_time": 86400},
        "assoc_ms": [round(0.4 + 0.01 * i, 3) for i in range(100)],
        "service": {"dhcp": {"discover": 5012, "request": 5120, "offer": 5012, "ack": 5100,
                             "nak": 20, "ignored": 3}, "ra": {"rs": 900, "ra": 1801}},
        "stations": {"notifications": 5230, "event_errors": 0, "polls": 0,
                     "authorized_by_polling": 0, "association_requests": 2615},
    }
    return {"type": "data", "seq": 3, "peer": 0x5A5A0001, "objid": 0x1F2E3D4C, "data": data}


def leases_reply(count: int = 2000) -> dict:
    """status.leases()' reply with count leases (IPv4 and IPv6, held here and elsewhere)."""
    table = []
    for i in range(count):
        address = (f"198.51.{i >> 8 & 255}.{i & 255}" if i % 2 == 0
                   else f"2001:db8:4444:{i:x}::/64")
        table.append({"address": address, "mac": "02:00:5e:00:%02x:%02x" % (i >> 8, i & 255),
                      "remaining": 1800 - i % 1700,
                      "node": None if i % 10 == 0 else "%016x" % (0x1122334455667700 + i % 4)})
    return {"type": "data", "seq": 4, "peer": 0x5A5A0001, "objid": 0x1F2E3D4C,
            "data": {"leases": table, "total": count, "truncated": False}}


def ubus_figures(repeat: int) -> dict:
    out: dict = {"ubus_bad_samples": 0, "ubus_mismatches": 0}
    fallbacks = ubus.CODEC.fallbacks

    def figure(name, fn, count, repeat_):
        try:
            out[name] = best_us(fn, count, repeat_)
        except Exception as e:   # (recorded, never the end of the run)
            out[name] = None
            out["ubus_bad_samples"] += 1
            out.setdefault("ubus_errors", []).append(f"{name}: {e!r}"[:300])

    def agree(fast, interpreted):
        try:
            if repr(fast()) != repr(interpreted()):
                out["ubus_mismatches"] += 1
        except Exception as e:
            out["ubus_bad_samples"] += 1
            out.setdefault("ubus_errors", []).append(repr(e)[:300])

    notify, out["ubus_notify_source"] = notification_frame()
    clients = ubus.encode_message_interpreted(get_clients_reply())
    status, leases = status_reply(), leases_reply()
    n = 2000
    agree(lambda: ubus.decode_message(notify), lambda: ubus.decode_message_interpreted(notify))
    agree(lambda: ubus.decode_message(clients), lambda: ubus.decode_message_interpreted(clients))
    agree(lambda: ubus.encode_message(status), lambda: ubus.encode_message_interpreted(status))
    agree(lambda: ubus.encode_message(leases), lambda: ubus.encode_message_interpreted(leases))

    figure("ubus_notify_parse_us", lambda: [ubus.decode_message(notify) for _ in range(n)],
           n, repeat)
    figure("ubus_notify_parse_interpreted_us",
           lambda: [ubus.decode_message_interpreted(notify) for _ in range(50)], 50, repeat)
    figure("ubus_get_clients_parse_us", lambda: [ubus.decode_message(clients) for _ in range(50)],
           50, repeat)
    figure("ubus_get_clients_parse_interpreted_us",
           lambda: [ubus.decode_message_interpreted(clients) for _ in range(2)], 2, repeat)
    figure("ubus_status_build_us", lambda: [ubus.encode_message(status) for _ in range(500)],
           500, repeat)
    figure("ubus_status_build_interpreted_us",
           lambda: [ubus.encode_message_interpreted(status) for _ in range(10)], 10, repeat)
    figure("ubus_leases_build_us", lambda: ubus.encode_message(leases), 1, repeat)
    figure("ubus_leases_build_interpreted_us", lambda: ubus.encode_message_interpreted(leases),
           1, max(2, repeat // 3))
    for kind in ("", "_interpreted"):
        per_frame = out.get(f"ubus_leases_build{kind}_us")
        out[f"ubus_leases_build_per_lease{kind}_us"] = (
            None if per_frame is None else round(per_frame / len(leases["data"]["leases"]), 2))
    out["ubus_frame_bytes"] = {"notify": len(notify), "get_clients": len(clients),
                               "status": len(ubus.encode_message(status)),
                               "leases": len(ubus.encode_message(leases))}
    out["ubus_fallbacks"] = ubus.CODEC.fallbacks - fallbacks
    return out
