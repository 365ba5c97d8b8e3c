"""Test helper standing in for /sbin/uci in the procd harness.

  uci_export.py export FILE      shell commands (config/option/list), as
                                 `uci -n export` prints them for config_load
  uci_export.py get FILE SECTION the section's type, as `uci get pkg.SECTION`
                                 (status 1 if there is no such section)

Anonymous sections get names (cfg01, cfg02, ...) as `uci -n` gives them.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sroamd.config import ConfigError  # noqa: E402
from sroamd.uci import parse_uci  # noqa: E402


def quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def sections(path: str):
    with open(path, encoding="utf-8") as f:
        parsed = parse_uci(f.read(), path)
    for index, section in enumerate(parsed, 1):
        yield section.name or f"cfg{index:02x}", section


def main(argv: list[str]) -> int:
    try:
        if argv[0] == "export":
            out = []
            for name, section in sections(argv[1]):
                out.append(f"config {quote(section.type)} {quote(name)}")
                for option in section.options.values():
                    for value in option.values:
                        kind = "list" if option.is_list else "option"
                        out.append(f"{kind} {quote(option.name)} {quote(value)}")
            print("\n".join(out))
            return 0
        if argv[0] == "get":
            if not os.path.exists(argv[1]):
                return 1
            for name, section in sections(argv[1]):
                if name == argv[2]:
                    print(section.type)
                    return 0
            return 1
    except ConfigError as e:
        print(f"uci: {e}", file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
