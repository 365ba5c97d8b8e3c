"""sroamd.status tables on a real Store (no daemon, no ubus)."""

import time
from types import SimpleNamespace

from sroamd import status
from sroamd.store import Store, association_key, ipv4_lease_key, ipv6_lease_key


def test_the_leases_reply_is_bounded_and_says_how_many():
    """Regression (attack review): `ubus call sroamd leases` over 10,000
    leases held the event loop 2-3 s and passed ubusd's 1 MiB limit (the
    connection was dropped).  At most MAX_LEASES_REPLY, IPv4 first, in
    address order, with the total."""
    store = Store()
    count = status.MAX_LEASES_REPLY + 500
    for n in range(count):
        mac = (0x020000000000 + n).to_bytes(6, "big")
        store.receive(ipv4_lease_key((0x0A000000 + count - n).to_bytes(4, "big")), 0, mac, 600)
    store.receive(ipv6_lease_key(bytes.fromhex("20010db844440001")), 0, b"\2" * 6, 600)
    store.receive(association_key(b"\2" * 6), 0, b"\1" * 8, 600)
    started = time.process_time()
    reply = status.leases(SimpleNamespace(store=store))
    took = time.process_time() - started
    assert reply["total"] == count + 1 and reply["truncated"] is True
    table = reply["leases"]
    assert len(table) == status.MAX_LEASES_REPLY
    assert table[0] == {"address": "10.0.0.1", "mac": "02:00:00:00:09:c3", "node": None,
                        "remaining": table[0]["remaining"]}
    assert 590 <= table[0]["remaining"] <= 600
    assert [e["address"] for e in table[:3]] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert took < 1.0  # (a bound on a runaway, not a benchmark)


def test_a_small_leases_reply_is_whole():
    store = Store()
    mac = b"\2\0\0\0\0\1"
    store.receive(ipv6_lease_key(bytes.fromhex("20010db844440001")), 0, mac, 600)
    store.receive(ipv4_lease_key(bytes([192, 0, 2, 9])), 0, mac, 600)
    store.receive(association_key(mac), 0, b"\1" * 8, 600)
    reply = status.leases(SimpleNamespace(store=store))
    assert reply["total"] == 2 and reply["truncated"] is False
    assert [(e["address"], e["node"]) for e in reply["leases"]] == [
        ("192.0.2.9", "0101010101010101"), ("2001:db8:4444:1::/64", "0101010101010101")]
