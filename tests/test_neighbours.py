"""ARP and NA to a client that arrived: the frames from per-link templates
are byte for byte those built for the client (sroamd/neighbours.py)."""

import os

from sroamd import neighbours

OUR_MAC = bytes.fromhex("020000000044")
GATEWAY = bytes([192, 0, 2, 1])
LINK_LOCAL = bytes.fromhex("fe800000000000000000000000000044")


def test_templates_give_the_frames_built_for_each_client():
    for _ in range(100):
        client = os.urandom(6)
        for gateway, link_local in ((GATEWAY, LINK_LOCAL), (None, LINK_LOCAL), (GATEWAY, None)):
            assert neighbours.announcements(OUR_MAC, gateway, link_local, client) == \
                neighbours.build_announcements(OUR_MAC, gateway, link_local, client)
    assert neighbours.announcements(OUR_MAC, None, None, os.urandom(6)) == []


def test_each_frame_is_addressed_to_the_client():
    client = bytes.fromhex("02aabbccddee")
    arp, na = neighbours.announcements(OUR_MAC, GATEWAY, LINK_LOCAL, client)
    assert arp[:6] == client and arp[12:14] == b"\x08\x06"
    assert na[:6] == client and na[12:14] == b"\x86\xdd"
    assert neighbours._templates(OUR_MAC, GATEWAY, LINK_LOCAL) is not None  # (not rebuilt each time)
