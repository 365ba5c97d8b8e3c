"""A stand-in for /sbin/uci in the procd harness (tests/procd_harness.sh).

  uci_export.py [-c DIR] [-q] [-S] [-n] export PACKAGE
      what `uci export` prints, which /lib/functions.sh's config_load runs
      as `uci -S -n export PACKAGE` and evals: `package`, `config`,
      `option` and `list` commands, values quoted as uci_escape quotes them
  uci_export.py [-c DIR] [-q] get PACKAGE.SECTION[.OPTION]
      a section's type or an option's value (a list's items joined by
      spaces), as `uci get`; status 1 if there is none or the file is bad

It does not use sroamd's parser: it is written apart from it, from libuci's
reading as tests/uci_cases.py writes it down (and tests/test_uci_standin.py
holds it to those cases), so that a mistake in sroamd/uci.py shows as a
disagreement instead of hiding in both.  sroamd/uci.py ports libuci's
in-place buffer and its NULs; this one scans each line as text and says in
words what those NULs do:

- a line is read with its newline; a quoted string or a backslash at the
  line's end reads the next line on;
- the command word runs to a space or a tab, and must be exactly a command;
- an argument is pieces written together: 'single' (literal), "double"
  (backslash takes the next character), backslash (the next character, or
  at the end of the line the next line), or plain characters; it ends at
  whitespace (which is skipped), at '#' (the rest of the line is a
  comment), or at ';';
- a ';' ending an argument made of plain characters only ends the line:
  libuci's NUL for the argument's end overwrites it.  After a quoted or
  escaped piece it stays, and where an argument starts, a ';' is an empty
  argument;
- after its arguments, a command reads one more (assert_eol): in strict
  mode it must be empty;
- `option NAME ''` sets nothing; `list NAME ''` adds an empty item.

-S (not strict, as config_load): a bad line is skipped, what its commands
did before the error stays, extra arguments are ignored, and a section
named again with another type takes the new type.
"""

from __future__ import annotations

import os
import sys

SPACE = " \t\n\v\f\r"  # C isspace()
COMMANDS = {"package": "package", "p": "package", "config": "config", "c": "config",
            "option": "option", "o": "option", "list": "list", "l": "list"}


class ParseError(Exception):
    def __init__(self, reason: str, line: int):
        super().__init__(f"{reason} at line {line}")
        self.reason = reason
        self.line = line


def _is_name(text: str, package: bool = False) -> bool:
    extra = "_-" if package else "_"
    return bool(text) and all((c.isascii() and c.isalnum()) or c in extra for c in text)


def _is_type(text: str) -> bool:
    return bool(text) and all(33 <= ord(c) <= 126 for c in text)


class Section:
    def __init__(self, kind: str, name: str | None, index: int):
        self.kind = kind
        self.name = name
        self.index = index
        self.options: dict[str, str | list[str]] = {}


class Reader:
    """Reads one UCI file; strict as libuci's default, or not (-S)."""

    def __init__(self, text: str, strict: bool = True):
        self.rest = text  # what is not yet read
        self.strict = strict
        self.line = 0
        self.sections: list[Section] = []
        self.current: Section | None = None

    # --- lines ----------------------------------------------------------------

    def next_line(self) -> str:
        cut = self.rest.find("\n") + 1 or len(self.rest)
        line, self.rest = self.rest[:cut], self.rest[cut:]
        if line.endswith("\n"):
            self.line += 1
        return line

    def more(self) -> bool:
        """Read the next line on (a quote or a continuation needs it)."""
        line = self.next_line()
        self.s += line
        return bool(line)

    def fail(self, reason: str):
        raise ParseError(reason, self.line)

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    # --- arguments -------------------------------------------------------------------

    def at_line_end_backslash(self) -> bool:
        """After a backslash at self.i - 1: is it the end of the line?"""
        tail = self.s[self.i:]
        return tail in ("", "\n", "\r\n")

    def quoted(self, quote: str) -> str:
        out = []
        self.i += 1
        while True:
            c = self.peek()
            if c == "":
                if not self.more():
                    self.fail(f"EOF with unterminated {quote}")
                continue
            self.i += 1
            if c == quote:
                return "".join(out)
            if c == "\\" and quote == '"':
                if self.at_line_end_backslash():
                    self.s = self.s[:self.i]  # the line end goes, the next line comes
                    self.more()
                    continue
                c = self.peek()
                self.i += 1
            out.append(c)

    def argument(self) -> str:
        """The next argument ('' at the end, or for a ';' alone)."""
        if self.dead:  # libuci: a NUL at the read position
            return ""
        while self.peek() and self.peek() in SPACE:
            self.i += 1
        if self.peek() == "":
            return ""
        if self.peek() == ";":
            self.i += 1
            return ""
        out = []
        plain = True  # nothing quoted or escaped yet
        while True:
            c = self.peek()
            if c in ("'", '"'):
                plain = False
                out.append(self.quoted(c))
            elif c == "#":
                self.dead = True  # a comment: the rest of the line is gone
                break
            elif c == "":
                break
            elif c == ";":
                if plain:
                    self.dead = True  # the argument's end overwrites the ';'
                break
            elif c == "\\":
                plain = False
                self.i += 1
                if self.at_line_end_backslash():
                    self.s = self.s[:self.i]
                    self.more()
                else:
                    out.append(self.peek())
                    self.i += 1
            else:
                out.append(c)
                self.i += 1
            c = self.peek()
            if c == "":
                break
            if c in SPACE:
                self.i += 1
                break
        return "".join(out)

    def end_of_command(self) -> None:
        extra = self.argument()
        if extra and self.strict:
            self.fail("too many arguments")

    # --- commands --------------------------------------------------------------------

    def logical_line(self) -> None:
        self.i = 0
        self.dead = False
        while self.peek() and self.peek() in SPACE:
            self.i += 1
        while True:
            while self.peek() in (" ", "\t") and self.peek():
                self.i += 1
            if self.dead or self.peek() == "":
                return
            start = self.i
            while self.peek() and self.peek() not in (" ", "\t"):
                self.i += 1
            word = self.s[start:self.i]
            if word.startswith("#"):
                return
            command = COMMANDS.get(word)
            if command is None:
                self.fail("invalid command")
            if command in ("option", "list") and self.current is None:
                self.fail("option/list command found before the first section")
            if self.peek() == "":
                self.fail(f"{'option' if command == 'list' else command} without name")
            self.i += 1  # the space or tab after the word
            handler = {"package": self.package, "config": self.config}.get(command, self.option)
            handler(command)

    def package(self, _command: str) -> None:
        name = self.argument()
        if not name:
            self.fail("insufficient arguments")
        if not _is_name(name, package=True):
            self.fail("invalid character in name field")
        self.end_of_command()

    def config(self, _command: str) -> None:
        kind = self.argument()
        if not kind:
            self.fail("insufficient arguments")
        if not _is_type(kind):
            self.fail("invalid character in type field")
        name = self.argument()
        if name and not _is_name(name):
            self.fail("invalid character in name field")
        self.end_of_command()
        named = [s for s in self.sections if name and s.name == name]
        if named:
            if named[0].kind != kind and self.strict:
                self.fail("section of different type overwrites prior section with same name")
            named[0].kind = kind
            self.current = named[0]
        else:
            self.current = Section(kind, name or None, len(self.sections) + 1)
            self.sections.append(self.current)

    def option(self, command: str) -> None:
        name = self.argument()
        if not name:
            self.fail("insufficient arguments")
        if not _is_name(name):
            self.fail("invalid character in name field")
        value = self.argument()
        self.end_of_command()
        options = self.current.options
        if command == "option":
            if value:  # an empty value sets nothing
                options[name] = value
        else:
            old = options.get(name)
            if old is None:
                options[name] = [value]
            elif isinstance(old, str):
                options[name] = [old, value]
            else:
                old.append(value)

    def read(self) -> list[Section]:
        while self.rest:
            self.s = self.next_line()
            try:
                self.logical_line()
            except ParseError:
                if self.strict:
                    raise
        return self.sections


