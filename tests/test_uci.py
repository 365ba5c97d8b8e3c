"""sroamd.uci: the UCI parser (as libuci parses), the mapping of every
option to Config, errors naming file and line, and `sroamd -c FILE`
(flags override the file, --check output and exit status)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from sroamd.config import ConfigError
from sroamd.uci import NetworkResolver, load_uci_config, parse_uci
from seed_config import SEED_UCI
from uci_cases import CASES, Refused

ROOT = Path(__file__).resolve().parent.parent

SEED = SEED_UCI  # the original's example command line


def as_device(name: str, filename: str = "") -> str:
    return name


def write(tmp_path: Path, text: str, name: str = "sroamd") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def load(tmp_path: Path, text: str, resolve=as_device):
    return load_uci_config(write(tmp_path, text), resolve=resolve)


def error_of(tmp_path: Path, text: str, resolve=as_device) -> str:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text, resolve)
    return str(e.value)


def values(text: str) -> dict[str, list[str]]:
    [section] = parse_uci(text)
    return {name: option.values for name, option in section.options.items()}


# --- the parser ----------------------------------------------------------------

def test_sections_options_lists():
    sections = parse_uci(textwrap.dedent("""\
        package sroamd

        config sroamd 'main'
        	option port '4444'
        	list prefix '2001:db8::/48'
        	list prefix '192.0.2.0/24'
        config other
        	option x y
        """))
    assert [(s.type, s.name, s.line) for s in sections] == [("sroamd", "main", 3), ("other", None, 7)]
    main = sections[0].options
    assert main["port"].values == ["4444"] and not main["port"].is_list and main["port"].line == 4
    assert main["prefix"].values == ["2001:db8::/48", "192.0.2.0/24"] and main["prefix"].is_list
    assert main["prefix"].line == 6


def test_short_command_names():
    [s] = parse_uci("c sroamd main\no port 1\nl peer a:1\n")
    assert (s.type, s.name) == ("sroamd", "main")
    assert s.options["port"].values == ["1"] and s.options["peer"].values == ["a:1"]


@pytest.mark.parametrize("written, value", [
    ("plain", "plain"),
    ("'single quoted'", "single quoted"),
    ('"double quoted"', "double quoted"),
    (r"'no \escapes\ here'", r"no \escapes\ here"),
    (r'"a \"quote\" and \\ backslash"', r'a "quote" and \ backslash'),
    (r'"\n is n"', "n is n"),  # libuci takes the escaped character literally
    (r"unquoted\ space", "unquoted space"),
    ("'it'\\''s'", "it's"),  # how uci export writes a single quote
    ("'con'\"cat\"enated", "concatenated"),
    ("'# not a comment'", "# not a comment"),
    ("'semi;colon'", "semi;colon"),
    ("''", None),  # an empty value sets nothing (libuci's uci_set; see uci_cases.py)
])
def test_quoting(written, value):
    got = values(f"config t\n\toption v {written}\n")
    assert got.get("v") == ([value] if value is not None else None)


def test_comments():
    got = values(textwrap.dedent("""\
        # a comment line
        config t 'n' # after a command
        	# indented comment
        	option a 'x' # trailing
        	option b y#no space needed
        	#option c 'disabled'
        """))
    assert got == {"a": ["x"], "b": ["y"]}


def test_semicolons_separate_commands():
    # libuci (file.c parse_str): ';' separates commands after a quoted value
    # or a space; after an unquoted argument it ends the line (uci_cases.py).
    got = values("config t 'n'; option a '1'; list b 2 ;list b 3\n")
    assert got == {"a": ["1"], "b": ["2", "3"]}
    assert values("config t; option a 1; list b 2 ;list b 3\n") == {}


def test_multiline_quoted_value_and_line_continuation():
    [s] = parse_uci("config t\n\toption a 'one\ntwo'\n\toption b 'con'\\\n'tinued'\n"
                    "\toption c \"x\\\ny\"\n\toption d 4\n")
    assert s.options["a"].values == ["one\ntwo"]
    assert s.options["b"].values == ["continued"]
    assert s.options["c"].values == ["xy"]
    assert s.options["d"].line == 8
    # As in libuci, whitespace after a continuation ends the argument.
    with pytest.raises(ConfigError, match="too many arguments"):
        parse_uci("config t\n\toption b \\\n\t'value'\n")


def test_crlf_line_endings():
    [s] = parse_uci("config t 'n'\r\n\toption a 'x'\r\n\tlist b y\r\n")
    assert s.options["a"].values == ["x"] and s.options["b"].values == ["y"]


def test_repeated_option_replaces_and_list_after_option_extends():
    got = values("config t\n option a 1\n option a 2\n option b 1\n list b 2\n list c 1\n option c 9\n")
    assert got == {"a": ["2"], "b": ["1", "2"], "c": ["9"]}


def test_same_section_name_merges():
    [s] = parse_uci("config t 'n'\n option a 1\nconfig t 'n'\n option b 2\n")
    assert set(s.options) == {"a", "b"}


@pytest.mark.parametrize("text, line, message", [
    ("option a b\n", 1, "option before the first config section"),
    ("config t\n\tfrobnicate a\n", 2, "invalid command 'frobnicate'"),
    ("config t\n\toption\n", 2, "option without a name"),
    ("config t\n\toption a b c\n", 2, "too many arguments"),
    ("config t\n\toption a-b c\n", 2, "invalid option name 'a-b'"),
    ("config\n", 1, "config without a section type"),
    ("config t n x\n", 1, "too many arguments to config"),
    ("config t 'bad name'\n", 1, "invalid section name"),
    ("config t\n\toption a 'unterminated\n\n", 2, "unterminated '"),
    ('config t\n\toption a "unterminated\n', 2, 'unterminated "'),
    ("config t 'n'\nconfig u 'n'\n", 2, "redefined with another type"),
])
def test_syntax_errors_name_file_and_line(text, line, message):
    with pytest.raises(ConfigError) as e:
        parse_uci(text, "/etc/config/sroamd")
    assert str(e.value).startswith(f"/etc/config/sroamd:{line}: ")
    assert message in str(e.value)


# --- libuci's reading, case by case (issue 14; tests/uci_cases.py) ----------------

def as_result(sections) -> list:
    return [(s.type, s.name, {name: (o.values if o.is_list else o.values[0])
                              for name, o in s.options.items()})
            for s in sections]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reads_as_libuci(case):
    """Each case states libuci's reading and where in its source it comes from."""
    if isinstance(case.result, Refused):
        with pytest.raises(ConfigError) as e:
            parse_uci(case.text, "/etc/config/sroamd")
        line = case.result.opened or case.result.line
        assert str(e.value).startswith(f"/etc/config/sroamd:{line}: "), str(e.value)
    else:
        assert as_result(parse_uci(case.text)) == case.result


