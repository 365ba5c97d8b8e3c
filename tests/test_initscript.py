"""files/etc/init.d/sroamd under a shell harness standing in for rc.common,
/lib/functions.sh, network.sh and procd.sh (tests/procd_harness.sh): what it
asks procd for, for several configurations, in busybox ash and dash."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from seed_config import SEED_UCI

ROOT = Path(__file__).resolve().parent.parent
INITSCRIPT = ROOT / "files/etc/init.d/sroamd"
HARNESS = ROOT / "tests/procd_harness.sh"

SHELLS = [s for s in (["busybox", "sh"], ["dash"]) if shutil.which(s[0])]

FULL = SEED_UCI  # the original's example command line

NETWORK = """\
config interface 'loopback'
	option device 'lo'
config interface 'lan'
	option device 'br-lan'
config interface 'roam'
	option proto 'static'
config device
	option name 'br-lan'
"""


class Run:
    def __init__(self, calls: list[list[str]], returncode: int, stderr: str):
        self.calls = calls
        self.returncode = returncode
        self.stderr = stderr

    def named(self, name: str) -> list[list[str]]:
        return [c[1:] for c in self.calls if c[0] == name]

    def params(self) -> dict[str, list[str]]:
        """The instance's params, procd_append_param appended."""
        out: dict[str, list[str]] = {}
        for call in self.calls:
            if call[0] == "procd_set_param":
                out[call[1]] = call[2:]
            elif call[0] == "procd_append_param":
                out.setdefault(call[1], []).extend(call[2:])
        return out

    @property
    def started(self) -> bool:
        return bool(self.named("procd_open_instance"))

    def logs(self) -> list[str]:
        return [" ".join(c) for c in self.named("logger")]


@pytest.fixture
def shell():
    """busybox ash, OpenWrt's shell, where there is one."""
    if not SHELLS:
        pytest.skip("neither busybox nor dash installed")
    return SHELLS[0]