# --- the command line ---------------------------------------------------------------

def anonymous_name(section: Section) -> str:
    """cfgNNHHHH as libuci names an anonymous section: its number and a
    djb hash of its type and string options (libuci's own test expects
    cfg01ca82 for `config main` with `option version '1.4.1'`)."""
    h = 5381
    for text in [section.kind] + [part for name, value in section.options.items()
                                  if isinstance(value, str) for part in (name, value)]:
        for byte in text.encode("utf-8", "surrogateescape"):
            h = (h * 33 + byte) & 0xFFFFFFFF
        h &= 0x7FFFFFFF
    return f"cfg{section.index:02x}{h % 65536:04x}"


def escape(text: str) -> str:
    return text.replace("'", "'\\''")


def export(package: str, sections: list[Section]) -> str:
    out = [f"package {escape(package)}\n"]
    for section in sections:
        out.append(f"\nconfig {escape(section.kind)} '{escape(section.name or anonymous_name(section))}'\n")
        for name, value in section.options.items():
            if isinstance(value, str):
                out.append(f"\toption {escape(name)} '{escape(value)}'\n")
            else:
                out.extend(f"\tlist {escape(name)} '{escape(item)}'\n" for item in value)
    out.append("\n")
    return "".join(out)


def load(confdir: str, package: str, strict: bool) -> list[Section]:
    with open(os.path.join(confdir, package), "rb") as f:
        text = f.read().decode("utf-8", "surrogateescape")
    return Reader(text, strict).read()


def main(argv: list[str]) -> int:
    confdir, strict, quiet = "/etc/config", True, False
    while argv and argv[0].startswith("-"):
        flag = argv.pop(0)
        if flag == "-c":
            confdir = argv.pop(0)
        elif flag == "-S":
            strict = False
        elif flag == "-q":
            quiet = True
        elif flag not in ("-n",):
            print(f"uci: unknown option {flag}", file=sys.stderr)
            return 2
    if len(argv) != 2 or argv[0] not in ("export", "get"):
        print(__doc__, file=sys.stderr)
        return 2
    command, what = argv
    package, _, rest = what.partition(".")
    try:
        sections = load(confdir, package, strict)
    except FileNotFoundError:
        if not quiet:
            print("uci: Entry not found", file=sys.stderr)
        return 1
    except ParseError as e:
        if not quiet:
            print(f"uci: Parse error ({e.reason}) at line {e.line}", file=sys.stderr)
        return 1
    if command == "export":
        sys.stdout.write(export(package, sections))
        return 0
    section_name, _, option = rest.partition(".")
    for section in sections:
        if (section.name or anonymous_name(section)) != section_name:
            continue
        if not option:
            print(section.kind)
            return 0
        value = section.options.get(option)
        if value is None:
            break
        print(value if isinstance(value, str) else " ".join(value))
        return 0
    if not quiet:
        print("uci: Entry not found", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
