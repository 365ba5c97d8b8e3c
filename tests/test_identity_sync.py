"""Node identity across restarts, and sync before serving (issue 10)."""

import json
import os
import subprocess
import sys

import pytest

from floodpeer import REPO
from sroamd.config import Config, ConfigError, parse_node_id
from sroamd.identity import load_node_id, node_id_path
from sroamd.startup_sync import MAX_WAIT_FACTOR, StartupSync


class Clock:
    now = 50.0

    def __call__(self):
        return self.now


def test_node_id_is_written_once_and_read_back(tmp_path):
    config = Config(state_dir=str(tmp_path / "state"))
    first = load_node_id(config)
    assert len(first) == 8 and first != bytes(8)
    assert open(node_id_path(config)).read().strip() == first.hex()
    assert load_node_id(config) == first  # a restart: the same id


def test_configured_node_id_wins_and_is_not_written(tmp_path):
    config = Config(state_dir=str(tmp_path), node_id=bytes.fromhex("0102030405060708"))
    assert load_node_id(config) == config.node_id
    assert not os.path.exists(node_id_path(config))


def test_corrupt_state_file_is_replaced(tmp_path):
    config = Config(state_dir=str(tmp_path))
    (tmp_path / "node_id").write_text("not hex\n")
    node_id = load_node_id(config)
    assert load_node_id(config) == node_id


def test_unwritable_state_dir_still_runs(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = Config(state_dir=str(blocker / "sub"))  # cannot be a directory
    assert len(load_node_id(config)) == 8


@pytest.mark.parametrize("text", ["0102", "zz02030405060708", "0000000000000000", ""])
def test_bad_node_ids_are_refused(text):
    with pytest.raises(ConfigError):
        parse_node_id(text)


def test_node_id_accepts_colons():
    assert parse_node_id("01:02:03:04:05:06:07:08") == bytes(range(1, 9))


def test_cli_and_check_show_the_node_id():
    out = subprocess.run([sys.executable, "-m", "sroamd", "--check", "--node-id",
                          "0a0b0c0d0e0f1011", "-P", "192.0.2.0/24", "wl0"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["node_id"] == "0a0b0c0d0e0f1011"


# -- sync before serving ----------------------------------------------------

def test_standalone_node_is_synced_at_once():
    assert StartupSync(Clock(), 10, has_peers=False).synced
    assert StartupSync(Clock(), 0, has_peers=True).synced


def test_dump_completes_the_sync():
    sync = StartupSync(Clock(), 10, has_peers=True)
    assert not sync.synced and not sync.tick(sessions_up=1)
    assert sync.dump_complete("[2001:db8::1]:4444") and sync.synced
    assert "2001:db8::1" in sync.status()["how"]
    assert not sync.dump_complete("another")  # once


def test_grace_without_any_peer_reachable():
    clock = Clock()
    sync = StartupSync(clock, 10, has_peers=True)
    clock.now += 9.9
    assert not sync.tick(sessions_up=0)
    clock.now += 0.2
    assert sync.tick(sessions_up=0) and "no peer reachable" in sync.how


def test_a_peer_that_never_finishes_its_dump_does_not_block_for_ever():
    clock = Clock()
    sync = StartupSync(clock, 10, has_peers=True)
    clock.now += 10 * MAX_WAIT_FACTOR - 1
    assert not sync.tick(sessions_up=1)  # a session is up: wait for its dump
    clock.now += 1
    assert sync.tick(sessions_up=1) and sync.status()["synced"]