@pytest.mark.parametrize("text, message", [
    ("config t\n\toption 'debug'; option port 4444\n",
     "too many arguments to option debug: 'option' (libuci read the ';' as the value)"),
    ("config 'sroamd'; option port 4444\n",
     "too many arguments to config: 'option' (libuci read the ';' as the section's name)"),
    ("config t\r\n\toption a 'x';\r\n", "nothing may follow a ';' at the end of a line"),
    ("config t\n\toption\fdebug 1\n",
     "invalid command 'option\\x0cdebug': only a space or a tab may follow 'option'"),
    ("package my.pkg\n", "invalid package name 'my.pkg'"),
    ("config t\n\toption", "option without a name"),
    ("config t\n\toption a\0b\n", "a NUL byte"),
])
def test_libuci_refusals_say_why(text, message):
    with pytest.raises(ConfigError) as e:
        parse_uci(text, "f")
    assert message in str(e.value)


def test_an_empty_option_keeps_sroamd_disabled(tmp_path):
    """libuci (uci_set) ignores `option enabled ''`: the init script sees
    enabled '0', and so must --check (issue 14's first example)."""
    text = SEED.replace("option enabled '1'", "option enabled '0'") + "\toption enabled ''\n"
    assert load(tmp_path, text).enabled is False
    done = sroamd("-c", write(tmp_path, text), "--check")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["enabled"] is False


def test_an_empty_option_keeps_the_lists(tmp_path):
    """`option prefix ''` and `option peer ""` after the lists: libuci keeps them."""
    c = load(tmp_path, SEED + "\toption prefix ''\n\toption peer \"\"\n\toption interface\n")
    assert str(c.ipv4_prefix) == "192.168.44.0/24" and str(c.ipv6_prefix) == "2001:db8:4444::/48"
    assert c.peers == [("2001:db8:4444::1234", 4444)]
    assert c.interfaces == ["wlan0"]