@pytest.fixture
def run(tmp_path, shell):
    """run(sroamd_uci, network_uci=NETWORK, action='start', **netifd) -> Run;
    netifd: l3dev_<net>='dev' / physdev_<net>='dev'."""
    prog = tmp_path / "sroamd"
    prog.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m sroamd \"$@\"\n")
    prog.chmod(0o755)

    def go(sroamd_uci: str | None, network_uci: str | None = NETWORK, action: str = "start",
           **netifd: str) -> Run:
        uci_dir = tmp_path / "config"
        uci_dir.mkdir(exist_ok=True)
        for name, text in (("sroamd", sroamd_uci), ("network", network_uci)):
            if text is None:
                (uci_dir / name).unlink(missing_ok=True)
            else:
                (uci_dir / name).write_text(textwrap.dedent(text))
        record = tmp_path / "record"
        record.write_text("")
        env = {
            "PATH": os.environ["PATH"],
            "HARNESS_RECORD": str(record),
            "HARNESS_UCI_DIR": str(uci_dir),
            "HARNESS_PYTHON": sys.executable,
            "HARNESS_PROG": str(prog),
            "HARNESS_CONFIGFILE": str(uci_dir / "sroamd"),
        }
        for key, value in netifd.items():
            kind, net = key.split("_", 1)
            env[f"HARNESS_{kind.upper()}_{net}"] = value
        done = subprocess.run([*shell, str(HARNESS), str(INITSCRIPT), action], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        calls = [line.split("\x1f") for line in record.read_text().splitlines()]
        return Run(calls, done.returncode, done.stderr)

    go.prog = str(prog)
    go.conf = str(tmp_path / "config" / "sroamd")
    return go


@pytest.mark.parametrize("shell", SHELLS, ids=[s[0] for s in SHELLS])
def test_full_config_starts_sroamd_with_the_file(run):
    r = run(FULL)
    assert r.started
    assert r.params() == {
        "command": [run.prog, "-c", run.conf, "wlan0"],
        "netdev": ["wlan0"],
        "file": [run.conf],
        "respawn": [],
        "stdout": ["1"],
        "stderr": ["1"],
    }
    assert r.logs() == []
    # One instance, opened and closed, inside the service.
    names = [c[0] for c in r.calls]
    assert names.index("procd_open_service") < names.index("procd_open_instance") \
        < names.index("procd_close_instance") < names.index("procd_close_service")
    assert r.named("procd_close_service") == [["set"]]
    assert r.named("procd_add_reload_trigger") == [["sroamd"]]
    assert r.named("procd_add_interface_trigger") == []  # wlan0 is a device


def test_script_runs_the_installed_daemon_on_the_installed_file():
    text = INITSCRIPT.read_text()
    assert text.startswith("#!/bin/sh /etc/rc.common\n")
    assert "\nPROG=/usr/sbin/sroamd\n" in text
    assert "\nCONFIGFILE=/etc/config/sroamd\n" in text
    assert "\nUSE_PROCD=1\n" in text
    assert "\nSTART=" in text and "\nSTOP=" in text
    assert os.access(INITSCRIPT, os.X_OK)


def test_disabled_does_not_start_and_says_why(run):
    r = run(FULL.replace("option enabled '1'", "option enabled '0'"))
    assert not r.started
    assert any("disabled" in line and "enabled '0'" in line for line in r.logs())
    assert all(line.startswith("-t sroamd ") for line in r.logs())
    # Still listens for config changes (so enabling it starts it), but not
    # for interface events while disabled.
    assert r.named("procd_add_reload_trigger") == [["sroamd"]]
    assert r.named("procd_add_interface_trigger") == []
    assert r.named("procd_close_service") == [["set"]]  # stops a running instance


def test_shipped_default_config_is_disabled(run):
    r = run((ROOT / "files/etc/config/sroamd").read_text())
    assert not r.started
    assert any("disabled" in line for line in r.logs())


@pytest.mark.parametrize("word", ["yes", "on"])
def test_enabled_accepts_uci_booleans(run, word):
    assert run(FULL.replace("option enabled '1'", f"option enabled '{word}'")).started


def test_enabled_defaults_to_on(run):
    assert run(FULL.replace("\toption enabled '1'\n", "")).started


def test_missing_prefix_does_not_start(run):
    text = "".join(line + "\n" for line in FULL.splitlines() if "prefix" not in line)
    r = run(text)
    assert not r.started
    assert any("no prefix" in line for line in r.logs())


def test_missing_interface_does_not_start(run):
    r = run(FULL.replace("\tlist interface 'wlan0'\n", ""))
    assert not r.started
    assert any("no interface" in line for line in r.logs())


def test_no_config_file_does_not_start(run):
    r = run(None)
    assert not r.started
    assert any("no 'config sroamd' section" in line for line in r.logs())


def test_invalid_value_is_logged_with_file_and_line(run):
    r = run(FULL.replace("192.168.44.0/24", "192.168.44.0/33"))
    assert not r.started
    [line] = r.logs()
    assert "invalid configuration" in line
    assert f"{run.conf}:4: bad prefix '192.168.44.0/33'" in line


def test_unknown_option_is_logged(run):
    r = run(FULL + "\toption prot '4444'\n")
    assert not r.started
    assert any("unknown option 'prot'" in line for line in r.logs())


@pytest.mark.parametrize("shell", SHELLS, ids=[s[0] for s in SHELLS])
def test_logical_networks_are_resolved_and_get_interface_triggers(run):
    text = FULL.replace("\tlist interface 'wlan0'\n",
                        "\tlist interface 'roam'\n\tlist interface 'wlan1'\n\tlist interface 'lan'\n")
    r = run(text, l3dev_roam="br-roam", l3dev_lan="br-lan", physdev_lan="eth0")
    assert r.started
    assert r.params()["command"] == [run.prog, "-c", run.conf, "br-roam", "wlan1", "br-lan"]
    assert r.params()["netdev"] == ["br-roam", "wlan1", "br-lan"]
    assert r.named("procd_add_interface_trigger") == [
        ["interface.*", "roam", "/etc/init.d/sroamd", "reload"],
        ["interface.*", "lan", "/etc/init.d/sroamd", "reload"],
    ]
    assert r.named("procd_add_reload_trigger") == [["sroamd"]]


def test_logical_network_down_uses_its_configured_device(run):
    r = run(FULL.replace("'wlan0'", "'lan'"), physdev_lan="br-lan")
    assert r.params()["command"][-1] == "br-lan"


def test_logical_network_without_device_waits_for_it(run):
    r = run(FULL.replace("'wlan0'", "'roam'"))
    assert not r.started
    assert any("waiting for network roam" in line for line in r.logs())
    # ... and the interface trigger will reload it when it comes up.
    assert r.named("procd_add_interface_trigger") == [
        ["interface.*", "roam", "/etc/init.d/sroamd", "reload"]]


def test_without_a_network_config_names_are_devices(run):
    r = run(FULL.replace("'wlan0'", "'lan'"), network_uci=None)
    assert r.params()["command"][-1] == "lan"
    assert r.named("procd_add_interface_trigger") == []


def test_anonymous_section_is_used_when_there_is_no_main(run):
    r = run(FULL.replace("config sroamd 'main'", "config sroamd"))
    assert r.started
    assert r.params()["command"][-1] == "wlan0"


def test_reload_runs_start_again_for_procd_to_compare(run):
    r = run(FULL, action="reload")
    assert r.started
    assert r.named("procd_close_service") == [["set"]]


def test_shellcheck_clean():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed")
    for shell in ("sh", "dash"):
        done = subprocess.run(["shellcheck", "-s", shell, str(INITSCRIPT)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("shell", SHELLS, ids=[s[0] for s in SHELLS])
def test_stop_asks_for_routes_withdrawn_restart_does_not(run):
    # `stop` (and system shutdown): SIGUSR2 first, so that sroamd withdraws
    # its routes and sends a final RA when procd's SIGTERM follows.
    r = run(FULL, action="stop")
    assert r.named("procd_send_signal") == [["sroamd", "*", "USR2"]]
    names = [c[0] for c in r.calls]
    assert names.index("procd_send_signal") < names.index("procd_kill")
    # `restart` runs stop_service too (rc.common: stop, then start), but a
    # restart keeps the routes: no signal.
    r = run(FULL, action="restart")
    assert r.named("procd_send_signal") == []
    assert r.named("procd_kill") and r.started
    # `reload` (procd's restart after `uci commit`) does not stop at all.
    assert run(FULL, action="reload").named("procd_send_signal") == []


# --- one reading of the file: the init script's (libuci's) and the daemon's (issue 14) ---

def check(run, text: str) -> subprocess.CompletedProcess:
    """The daemon's own reading of the file the init script just read."""
    path = Path(run.conf)
    path.write_text(textwrap.dedent(text))
    return subprocess.run([run.prog, "-c", str(path), "--check", "wlan0"],
                          capture_output=True, text=True, timeout=60)


def test_the_standin_for_uci_is_not_sroamds_parser():
    text = (ROOT / "tests/uci_export.py").read_text()
    assert "import sroamd" not in text and "from sroamd" not in text
    assert "uci_export.py" in HARNESS.read_text()


DISABLED = FULL.replace("option enabled '1'", "option enabled '0'")


@pytest.mark.parametrize("text, outcome", [
    # libuci's uci_set ignores an empty option: the earlier value stays.
    (DISABLED + "\toption enabled ''\n", "disabled"),
    (DISABLED + '\toption enabled ""\n', "disabled"),
    (DISABLED + "\toption enabled\n", "disabled"),
    (DISABLED + "\toption enabled # back on\n", "disabled"),
    # ... and so do the lists (the daemon used to refuse: "no prefix").
    (FULL + "\toption prefix ''\n\toption peer \"\"\n\toption interface\n", "started"),
    # ';' after an unquoted value drops the rest of the line (parse_str).
    (DISABLED + "\toption enabled 0; option enabled 1\n", "disabled"),
    (FULL.replace("\toption enabled '1'\n", "\toption enabled 0; option port 5555\n"), "disabled"),
    # after a quoted one, the next command is read.
    (FULL.replace("\toption enabled '1'\n", "\toption enabled '0'; option port 5555\n"), "disabled"),
    # package names may contain '-'.
    ("package sroamd-conf\n\n" + FULL, "started"),
    # Files libuci refuses in strict mode: config_load (`uci -S`) skips the
    # bad line, the daemon refuses the file, so the script does not start it.
    (FULL + "\toption 'debug'; option port 5555\n", "invalid: too many arguments to option debug"),
    (FULL.replace("config sroamd 'main'", "config 'sroamd'; option port 5555"),
     "invalid: too many arguments to config"),
    (FULL + "\toption port '5555';\r\n", "invalid: nothing may follow a ';'"),
    (FULL + "\toption\fdebug 1\n", "invalid: invalid command"),
    (FULL + "\toption\vdebug 1\n", "invalid: invalid command"),
])
def test_the_script_and_the_daemon_read_the_file_alike(run, text, outcome):
    r = run(text)
    daemon = check(run, text)
    if outcome == "started":
        assert r.started, r.logs()
        assert daemon.returncode == 0 and json.loads(daemon.stdout)["enabled"] is True
    elif outcome == "disabled":
        assert not r.started
        assert any("disabled" in line for line in r.logs())
        assert daemon.returncode == 0, daemon.stderr
        assert json.loads(daemon.stdout)["enabled"] is False
    else:
        message = outcome.split(": ", 1)[1]
        assert not r.started
        [line] = r.logs()
        assert "invalid configuration" in line and message in line, line
        assert daemon.returncode == 1 and message in daemon.stderr
