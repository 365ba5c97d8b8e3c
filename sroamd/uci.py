"""Reading /etc/config/sroamd: a UCI file parser and its mapping to Config.

One reading of the file, libuci's.  The init script reads the file through
libuci (`config_load`, `uci get`); the daemon reads it here, with a parser
that is a line-by-line port of libuci's own (file.c: uci_getln,
parse_backslash, parse_single_quote, parse_double_quote, parse_str,
next_arg, assert_eol, uci_parse_line, uci_parse_package/config/option) and
of what it does with each command (list.c: uci_set, uci_add_list,
uci_add_section).  It keeps libuci's quirks, because the two must agree on
every file, including the odd ones:

- an empty `option NAME ''` (or "", or no value, or only a comment) changes
  nothing: uci_set returns early for an empty value when the option was not
  looked up completely, which uci_parse_option never does; so an earlier
  value or list stays;
- `list NAME ''` (or no value) adds an empty item;
- the command word ends only at a space or a tab (strtok " \\t"), so
  `option\\fNAME` is an invalid command;
- `;` ends an argument.  After an argument with no quotes or backslashes,
  parse_str's closing NUL lands on the `;`, and the rest of the line is
  dropped; after a quoted one, the `;` stays and next_arg reads it as an
  empty argument: `option 'x'; option y 1` ends the option and goes on,
  `option 'debug'; option y 1` (the `;` taken as the value) has too many
  arguments, and `option a 'x';` at the end of a line leaves the line end
  to be read as a command ("invalid command");
- package names may contain '-', option and section names may not.

Strict mode, as libuci's default and `uci get`/`uci show`: every parse
error refuses the file, with the file, the line and what is wrong.  (The
init script's config_load runs `uci -S`, which skips a bad line and reads
on; sroamd refuses such a file, and the init script, which runs
`sroamd --check` before starting it, does not start it either.)

Why not ask libuci itself (`uci export`) on OpenWrt: the daemon would then
read the file two ways, one of them only on routers and untested here; `uci`
cannot load an arbitrary `-c FILE` path; and its output has no line numbers,
which every error here names.  The port is checked against libuci's
behaviour case by case in tests/test_uci.py, and against an independent
implementation (tests/uci_export.py, the init script tests' `uci`).

Differences left: sroamd refuses a NUL byte (libuci's fgets/strlen reading
then depends on its buffer size); line numbers count a last line without a
newline (libuci's do not); bytes that are not UTF-8 are read as libuci reads
them, but a value that sroamd uses must be UTF-8.

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
NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")  # uci_validate_name: isalnum() (C locale) or _
PACKAGE_RE = re.compile(r"^[A-Za-z0-9_-]+$")  # uci_validate_package: '-' too
_COMMANDS = {"package": "package", "p": "package", "config": "config", "c": "config",
             "option": "option", "o": "option", "list": "list", "l": "list"}
_SPACE = " \t\n\v\f\r"  # isspace() in the C locale
_NUL = "\0"
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes decoded with surrogateescape

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


def _valid_type(text: str) -> bool:
    """uci_validate_type: not empty, printable ASCII without spaces."""
    return bool(text) and all(33 <= ord(ch) <= 126 for ch in text)


class _Parser:
    """libuci's file.c parser, ported function by function.

    libuci parses in place: a buffer holds the current line (and the lines a
    quoted string or a trailing backslash pulls in), `pos` reads it, a
    second index writes each argument's characters back into it with the
    quoting undone, and NULs written into the buffer end the arguments (and
    sometimes, as after `...x;`, the rest of the line).  The port keeps the
    buffer, the indices and the NULs, so that it ends where libuci ends.
    """

    def __init__(self, text: str, filename: str):
        if _NUL in text:
            line = text.count("\n", 0, text.index(_NUL)) + 1
            raise ConfigError(f"{filename}:{line}: a NUL byte (not a text file)")
        self.text = text
        self.filename = filename
        self.read = 0  # how far the text has been read (uci_getln's fgets)
        self.line = 0  # lines read so far
        self.buf: list[str] = []  # the line buffer; past its end reads as NUL
        self.pos = 0
        self.target = 0  # parse_str's write index
        self.sections: list[UciSection] = []
        self.by_name: dict[str, UciSection] = {}
        self.section: UciSection | None = None

    # --- errors ---------------------------------------------------------------

    def error(self, message: str, line: int | None = None) -> ConfigError:
        return ConfigError(f"{self.filename}:{self.line if line is None else line}: {message}")

    # --- the buffer (uci_getln, pctx_char, pctx_str) ----------------------------

    def getln(self, offset: int) -> None:
        """uci_getln: the next line of the file (with its newline) at offset."""
        del self.buf[offset:]
        if self.read >= len(self.text):
            return
        end = self.text.find("\n", self.read)
        end = len(self.text) if end < 0 else end + 1
        self.buf.extend(self.text[self.read:end])
        self.read = end
        self.line += 1

    def ch(self, i: int) -> str:
        return self.buf[i] if i < len(self.buf) else _NUL

    def cur(self) -> str:
        return self.ch(self.pos)

    def put(self, i: int, c: str) -> None:
        if i < len(self.buf):
            self.buf[i] = c

    def string(self, i: int) -> str:
        """pctx_str: the NUL-terminated string at i."""
        end = i
        while self.ch(end) != _NUL:
            end += 1
        return "".join(self.buf[i:end])

    # --- file.c -------------------------------------------------------------------

    def parse_backslash(self) -> bool:
        """After a backslash: False if it continued the line, True if the
        next character is to be taken literally."""
        self.pos += 1
        c = self.cur()
        if (c == _NUL or c == "\n"
                or (c == "\r" and self.ch(self.pos + 1) == "\n" and self.ch(self.pos + 2) == _NUL)):
            self.getln(self.pos)
            return False
        return True

    def skip_whitespace(self) -> None:
        while self.cur() != _NUL and self.cur() in _SPACE:
            self.pos += 1

    def addc(self) -> None:
        self.put(self.target, self.buf[self.pos])
        self.target += 1
        self.pos += 1

    def parse_double_quote(self) -> None:
        start = self.line
        self.pos += 1
        while True:
            c = self.cur()
            if c == '"':
                self.pos += 1
                return
            if c == _NUL:  # a multi-line value
                self.getln(self.pos)
                if self.cur() == _NUL:
                    raise self.error('unterminated " (end of file inside a quoted string)', start)
                continue
            if c == "\\" and not self.parse_backslash():
                continue
            self.addc()

    def parse_single_quote(self) -> None:
        start = self.line
        self.pos += 1
        while True:
            c = self.cur()
            if c == "'":
                self.pos += 1
                return
            if c == _NUL:  # a multi-line value
                self.getln(self.pos)
                if self.cur() == _NUL:
                    raise self.error("unterminated ' (end of file inside a quoted string)", start)
                continue
            self.addc()

    def parse_str(self) -> None:
        """One argument, its pieces written together at self.target."""
        next_ = True
        while True:
            c = self.cur()
            if c == "'":
                self.parse_single_quote()
            elif c == '"':
                self.parse_double_quote()
            elif c == "#":
                self.put(self.pos, _NUL)
                break
            elif c == _NUL:
                break
            elif c == ";":
                next_ = False
                break
            elif c == "\\":
                if self.parse_backslash():
                    self.addc()
            else:
                self.addc()
            c = self.cur()
            if c == _NUL or c in _SPACE:
                break
        # Past the whitespace that ended an unquoted argument...
        if self.cur() != _NUL and next_:
            self.pos += 1
        # ... and the argument's end: on the ';' itself if nothing before it
        # was quoted or escaped (the rest of the line is then lost).
        self.put(self.target, _NUL)

    def next_arg(self) -> tuple[int, bool]:
        """The next argument's index, and whether it was a bare ';'."""
        self.skip_whitespace()
        val = self.target = self.pos
        semicolon = self.cur() == ";"
        if semicolon:
            self.put(self.pos, _NUL)
            self.pos += 1
        else:
            self.parse_str()
        return val, semicolon

    def assert_eol(self, what: str, hint: str = "") -> None:
        self.skip_whitespace()
        val, _ = self.next_arg()
        extra = self.string(val)
        if extra:
            raise self.error(f"too many arguments to {what}: {extra!r}{hint}")

    def increase_pos(self, command: str) -> None:
        """uci_increase_pos past the command word and strtok's NUL."""
        length = len(self.string(self.pos))
        if self.pos + length + 1 > len(self.buf):
            raise self.error(self._missing(command))
        self.pos += length + 1

    @staticmethod
    def _missing(command: str) -> str:
        return {"package": "package needs one name",
                "config": "config without a section type"}.get(command, f"{command} without a name")

    def parse_line(self) -> None:
        """uci_parse_line: the commands of one line."""
        self.skip_whitespace()
        while True:
            # strtok(pctx_cur_str(pctx), " \t"): the command word ends only
            # at a space or a tab.
            start = self.pos
            while self.ch(start) in (" ", "\t"):
                start += 1
            if self.ch(start) == _NUL:
                return
            end = start
            while self.ch(end) not in (" ", "\t", _NUL):
                end += 1
            word = "".join(self.buf[start:end])
            self.put(end, _NUL)
            if word[0] == "#":
                return
            command = _COMMANDS.get(word)
            if command is None:
                raise self.error(self._invalid_command(word))
            line = self.line
            if command == "package":
                self.parse_package()
            elif command == "config":
                self.parse_config(line)
            else:
                self.parse_option(command, line)

    def _invalid_command(self, word: str) -> str:
        if word.strip(_SPACE) == "":
            return ("nothing may follow a ';' at the end of a line (libuci reads the "
                    "line's end as a command)")
        head = re.split(f"[{re.escape(_SPACE)}]", word, maxsplit=1)[0]
        command = _COMMANDS.get(head)
        if command is not None:
            if word[len(head):].strip(_SPACE) == "":
                return self._missing(command)
            return (f"invalid command {word!r}: only a space or a tab may follow "
                    f"{head!r}")
        return f"invalid command {word!r} (expected config, option or list)"

    def parse_package(self) -> None:
        """`package NAME`: checked, then ignored (the file's name is its package)."""
        self.increase_pos("package")
        val, _ = self.next_arg()
        name = self.string(val)
        if not name:
            raise self.error("package needs one name")
        if not PACKAGE_RE.match(name):
            raise self.error(f"invalid package name {name!r}: only letters, digits, _ and -")
        self.assert_eol("package")

    def parse_config(self, line: int) -> None:
        self.increase_pos("config")
        val, _ = self.next_arg()
        kind = self.string(val)
        if not kind:
            raise self.error("config without a section type")
        if not _valid_type(kind):
            raise self.error(f"invalid character in section type {kind!r}")
        val, semicolon = self.next_arg()
        name = self.string(val)
        if name and not NAME_RE.match(name):
            raise self.error(f"invalid section name {name!r}: only letters, digits and _")
        self.assert_eol("config", " (libuci read the ';' as the section's name)"
                        if semicolon else "")
        if not name:  # uci_add_section
            self.section = UciSection(kind, None, line)
            self.sections.append(self.section)
        elif name in self.by_name:  # uci_set on the section: the same one again
            self.section = self.by_name[name]
            if self.section.type != kind:
                raise self.error(f"section {name!r} redefined with another type "
                                 f"({kind!r}, was {self.section.type!r} on line {self.section.line})")
        else:
            self.section = self.by_name[name] = UciSection(kind, name, line)
            self.sections.append(self.section)

    def parse_option(self, command: str, line: int) -> None:
        if self.section is None:
            raise self.error(f"{command} before the first config section")
        self.increase_pos(command)
        val, _ = self.next_arg()
        name = self.string(val)
        if not name:
            raise self.error(f"{command} without a name")
        if not NAME_RE.match(name):
            raise self.error(f"invalid option name {name!r}: only letters, digits and _")
        val, semicolon = self.next_arg()
        self.assert_eol(f"{command} {name}",
                        " (libuci read the ';' as the value)" if semicolon
                        else " (quote values that contain spaces)")
        value = self.string(val)
        options = self.section.options
        existing = options.get(name)
        if command == "option":
            # uci_set: an empty value changes nothing (the option is not
            # deleted: uci_parse_option's lookup is never "complete").
            if value:
                options[name] = UciOption(name, [value], False, line)
        else:
            # uci_add_list: an option becomes the list's first item; an
            # empty value is an item too.
            if existing is None:
                existing = options[name] = UciOption(name, [], True, line)
            existing.is_list = True
            existing.line = line
            existing.values.append(value)

    def parse(self) -> list[UciSection]:
        """uci_import: line by line (strict: the first error is final)."""
        while self.read < len(self.text):
            self.pos = 0
            self.getln(0)
            if self.buf:
                self.parse_line()
        return self.sections


def parse_uci(text: str, filename: str = "<uci>") -> list[UciSection]:
    """Parse UCI text as libuci does (strict mode) into its sections, in file
    order (a repeated name merges)."""
    return _Parser(text, filename).parse()


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
    "retract_proto": (False, lambda v: parse_int(v, "retract protocol", 0, 255)),
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
            if _NOT_UTF8.search(value):
                raise ConfigError(f"{filename}:{option.line}: {option.name}: "
                                  f"not UTF-8 text: {value!r}")
            try:
                parsed.append(parser(value))
            except ConfigError as e:
                raise ConfigError(f"{filename}:{option.line}: {e}") from None
        values[option.name] = parsed
        lines[option.name] = option.line

    def at(name: str, e: ConfigError) -> ConfigError:
        return ConfigError(f"{filename}:{lines[name]}: {e}")

    for name in ("enabled", "debug", "port", "station_source", "ubus_socket", "hostapd_dir",
                 "lease_time", "route_metric", "retract_proto", "node_id", "state_dir", "max_data",
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
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
    # libuci reads bytes: what is not UTF-8 (in a comment, say) is read on;
    # a value that sroamd uses must be UTF-8 (config_from_section).
    text = data.decode("utf-8", "surrogateescape")
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