def test_an_empty_list_item_is_a_value(tmp_path):
    """`list nameserver ''` is an item for libuci (uci_add_list): an empty
    address, which sroamd refuses as it would on the command line."""
    msg = error_of(tmp_path, SEED + "\tlist nameserver ''\n")
    assert msg.startswith(f"{tmp_path}/sroamd:11: bad address ''"), msg


def test_package_with_a_dash(tmp_path):
    assert load(tmp_path, "package sroamd-test\n\n" + SEED).port == 4444


def test_bytes_that_are_not_utf8(tmp_path):
    """libuci reads bytes: a Latin-1 comment is nothing to it; a value sroamd
    uses must be UTF-8."""
    path = tmp_path / "sroamd"
    path.write_bytes(b"# caf\xe9\n" + SEED.encode())
    assert load_uci_config(str(path), resolve=as_device).port == 4444
    path.write_bytes(SEED.encode() + b"\tlist interface 'wl\xe9'\n")
    with pytest.raises(ConfigError, match="sroamd:11: interface: not UTF-8 text"):
        load_uci_config(str(path), resolve=as_device)


# --- options -> Config ---------------------------------------------------------------

def test_seed_example(tmp_path):
    c = load(tmp_path, SEED)
    assert c.enabled is True
    assert c.ipv6_prefix == ip_network("2001:db8:4444::/48")
    assert c.ipv4_prefix == ip_network("192.168.44.0/24")
    assert c.port == 4444
    assert c.peers == [("2001:db8:4444::1234", 4444)]
    assert c.nameservers == [ip_address("2001:db8:1234::42"), ip_address("10.0.0.42")]
    assert c.gateway == ip_address("192.168.44.1")
    assert c.interfaces == ["wlan0"]


def test_every_option(tmp_path):
    c = load(tmp_path, SEED + textwrap.dedent("""\
        	option debug '2'
        	option station_source 'hostapd'
        	option ubus_socket '/tmp/ubus.sock'
        	option hostapd_dir '/tmp/hostapd'
        	option lease_time '600'
        	option route_metric '10'
        	list interface 'wlan1'
        	list peer '192.0.2.7:4444'
        """))
    assert (c.debug, c.station_source, c.ubus_socket, c.hostapd_dir, c.lease_time, c.route_metric) \
        == (2, "hostapd", "/tmp/ubus.sock", "/tmp/hostapd", 600, 10)
    assert c.interfaces == ["wlan0", "wlan1"]
    assert c.peers == [("2001:db8:4444::1234", 4444), ("192.0.2.7", 4444)]


def test_defaults_without_options(tmp_path):
    c = load(tmp_path, "config sroamd 'main'\n")
    assert c.enabled and c.ipv4_prefix is None and c.interfaces == [] and c.lease_time == 1800


@pytest.mark.parametrize("word, enabled", [("0", False), ("no", False), ("off", False),
                                           ("false", False), ("disabled", False), ("1", True),
                                           ("yes", True), ("on", True), ("true", True)])
def test_enabled_values(tmp_path, word, enabled):
    assert load(tmp_path, f"config sroamd 'main'\n\toption enabled '{word}'\n").enabled is enabled


def test_main_section_is_preferred_else_the_first(tmp_path):
    text = "config sroamd\n\toption port '1'\nconfig sroamd 'main'\n\toption port '2'\n"
    assert load(tmp_path, text).port == 2
    assert load(tmp_path, "config sroamd\n\toption port '3'\nconfig sroamd 'x'\n\toption port '4'\n").port == 3


