"""Reading /etc/config/sroamd: a UCI file parser and its mapping to Config.

The parser follows libuci's (file.c): one command per line, or several
separated by ';'; the commands are `package`, `config TYPE [NAME]`,
`option NAME [VALUE]` and `list NAME [VALUE]` (also spelled p, c, o, l);
an argument is made of unquoted, 'single-quoted' (no escapes) and
"double-quoted" pieces written together; a backslash outside single quotes
takes the next character literally, and at the end of a line continues the
line; quoted strings may span lines; '#' outside quotes starts a comment.
Names are letters, digits and '_'. Like libuci in its default strict mode,
extra arguments are an error.

Every value goes through the parsers of sroamd.config, so it means the same
as on the command line; every error names the file and line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Callable

from sroamd.config import (Config, ConfigError, parse_address, parse_int, parse_interface,
                           parse_ipv4, parse_network, parse_node_id, parse_peer, parse_port,
                           parse_prefix, parse_station_source)

log = logging.getLogger("sroamd.uci")

SECTION_TYPE = "sroamd"
SECTION_NAME = "main"
NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
_COMMANDS = {"package": "package", "p": "package", "config": "config", "c": "config",
             "option": "option", "o": "option", "list": "list", "l": "list"}
_BLANK = " \t\r\f\v"

# What config_get_bool (OpenWrt's /lib/functions.sh) accepts.
_TRUE = ("1", "on", "true", "yes", "enabled")
_FALSE = ("0", "off", "false", "no", "disabled")


@dataclass
class UciOption:
    name: str
    values: list[str]  # one value for an option; the items of a list
    is_list: bool
    line: int  # where it was (last) set


@dataclass
class UciSection:
    type: str
    name: str | None  # None: anonymous
    line: int
    options: dict[str, UciOption] = field(default_factory=dict)


class _Lexer:
    """Splits UCI text into commands: (line, [words]) with quoting undone."""

    def __init__(self, text: str, filename: str):
        self.text = text
        self.filename = filename
        self.pos = 0
        self.line = 1

    def error(self, line: int, message: str) -> ConfigError:
        return ConfigError(f"{self.filename}:{line}: {message}")

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _advance(self) -> str:
        c = self.text[self.pos]
        self.pos += 1
        if c == "\n":
            self.line += 1
        return c

    def _skip_comment(self) -> None:
        while self._peek() not in ("", "\n"):
            self.pos += 1

    def _backslash(self, out: list[str]) -> None:
        """After a backslash: a newline continues the line, anything else is literal."""
        self._advance()
        c = self._peek()
        if c == "":
            return
        if c == "\n":
            self._advance()
        elif c == "\r" and self.text[self.pos + 1:self.pos + 2] == "\n":
            self._advance()
            self._advance()
        else:
            out.append(self._advance())

    def _word(self) -> tuple[str, bool]:
        """One argument; returns it and whether the command goes on after it."""
        out: list[str] = []
        while True:
            c = self._peek()
            if c == "" or c == "\n" or c in _BLANK:
                return "".join(out), True
            if c == "#":
                self._skip_comment()
                return "".join(out), True
            if c == ";":
                self.pos += 1
                return "".join(out), False
            if c == "\\":
                self._backslash(out)
            elif c == "'":
                start = self.line
                self._advance()
                while True:
                    c = self._peek()
                    if c == "":
                        raise self.error(start, "unterminated ' (end of file inside a quoted string)")
                    self._advance()
                    if c == "'":
                        break
                    out.append(c)
            elif c == '"':
                start = self.line
                self._advance()
                while True:
                    c = self._peek()
                    if c == "":
                        raise self.error(start, 'unterminated " (end of file inside a quoted string)')
                    if c == "\\":
                        self._backslash(out)
                        continue
                    self._advance()
                    if c == '"':
                        break
                    out.append(c)
            else:
                out.append(self._advance())

    def commands(self):
        """Yields (line, words) for each command; words[0] is the command."""
        while self.pos < len(self.text):
            words: list[str] = []
            line = None
            while True:
                while self._peek() and self._peek() in _BLANK:
                    self.pos += 1
                c = self._peek()
                if c == "" or c == "\n":
                    if c:
                        self._advance()
                    break
                if c == "#":
                    self._skip_comment()
                    continue
                if c == ";":
                    self.pos += 1
                    break
                if line is None:
                    line = self.line
                word, more = self._word()
                words.append(word)
                if not more:
                    break
            if words:
                yield line, words


def parse_uci(text: str, filename: str = "<uci>") -> list[UciSection]:
    """Parse UCI text into its sections, in file order (a repeated name merges)."""
    lexer = _Lexer(text, filename)
    sections: list[UciSection] = []
    by_name: dict[str, UciSection] = {}
    current: UciSection | None = None
    for line, words in lexer.commands():
        command = _COMMANDS.get(words[0])
        if command is None:
            raise lexer.error(line, f"invalid command {words[0]!r} (expected config, option or list)")
        args = words[1:]
        if command == "package":
            if len(args) != 1 or not NAME_RE.match(args[0]):
                raise lexer.error(line, "package needs one name")
            continue
        if command == "config":
            if not args or not args[0]:
                raise lexer.error(line, "config without a section type")
            if len(args) > 2:
                raise lexer.error(line, f"too many arguments to config: {' '.join(args[2:])!r}")
            kind = args[0]
            if any(not 33 <= ord(ch) <= 126 for ch in kind):
                raise lexer.error(line, f"invalid character in section type {kind!r}")
            name = args[1] if len(args) == 2 and args[1] else None
            if name is not None and not NAME_RE.match(name):
                raise lexer.error(line, f"invalid section name {name!r}: only letters, digits and _")
            if name is not None and name in by_name:
                current = by_name[name]
                if current.type != kind:
                    raise lexer.error(line, f"section {name!r} redefined with another type "
                                            f"({kind!r}, was {current.type!r} on line {current.line})")
            else:
                current = UciSection(kind, name, line)
                sections.append(current)
                if name is not None:
                    by_name[name] = current
            continue
        # option or list
        if current is None:
            raise lexer.error(line, f"{command} before the first config section")
        if not args or not args[0]:
            raise lexer.error(line, f"{command} without a name")
        if len(args) > 2:
            raise lexer.error(line, f"too many arguments to {command} {args[0]}: "
                                    f"{' '.join(args[2:])!r} (quote values that contain spaces)")
        name = args[0]
        if not NAME_RE.match(name):
            raise lexer.error(line, f"invalid option name {name!r}: only letters, digits and _")
        value = args[1] if len(args) == 2 else ""
        existing = current.options.get(name)
        if command == "option":
            # As uci_set: replaces a previous option or list; an empty value deletes it.
            if value:
                current.options[name] = UciOption(name, [value], False, line)
            else:
                current.options.pop(name, None)
        else:
            # As uci_add_list: an existing option becomes the list's first item.
            if existing is None:
                existing = current.options[name] = UciOption(name, [], True, line)
            existing.is_list = True
            existing.line = line
            if value:
                existing.values.append(value)
    return sections


# --- mapping to Config -------------------------------------------------------

def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"bad boolean {text!r}: use '1' or '0'")


def parse_path(text: str) -> str:
    if not text.startswith("/"):
        raise ConfigError(f"bad path {text!r}: an absolute path is needed")
    return text


# option name -> (is a list, parser of one value)
OPTIONS: dict[str, tuple[bool, Callable[[str], object]]] = {
    "enabled": (False, parse_bool),
    "debug": (False, lambda v: parse_int(v, "debug level", 0, 9)),
    "prefix": (True, parse_prefix),
    "nameserver": (True, parse_address),
    "port": (False, parse_port),
    "peer": (True, parse_peer),
    "address": (False, parse_ipv4),
    "interface": (True, str),  # resolved after all options are read
    "station_source": (False, parse_station_source),
    "ubus_socket": (False, parse_path),
    "hostapd_dir": (False, parse_path),
    "lease_time": (False, lambda v: parse_int(v, "lease time", 60, 86400 * 7)),
    "route_metric": (False, lambda v: parse_int(v, "route metric", 0, 0xFFFFFFFF)),
    "node_id": (False, parse_node_id),
    "state_dir": (False, parse_path),
    "flood_listen": (True, parse_address),
    "flood_allow": (True, parse_network),
    "max_data": (False, lambda v: parse_int(v, "store size", 16, 10_000_000)),
    "sync_grace": (False, lambda v: parse_int(v, "sync grace", 0, 3600)),
}


def _pick_section(sections: list[UciSection], filename: str) -> UciSection:
    for section in sections:
        if section.type != SECTION_TYPE:
            raise ConfigError(f"{filename}:{section.line}: unknown section type {section.type!r} "
                              f"(sroamd reads one \"config {SECTION_TYPE} '{SECTION_NAME}'\" section)")
    ours = [s for s in sections if s.type == SECTION_TYPE]
    if not ours:
        raise ConfigError(f"{filename}: no 'config {SECTION_TYPE}' section")
    chosen = next((s for s in ours if s.name == SECTION_NAME), ours[0])
    for other in ours:
        if other is not chosen:
            log.warning("%s:%d: ignoring a second sroamd section (%s); reading %s",
                        filename, other.line, other.name or "anonymous", chosen.name or "the first")
    return chosen


def config_from_section(section: UciSection, filename: str,
                        resolve: Callable[[str, str], str] | None = None) -> Config:
    """Build a Config from a parsed sroamd section (see load_uci_config)."""
    config = Config()
    values: dict[str, list] = {}
    lines: dict[str, int] = {}
    for option in section.options.values():
        spec = OPTIONS.get(option.name)
        if spec is None:
            raise ConfigError(f"{filename}:{option.line}: unknown option {option.name!r} "
                              f"(known: {', '.join(OPTIONS)})")
        is_list, parser = spec
        if option.is_list and not is_list:
            raise ConfigError(f"{filename}:{option.line}: {option.name!r} takes one value: "
                              f"write \"option {option.name} '...'\", not list")
        if is_list and not option.is_list:
            raise ConfigError(f"{filename}:{option.line}: {option.name!r} is a list: "
                              f"write \"list {option.name} '{option.values[0]}'\", one line per value")
        parsed = []
        for value in option.values:
            try:
                parsed.append(parser(value))
            except ConfigError as e:
                raise ConfigError(f"{filename}:{option.line}: {e}") from None
        values[option.name] = parsed
        lines[option.name] = option.line

    def at(name: str, e: ConfigError) -> ConfigError:
        return ConfigError(f"{filename}:{lines[name]}: {e}")

    for name in ("enabled", "debug", "port", "station_source", "ubus_socket", "hostapd_dir",
                 "lease_time", "route_metric", "node_id", "state_dir", "max_data",
                 "sync_grace"):
        if values.get(name):
            setattr(config, name, values[name][0])
    if values.get("address"):
        config.gateway = values["address"][0]
    for prefix in values.get("prefix", []):
        try:
            config.set_prefix(prefix)
        except ConfigError as e:
            raise at("prefix", e) from None
    config.nameservers = list(values.get("nameserver", []))
    config.peers = list(values.get("peer", []))
    config.flood_listen = list(values.get("flood_listen", []))
    config.flood_allow = list(values.get("flood_allow", []))
    resolve = resolve or NetworkResolver(config.ubus_socket)
    interfaces = []
    for name in values.get("interface", []):
        try:
            interfaces.append(parse_interface(resolve(parse_interface(name), filename)))
        except ConfigError as e:
            raise at("interface", e) from None
    config.interfaces = interfaces
    return config


def load_uci_config(path: str, resolve: Callable[[str, str], str] | None = None) -> Config:
    """Read the sroamd section of a UCI file (e.g. /etc/config/sroamd).

    The section is `config sroamd 'main'`, else the first of type sroamd.
    Roaming interfaces given as logical networks ('lan') are resolved to
    their device by resolve(name, filename) -> device, by default through
    netifd (`ubus call network.interface.NAME status`).
    Raises ConfigError naming the file and line of any problem.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text: {e}") from None
    section = _pick_section(parse_uci(text, path), path)
    return config_from_section(section, path, resolve)


