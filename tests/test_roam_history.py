"""The bounded history behind `ubus call sroamd roams`."""

from sroamd.roam_history import RoamHistory

MAC = bytes.fromhex("020000000001")
NODE = bytes.fromhex("0123456789abcdef")


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def test_newest_first_with_time_age_and_other_node():
    wall, mono = Clock(1_700_000_000.7), Clock(50.0)
    history = RoamHistory(limit=10, wall_clock=wall, monotonic=mono)
    history.record(MAC, True, "wlan0", None)
    wall.t += 30
    mono.t += 30
    history.record(MAC, False, "wlan0", NODE)
    mono.t += 5
    assert history.table() == {"limit": 10, "total": 2, "roams": [
        {"time": 1_700_000_030, "age": 5, "mac": "02:00:00:00:00:01", "action": "left",
         "interface": "wlan0", "to": NODE.hex()},
        {"time": 1_700_000_000, "age": 35, "mac": "02:00:00:00:00:01", "action": "arrived",
         "interface": "wlan0"},
    ]}


def test_bounded_keeps_the_last():
    history = RoamHistory(limit=3)
    for i in range(10):
        history.record(bytes([2, 0, 0, 0, 0, i]), True, "wlan0", NODE)
    table = history.table()
    assert table["total"] == 10
    assert [r["mac"][-2:] for r in table["roams"]] == ["09", "08", "07"]
    assert all(r["from"] == NODE.hex() for r in table["roams"])