@pytest.mark.parametrize("option, line_text, message", [
    ("prefix", "list prefix '192.168.44.0/33'", "bad prefix '192.168.44.0/33'"),
    ("prefix", "list prefix '2001:db8::/80'", "longer than /64"),
    ("prefix", "list prefix '192.0.2.0/24'", "a second IPv4 prefix"),
    ("port", "option port '70000'", "bad port '70000': must be 1-65535"),
    ("peer", "list peer '2001:db8::1:4444'", "bad peer"),
    ("nameserver", "list nameserver 'dns.example'", "bad address 'dns.example'"),
    ("address", "option address '2001:db8::1'", "an IPv4 address is needed"),
    ("interface", "list interface 'wlan/0'", "bad interface name 'wlan/0'"),
    ("debug", "option debug 'loud'", "bad debug level 'loud'"),
    ("station_source", "option station_source 'magic'", "bad station source 'magic'"),
    ("lease_time", "option lease_time '59'", "bad lease time '59': must be 60-604800"),
    ("route_metric", "option route_metric '-1'", "bad route metric '-1'"),
    ("ubus_socket", "option ubus_socket 'relative'", "an absolute path is needed"),
    ("enabled", "option enabled 'maybe'", "bad boolean 'maybe'"),
    ("typo", "option prot '4444'", "unknown option 'prot'"),
    ("kind", "option prefix '192.0.2.0/24'", "'prefix' is a list: write \"list prefix '192.0.2.0/24'\""),
    ("kind", "list port '4444'", "'port' takes one value"),
])
def test_value_errors_name_file_and_line(tmp_path, option, line_text, message):
    text = SEED + "\t" + line_text + "\n"
    path = str(tmp_path / "sroamd")
    msg = error_of(tmp_path, text)
    assert msg.startswith(f"{path}:11: "), msg
    assert message in msg


def test_error_message_example(tmp_path):
    msg = error_of(tmp_path, SEED.replace("192.168.44.0/24", "192.168.44.0/33"))
    assert msg.startswith(f"{tmp_path}/sroamd:4: bad prefix '192.168.44.0/33': ")


def test_unknown_section_type_and_missing_section(tmp_path):
    assert "sroamd:11: unknown section type 'sroam'" in error_of(tmp_path, SEED + "config sroam 'x'\n")
    assert "no 'config sroamd' section" in error_of(tmp_path, "# empty\n")


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read /nonexistent/sroamd"):
        load_uci_config("/nonexistent/sroamd")


def test_the_shipped_default_parses_and_is_disabled():
    c = load_uci_config(str(ROOT / "files/etc/config/sroamd"), resolve=as_device)
    assert c.enabled is False
    assert c.interfaces == [] and c.ipv4_prefix is None


def test_the_shipped_default_seed_lines_parse_when_uncommented(tmp_path):
    text = (ROOT / "files/etc/config/sroamd").read_text()
    uncommented = "\n".join(line.replace("\t#option", "\toption").replace("\t#list", "\tlist")
                            for line in text.splitlines())
    c = load(tmp_path, uncommented.replace("option enabled '0'", "option enabled '1'"))
    assert c.enabled and c.interfaces == ["wlan0"] and c.port == 4444
    assert str(c.ipv4_prefix) == "192.168.44.0/24" and str(c.gateway) == "192.168.44.1"


# --- logical interface names ----------------------------------------------------------

def test_resolver_is_applied_to_interfaces(tmp_path):
    seen = []

    def resolve(name, filename):
        seen.append((name, filename))
        return {"lan": "br-lan"}.get(name, name)

    c = load(tmp_path, SEED + "\tlist interface 'lan'\n", resolve)
    assert c.interfaces == ["wlan0", "br-lan"]
    assert seen == [("wlan0", str(tmp_path / "sroamd")), ("lan", str(tmp_path / "sroamd"))]


