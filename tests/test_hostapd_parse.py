"""The hostapd control-socket parsing, without sockets."""

import pytest

from sroamd.stations import StationEvent
from sroamd.stations_hostapd import (StaInfo, event_name, format_mac, is_ok,
                                     is_unsolicited, parse_event, parse_mac,
                                     parse_sta)

MAC = bytes.fromhex("02005e100001")


# -- MAC addresses --------------------------------------------------------

@pytest.mark.parametrize("text", ["02:00:5e:10:00:01", "02:00:5E:10:00:01",
                                  b"02:00:5e:10:00:01"])
def test_parse_mac(text):
    assert parse_mac(text) == MAC


@pytest.mark.parametrize("text", ["", "02:00:5e:10:00", "02:00:5e:10:00:01:02",
                                  "02-00-5e-10-00-01", "020:0:5e:10:00:01",
                                  "0x:00:5e:10:00:01", "+2:00:5e:10:00:01",
                                  " 2:00:5e:10:00:01", b"\xff\xfe",
                                  "02:00:5e:10:00:01 "])
def test_parse_mac_rejects(text):
    assert parse_mac(text) is None


def test_format_mac_round_trip():
    assert format_mac(MAC) == "02:00:5e:10:00:01"
    assert parse_mac(format_mac(MAC)) == MAC
    with pytest.raises(ValueError):
        format_mac(b"\x01\x02")


# -- unsolicited events ---------------------------------------------------

def test_connected():
    assert parse_event("wl0", b"<3>AP-STA-CONNECTED 02:00:5e:10:00:01") == \
        StationEvent("wl0", MAC, True)


def test_disconnected():
    assert parse_event("wl0", b"<3>AP-STA-DISCONNECTED 02:00:5e:10:00:01") == \
        StationEvent("wl0", MAC, False)


@pytest.mark.parametrize("msg", [
    # extra fields hostapd may append
    b"<3>AP-STA-CONNECTED 02:00:5e:10:00:01 keyid=guest",
    b"<3>AP-STA-CONNECTED 02:00:5e:10:00:01 p2p_dev_addr=02:00:00:00:00:02",
    b"<3>AP-STA-CONNECTED 02:00:5E:10:00:01\n",
    # global control interface forms
    b"<3>IFNAME=wlan0 AP-STA-CONNECTED 02:00:5e:10:00:01",
    b"IFNAME=wlan0 <3>AP-STA-CONNECTED 02:00:5e:10:00:01",
    # other levels
    b"<2>AP-STA-CONNECTED 02:00:5e:10:00:01",
])
def test_connected_variants(msg):
    assert parse_event("wl0", msg) == StationEvent("wl0", MAC, True)


@pytest.mark.parametrize("msg", [
    b"",
    b"<3>",
    b"<3>AP-STA-CONNECTED",
    b"<3>AP-STA-CONNECTED ",
    b"<3>AP-STA-CONNECTED 02:00:5e:10:00",
    b"<3>AP-STA-CONNECTED zz:00:5e:10:00:01",
    b"<3>AP-STA-CONNECTEDX 02:00:5e:10:00:01",
    b"<3>CTRL-EVENT-EAP-SUCCESS 02:00:5e:10:00:01",
    b"<3>AP-STA-POLL-OK 02:00:5e:10:00:01",
    b"<x>AP-STA-CONNECTED 02:00:5e:10:00:01",
    b"<3 AP-STA-CONNECTED 02:00:5e:10:00:01",
    b"AP-STA-CONNECTED 02:00:5e:10:00:01",  # no level: not an event
    b"<3>AP-STA-CONNECTED \xff\xfe:00:5e:10:00:01",
    b"<3>\xff AP-STA-CONNECTED 02:00:5e:10:00:01",
    b"OK\n",
    b"PONG\n",
])
def test_not_a_station_event(msg):
    assert parse_event("wl0", msg) is None


def test_event_name():
    assert event_name(b"<3>CTRL-EVENT-TERMINATING ") == "CTRL-EVENT-TERMINATING"
    assert event_name(b"<3>AP-DISABLED ") == "AP-DISABLED"
    assert event_name(b"PONG\n") is None
    assert event_name(b"<3>") is None


def test_is_unsolicited():
    assert is_unsolicited(b"<3>AP-ENABLED ")
    assert not is_unsolicited(b"OK\n")
    assert not is_unsolicited(b"")  # empty reply: end of the station list
    assert not is_unsolicited(b"02:00:5e:10:00:01\nflags=[AUTHORIZED]\n")


def test_is_ok():
    assert is_ok(b"OK\n") and is_ok(b"OK")
    assert not is_ok(b"FAIL\n") and not is_ok(b"") and not is_ok(b"OKAY\n")


# -- STA-FIRST / STA-NEXT replies -----------------------------------------

# As hostapd 2.10 (driver=wired, 802.1X) answers, abridged.
STA_REPLY = (b"02:00:5e:10:00:01\n"
             b"flags=[AUTHORIZED]\n"
             b"aid=0\ncapability=0x0\nlisten_interval=0\nsupported_rates=\n"
             b"timeout_next=NULLFUNC POLL\n"
             b"dot1xPaePortNumber=0\n"
             b"dot1xAuthSessionUserName=user\n")


def test_sta_authorized():
    assert parse_sta(STA_REPLY) == StaInfo(MAC, True)


def test_sta_wifi_flags():
    reply = (b"02:00:5e:10:00:01\nflags=[AUTH][ASSOC][AUTHORIZED][WMM][HT]\n"
             b"aid=1\n")
    assert parse_sta(reply) == StaInfo(MAC, True)


@pytest.mark.parametrize("flags", [b"flags=\n", b"flags=[AUTH][ASSOC]\n",
                                   b"", b"xflags=[AUTHORIZED]\n",
                                   b"aid=1\n"])
def test_sta_not_authorized(flags):
    # e.g. a station hostapd keeps for a few seconds after deauthenticating it
    assert parse_sta(b"02:00:5e:10:00:01\n" + flags) == StaInfo(MAC, False)


def test_sta_flags_only_from_flags_line():
    reply = (b"02:00:5e:10:00:01\nflags=[AUTH]\n"
             b"dot1xAuthSessionUserName=[AUTHORIZED]\n")
    assert parse_sta(reply) == StaInfo(MAC, False)


@pytest.mark.parametrize("reply", [
    b"",                   # end of the list
    b"FAIL\n",             # STA-NEXT of a station that has gone
    b"UNKNOWN COMMAND\n",
    b"\n",
    b"02:00:5e:10:00\nflags=[AUTHORIZED]\n",
    b"garbage\x00\xff\n",
])
def test_sta_none(reply):
    assert parse_sta(reply) is None