class NetworkResolver:
    """Logical network name -> device, through netifd over the ubus CLI.

    A name netifd knows as an interface gives its l3_device (or, while it is
    down, its configured device). Anything else is taken as a device name,
    with a warning when no such device exists either.
    """

    def __init__(self, ubus_socket: str | None = None, ubus: str | None = None,
                 sys_net: str = "/sys/class/net"):
        self.ubus_socket = ubus_socket
        self.ubus = ubus if ubus is not None else shutil.which("ubus")
        self.sys_net = sys_net

    def status(self, name: str) -> dict | None:
        """netifd's status of interface `name`, or None if it has none."""
        if not self.ubus:
            return None
        command = [self.ubus]
        if self.ubus_socket and os.path.exists(self.ubus_socket):
            command += ["-s", self.ubus_socket]
        command += ["call", f"network.interface.{name}", "status"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired) as e:
            log.warning("cannot ask netifd about %r: %s", name, e)
            return None
        if done.returncode != 0:
            return None
        try:
            status = json.loads(done.stdout)
        except ValueError:
            return None
        return status if isinstance(status, dict) else None

    def __call__(self, name: str, filename: str = "") -> str:
        status = self.status(name)
        if status is not None:
            device = status.get("l3_device") or status.get("device")
            if device:
                if device != name:
                    log.info("interface %r is network device %s", name, device)
                return device
            log.warning("logical interface %r has no device yet; using %r as a device name",
                        name, name)
            return name
        if not os.path.exists(os.path.join(self.sys_net, name)):
            why = "not known to netifd" if self.ubus else "ubus is not available to resolve it"
            log.warning("interface %r is not a network device here and %s; "
                        "using it as a device name", name, why)
        return name
