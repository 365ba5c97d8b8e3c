"""The init script tests' stand-in for /sbin/uci (tests/uci_export.py),
held to libuci's reading (tests/uci_cases.py) on its own, and to sroamd's
parser on generated files: the two are written apart, so that a mistake in
either shows here instead of hiding in both (issue 14)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from sroamd.config import ConfigError
from sroamd.uci import parse_uci
from uci_cases import CASES, Refused
from uci_export import ParseError, Reader, anonymous_name

HERE = Path(__file__).resolve().parent


def standin(text: str, strict: bool = True):
    try:
        sections = Reader(text, strict).read()
    except ParseError as e:
        return Refused(e.line, e.reason)
    return [(s.kind, s.name, s.options) for s in sections]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_standin_reads_as_libuci(case):
    got = standin(case.text)
    if isinstance(case.result, Refused):
        assert isinstance(got, Refused) and (got.line, got.reason) == (case.result.line, case.result.reason)
    else:
        assert got == case.result
    if case.lenient is not None:
        assert standin(case.text, strict=False) == case.lenient


def test_anonymous_names_as_libucis_own_test():
    """libuci's tests/shunit2 show_parsing_multiline: `config main` with
    `option version 1.4.1` first in the file is cfg01ca82."""
    [case] = [c for c in CASES if c.id == "libuci-test-multiline"]
    first = Reader(case.text).read()[0]
    assert anonymous_name(first) == "cfg01ca82"


def uci(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HERE / "uci_export.py"), "-c", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=30)


def test_export_and_get(tmp_path):
    (tmp_path / "sroamd").write_text(
        "config sroamd 'main'\n\toption enabled '0'\n\toption enabled ''\n"
        "\tlist peer 'it'\\''s'\n\tlist peer ''\nconfig other\n")
    done = uci(tmp_path, "-S", "-n", "export", "sroamd")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("package sroamd\n\nconfig sroamd 'main'\n\toption enabled '0'\n"
                           "\tlist peer 'it'\\''s'\n\tlist peer ''\n\nconfig other 'cfg02"
                           + done.stdout.split("cfg02")[1])
    assert uci(tmp_path, "get", "sroamd.main").stdout == "sroamd\n"
    assert uci(tmp_path, "get", "sroamd.main.enabled").stdout == "0\n"
    assert uci(tmp_path, "-q", "get", "sroamd.nothing").returncode == 1
    assert uci(tmp_path, "-q", "get", "network.lan").returncode == 1  # no file


def test_not_strict_skips_a_bad_line_strict_refuses(tmp_path):
    (tmp_path / "sroamd").write_text("config sroamd 'main'\n\toption a b c\n\toption enabled '0'\n")
    assert "option enabled '0'" in uci(tmp_path, "-S", "-n", "export", "sroamd").stdout
    done = uci(tmp_path, "get", "sroamd.main")
    assert done.returncode == 1
    assert done.stderr == "uci: Parse error (too many arguments) at line 2\n"


# --- the two readings agree on generated files --------------------------------------------

ARGS = ["a", "b_1", "'x y'", '"q"', "''", '""', "v\\;w", "'it'\\''s'", "x#c", "'#'", "a-b",
        "'multi\nline'", '"cont\\\ninued"', "z\\\n", "1", "'2'", "\"'\"", "\u00e9", "w;", "'w';",
        '"\\"x\\\\"', "\\'"]
SEPARATORS = [" ", " ", "\t", " ; ", "; ", ";", " \f", "\v", "  "]
ENDINGS = [" # c", "#c", ";", " ;", "; option b 1", " ; list a 2", "\r", ""]


def generate(rng: random.Random) -> str:
    lines = []
    if rng.random() < 0.2:
        lines.append("package " + rng.choice(["x", "my-pkg", "'q'", "a.b"]))
    for _ in range(rng.randint(1, 4)):
        lines.append(rng.choice(["config t", "config t 'n'", "config u 'n'", "config sroamd 'main'",
                                 "config 'q';", "c t m", "config\tt\tn"]))
        for _ in range(rng.randint(0, 5)):
            parts = [rng.choice(["\toption", "\tlist", "\to", "  list", "option", "\fl"]),
                     rng.choice([" ", "\t", " "]), rng.choice(["a", "b", "a", "'a'", "c"])]
            for _ in range(rng.choice([0, 1, 1, 1, 2])):
                parts += [rng.choice(SEPARATORS), rng.choice(ARGS)]
            if rng.random() < 0.25:
                parts.append(rng.choice(ENDINGS))
            lines.append("".join(parts))
        if rng.random() < 0.2:
            lines.append(rng.choice(["", "# comment", "\t", "\f"]))
    return ("\n" if rng.random() < 0.8 else "\r\n").join(lines) + rng.choice(["\n", "\n", "", "\r\n"])


def sroamd_reading(text: str):
    try:
        sections = parse_uci(text, "f")
    except ConfigError as e:
        return Refused(int(str(e).split(":")[1]), "")
    return [(s.type, s.name, {name: (o.values if o.is_list else o.values[0])
                              for name, o in s.options.items()}) for s in sections]


def test_the_two_readings_agree_on_generated_files():
    rng = random.Random(14)
    accepted = refused = 0
    for _ in range(int(os.environ.get("UCI_GENERATED", "1500"))):
        text = generate(rng)
        ours, theirs = sroamd_reading(text), standin(text)
        if isinstance(theirs, Refused):
            refused += 1
            assert isinstance(ours, Refused), (text, ours, theirs)
            if text.endswith("\n"):  # libuci does not count a last line without a newline
                assert ours.line == theirs.line, (text, ours, theirs)
        else:
            accepted += 1
            assert ours == theirs, text
    assert accepted > 200 and refused > 200, (accepted, refused)