@pytest.fixture
def fake_ubus(tmp_path):
    """A `ubus` that knows network.interface.lan (up) and .roam (down)."""
    ubus = tmp_path / "ubus"
    log = tmp_path / "ubus.log"
    ubus.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo "$*" >> {log}
        [ "$1" = -s ] && shift 2
        case "$2" in
        network.interface.lan) echo '{{"up": true, "l3_device": "br-lan", "device": "br-lan"}}' ;;
        network.interface.roam) echo '{{"up": false, "device": "wlan-roam"}}' ;;
        network.interface.bare) echo '{{"up": false}}' ;;
        *) echo "Command failed: Not found" >&2; exit 4 ;;
        esac
        """))
    ubus.chmod(0o755)
    return str(ubus), log


def test_network_resolver_asks_netifd(tmp_path, fake_ubus, caplog):
    ubus, log = fake_ubus
    sys_net = tmp_path / "net"
    (sys_net / "wlan0").mkdir(parents=True)
    resolve = NetworkResolver(ubus=ubus, sys_net=str(sys_net))
    assert resolve("lan") == "br-lan"
    assert resolve("roam") == "wlan-roam"  # down: its configured device
    caplog.clear()
    assert resolve("wlan0") == "wlan0"  # not a network; an existing device
    assert caplog.records == []
    assert resolve("wlan9") == "wlan9"
    assert "'wlan9' is not a network device here and not known to netifd" in caplog.text
    assert resolve("bare") == "bare"
    assert "no device yet" in caplog.text
    assert "call network.interface.lan status" in log.read_text()


def test_network_resolver_passes_the_ubus_socket(tmp_path, fake_ubus):
    ubus, log = fake_ubus
    socket_path = tmp_path / "ubus.sock"
    socket_path.write_text("")
    assert NetworkResolver(str(socket_path), ubus=ubus)("lan") == "br-lan"
    assert log.read_text().startswith(f"-s {socket_path} call network.interface.lan status")


def test_without_ubus_names_are_devices_and_the_log_says_so(caplog):
    resolve = NetworkResolver(ubus="", sys_net="/nonexistent")
    assert resolve("lan") == "lan"
    assert "ubus is not available to resolve it" in caplog.text


def test_default_resolver_uses_ubus_from_path(tmp_path, fake_ubus, monkeypatch):
    ubus, _ = fake_ubus
    monkeypatch.setenv("PATH", f"{os.path.dirname(ubus)}:{os.environ['PATH']}")
    c = load_uci_config(write(tmp_path, SEED.replace("'wlan0'", "'lan'")))
    assert c.interfaces == ["br-lan"]


# --- the command line: sroamd -c FILE -----------------------------------------------

def sroamd(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "sroamd", *args], capture_output=True,
                          text=True, env=env, timeout=30)


def test_check_prints_the_effective_settings(tmp_path):
    done = sroamd("-c", write(tmp_path, SEED), "--check")
    assert done.returncode == 0, done.stderr
    settings = json.loads(done.stdout)
    assert settings["enabled"] is True
    assert settings["prefixes"] == ["192.168.44.0/24", "2001:db8:4444::/48"]
    assert settings["peers"] == ["[2001:db8:4444::1234]:4444"]
    assert settings["nameservers"] == ["2001:db8:1234::42", "10.0.0.42"]
    assert settings["address"] == "192.168.44.1"
    assert settings["interfaces"] == ["wlan0"]
    assert settings["port"] == 4444


def test_flags_override_the_file(tmp_path):
    done = sroamd("-c", write(tmp_path, SEED), "--check", "-f", "5555", "-P", "198.51.100.0/24",
                  "-N", "192.0.2.53", "-F", "192.0.2.9:5555", "-a", "198.51.100.1", "-d", "1",
                  "--lease-time", "900", "--route-metric", "7", "--station-source", "none",
                  "wlan1", "wlan2")
    assert done.returncode == 0, done.stderr
    s = json.loads(done.stdout)
    assert s["port"] == 5555
    # -P replaces the file's prefix of the same family only.
    assert s["prefixes"] == ["198.51.100.0/24", "2001:db8:4444::/48"]
    assert s["nameservers"] == ["192.0.2.53"]
    assert s["peers"] == ["192.0.2.9:5555"]
    assert s["address"] == "198.51.100.1"
    assert s["interfaces"] == ["wlan1", "wlan2"]
    assert (s["debug"], s["lease_time"], s["route_metric"], s["station_source"]) == (1, 900, 7, "none")


def test_check_shows_a_disabled_config_and_the_daemon_refuses_it(tmp_path):
    path = write(tmp_path, SEED.replace("option enabled '1'", "option enabled '0'"))
    done = sroamd("-c", path, "--check")
    assert done.returncode == 0
    assert json.loads(done.stdout)["enabled"] is False
    done = sroamd("-c", path)
    assert done.returncode == 1
    assert "not starting: disabled" in done.stderr and path in done.stderr


@pytest.mark.parametrize("args", [
    ["--bogus-flag"],
    ["-P", "192.168.44.0/33"],
    ["-f", "0"],
    ["-c", "/nonexistent/sroamd"],
    ["--station-source", "magic"],
])
def test_check_exits_1_on_any_invalid_configuration(tmp_path, args):
    done = sroamd("--check", *args)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert done.stdout == ""
    assert "sroamd:" in done.stderr


def test_check_exits_1_on_a_bad_file_naming_its_line(tmp_path):
    path = write(tmp_path, SEED + "\toption lease_time '5'\n")
    done = sroamd("-c", path, "--check")
    assert done.returncode == 1
    assert f"{path}:11: bad lease time '5'" in done.stderr


def test_without_check_bad_flags_keep_argparse_status_2():
    assert sroamd("--bogus-flag").returncode == 2
