"""libuci's reading of UCI files, written down as cases (issue 14).

Each case is a file and what libuci makes of it, read from libuci's source
(openwrt/uci: file.c, list.c, util.c) and, where named, from libuci's own
tests.  Both of this project's readings are held to them: sroamd's parser
(tests/test_uci.py) and the init script tests' stand-in for /sbin/uci
(tests/uci_export.py, tests/test_uci_standin.py), which are written apart
from each other, so that a mistake cannot hide in both.

result: the sections, [(type, name or None for anonymous, {option: value})],
a value being a str (option) or a list (list); or Refused(line, reason),
reason being libuci's own words (uci_parse_error).  lenient: what
`uci -S` (not strict: config_load's reading) makes of a refused file, when
it is worth stating.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Refused:
    line: int  # the line libuci names (where it stopped)
    reason: str  # libuci's reason; sroamd's message says more
    opened: int | None = None  # an unterminated quote: where it opened (sroamd names it)


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    result: object  # list of sections, or Refused
    source: str  # where in libuci it comes from
    lenient: object = None  # `uci -S`'s reading of a refused file


def t(options: dict, kind: str = "t", name: str | None = None) -> list:
    """One section of type t."""
    return [(kind, name, options)]


UCI_SET_EMPTY = ("list.c uci_set: an empty value returns at once when the lookup is not "
                 "UCI_LOOKUP_COMPLETE, and file.c uci_parse_option fills its pointer with "
                 "uci_fill_ptr (UCI_LOOKUP_DONE only): nothing is changed or deleted")
ADD_LIST = ("list.c uci_add_list: the value is appended as it is, empty or not; an option "
            "already set becomes the list's first item")
SEMICOLON_NUL = ("file.c parse_str: at ';' it stops without moving past it, and then writes "
                 "the argument's closing NUL at its write index, which is on the ';' when "
                 "nothing before it was quoted or escaped; uci_parse_line's strtok then "
                 "finds an empty string: the rest of the line is dropped")
SEMICOLON_KEPT = ("file.c parse_str: after a quoted (or escaped) piece the write index lags, "
                  "the ';' survives, and next_arg/assert_eol read it as an empty argument: "
                  "the next command follows")
SEMICOLON_ARG = ("file.c next_arg: a ';' where an argument starts is an empty argument; "
                 "assert_eol then reads the next command word as one more argument: "
                 "'too many arguments' (strict)")
LINE_END_WORD = ("file.c: uci_getln keeps the line's '\\n' (and a '\\r' before it) in the "
                 "buffer; after assert_eol consumed the ';', uci_parse_line's "
                 "strtok(\" \\t\") returns the line end itself as a command word")
STRTOK = ("file.c uci_parse_line: strtok(..., \" \\t\") ends the command word at a space "
          "or tab only, and the word must be exactly package/config/option/list or p/c/o/l")
PACKAGE = ("file.c uci_parse_package: next_arg(ctx, true, true, true) -> "
           "util.c uci_validate_str(name, package): letters, digits, '_' and, for a "
           "package, '-'; the name is then ignored when a file is loaded (single)")

CASES = [
    # --- an empty option changes nothing (the 21 files) -----------------
    Case("empty-option-quoted-keeps-value",
         "config sroamd 'main'\n\toption enabled '0'\n\toption enabled ''\n",
         t({"enabled": "0"}, "sroamd", "main"), UCI_SET_EMPTY),
    Case("empty-option-double-quoted-keeps-value",
         "config t\n\toption enabled '0'\n\toption enabled \"\"\n",
         t({"enabled": "0"}), UCI_SET_EMPTY),
    Case("option-without-value-keeps-value",
         "config t\n\toption enabled '0'\n\toption enabled\n",
         t({"enabled": "0"}), UCI_SET_EMPTY),
    Case("option-with-only-a-comment-keeps-value",
         "config t\n\toption enabled '0'\n\toption enabled # on again\n",
         t({"enabled": "0"}), UCI_SET_EMPTY),
    Case("option-semicolon-keeps-value",
         "config t\n\toption enabled '0'\n\toption enabled;\n",
         t({"enabled": "0"}), UCI_SET_EMPTY + "; " + SEMICOLON_NUL),
    Case("empty-option-alone-is-nothing",
         "config t\n\toption enabled ''\n", t({}), UCI_SET_EMPTY),
    Case("empty-option-keeps-a-list",
         "config t\n\tlist prefix '2001:db8::/48'\n\tlist prefix '192.0.2.0/24'\n"
         "\toption prefix ''\n",
         t({"prefix": ["2001:db8::/48", "192.0.2.0/24"]}), UCI_SET_EMPTY),
    Case("empty-option-keeps-a-peer",
         "config t\n\tlist peer '[2001:db8::1]:4444'\n\toption peer \"\"\n",
         t({"peer": ["[2001:db8::1]:4444"]}), UCI_SET_EMPTY),
    Case("option-replaces-a-list",
         "config t\n\tlist a 1\n\tlist a 2\n\toption a 3\n",
         t({"a": "3"}), "list.c uci_set: 'update option' frees the list and allocates a string"),

    # --- an empty list item is an item --------------------------------------
    Case("empty-list-item-kept",
         "config t\n\tlist a 'x'\n\tlist a ''\n\tlist a 'y'\n",
         t({"a": ["x", "", "y"]}), ADD_LIST),
    Case("list-without-value-is-an-empty-item",
         "config t\n\tlist a\n", t({"a": [""]}), ADD_LIST),
    Case("empty-list-item-after-option",
         "config t\n\toption a 'x'\n\tlist a ''\n", t({"a": ["x", ""]}), ADD_LIST),

    # --- ';' ----------------------------------------------------------------------
    Case("semicolon-after-unquoted-type-drops-the-line",
         "config t; option a 1; list b 2 ;list b 3\n", t({}), SEMICOLON_NUL),
    Case("semicolon-after-unquoted-value-drops-the-line",
         "config t\n\toption a 1; option b 2\n\toption c 3\n",
         t({"a": "1", "c": "3"}), SEMICOLON_NUL),
    Case("semicolon-after-unquoted-name-drops-the-line",
         "config t\n\toption a; option b 2\n", t({}), SEMICOLON_NUL),
    Case("semicolon-after-quoted-value-goes-on",
         "config t\n\toption a '1'; option b 2\n\tlist c \"x\"; list c y\n",
         t({"a": "1", "b": "2", "c": ["x", "y"]}), SEMICOLON_KEPT),
    Case("semicolon-after-escaped-value-goes-on",
         "config t\n\toption a 1\\2; option b 3\n", t({"a": "12", "b": "3"}), SEMICOLON_KEPT),
    Case("semicolon-after-quoted-name-goes-on",
         "config t 'n'; option a 1\n", t({"a": "1"}, "t", "n"), SEMICOLON_KEPT),
    Case("space-semicolon-goes-on",
         "config t\n\toption a 1 ; option b 2\n", t({"a": "1", "b": "2"}),
         "file.c assert_eol: next_arg reads the ';' as an empty argument, and the next "
         "command follows"),
    Case("unquoted-semicolon-at-line-end",
         "config t\n\toption a 1;\n", t({"a": "1"}), SEMICOLON_NUL),
    Case("semicolon-then-comment",
         "config t\n\toption a '1'; # comment\n", t({"a": "1"}),
         "file.c uci_parse_line: a command word starting with '#' ends the line"),
    Case("quoted-option-name-then-semicolon-too-many-arguments",
         "config t\n\toption 'debug'; option port 4444\n",
         Refused(2, "too many arguments"), SEMICOLON_ARG,
         lenient=t({})),
    Case("quoted-type-then-semicolon-too-many-arguments",
         "config 'sroamd'; option port 4444\n\toption enabled 1\n",
         Refused(1, "too many arguments"), SEMICOLON_ARG,
         lenient=t({"enabled": "1"}, "sroamd")),
    Case("space-semicolon-as-value-too-many-arguments",
         "config t\n\toption a ;option b 3\n", Refused(2, "too many arguments"), SEMICOLON_ARG),
    Case("quoted-value-semicolon-at-crlf-line-end",
         "config t\r\n\toption a 'x';\r\n", Refused(2, "invalid command"), LINE_END_WORD,
         lenient=t({"a": "x"})),
    Case("quoted-value-semicolon-at-line-end",
         "config t\n\toption a 'x';\n", Refused(2, "invalid command"), LINE_END_WORD,
         lenient=t({"a": "x"})),
    Case("space-semicolon-at-line-end",
         "config t\n\toption a x ;\n", Refused(2, "invalid command"), LINE_END_WORD),
    Case("unquoted-semicolon-at-crlf-line-end",
         "config t\r\n\toption a x;\r\n", t({"a": "x"}), SEMICOLON_NUL),

    # --- the command word -----------------------------------------------------------
    Case("formfeed-after-keyword",
         "config t\n\toption\fdebug 1\n", Refused(2, "invalid command"), STRTOK),
    Case("vtab-after-keyword",
         "config\vt\n", Refused(1, "invalid command"), STRTOK),
    Case("formfeed-between-arguments",
         "config t\n\toption a\f1\n\toption b\v2\n", t({"a": "1", "b": "2"}),
         "file.c skip_whitespace and parse_str: isspace() ends an argument"),
    Case("formfeed-before-keyword",
         "config t\n\f\toption a 1\n", t({"a": "1"}),
         "file.c uci_parse_line: skip_whitespace (isspace) at the start of the line"),
    Case("keyword-at-line-end",
         "config t\n\toption\n", Refused(2, "invalid command"), STRTOK),
    Case("crlf-lines",
         "config t 'n'\r\n\toption a 'x'\r\n\tlist b y\r\n", t({"a": "x", "b": ["y"]}, "t", "n"),
         "file.c parse_str/skip_whitespace: '\\r' is whitespace"),
    Case("short-commands",
         "c t\no a 1\nl b 2\np x\n", t({"a": "1", "b": ["2"]}), STRTOK),
    Case("unknown-command",
         "config t\n\toptions a 1\n", Refused(2, "invalid command"), STRTOK),

    # --- package ------------------------------------------------------------------
    Case("package-with-dash",
         "package my-pkg\n\nconfig t\n", t({}), PACKAGE),
    Case("package-quoted-then-semicolon",
         "package 'my-pkg'; config t\n", t({}), PACKAGE + "; " + SEMICOLON_KEPT),
    Case("package-with-dot",
         "package my.pkg\nconfig t\n", Refused(1, "invalid character in name field"), PACKAGE),
    Case("package-two-names",
         "package a b\n", Refused(1, "too many arguments"), PACKAGE),

    # --- names, types, sections ---------------------------------------------------------
    Case("option-name-with-dash",
         "config t\n\toption a-b 1\n", Refused(2, "invalid character in name field"),
         "file.c uci_parse_option: next_arg(ctx, true, true, false) -> uci_validate_name"),
    Case("type-with-punctuation",
         "config my-type.x\n", t({}, "my-type.x"),
         "file.c uci_parse_config: uci_validate_type allows printable ASCII"),
    Case("config-without-type",
         "config ''\n", Refused(1, "insufficient arguments"), "file.c next_arg(required)"),
    Case("option-before-section",
         "option a 1\n", Refused(1, "option/list command found before the first section"),
         "file.c uci_parse_option"),
    Case("named-section-merges",
         "config t 'n'\n\toption a 1\nconfig t 'n'\n\tlist a 2\n",
         t({"a": ["1", "2"]}, "t", "n"),
         "file.c uci_parse_config: uci_lookup_list finds the section, uci_set keeps it"),
    Case("named-section-other-type",
         "config t 'n'\nconfig u 'n'\n\toption a 1\n",
         Refused(2, "section of different type overwrites prior section with same name"),
         "file.c uci_parse_config (strict only)",
         lenient=[("u", "n", {"a": "1"})]),
    Case("anonymous-sections",
         "config t\n\toption a 1\nconfig t\n\toption a 2\n",
         [("t", None, {"a": "1"}), ("t", None, {"a": "2"})],
         "file.c uci_parse_config: an empty name is uci_add_section"),
    Case("too-many-arguments",
         "config t\n\toption a b c\n", Refused(2, "too many arguments"),
         "file.c assert_eol (strict)", lenient=t({"a": "b"})),

    # --- quoting ---------------------------------------------------------------------
    Case("quoting",
         "config t\n\toption a 'it'\\''s'\n\toption b \"a \\\"q\\\" \\\\ \\n\"\n"
         "\toption c 'con'\"cat\"enated\n\toption d '# not a comment'\n\toption e x#comment\n",
         t({"a": "it's", "b": "a \"q\" \\ n", "c": "concatenated", "d": "# not a comment",
            "e": "x"}),
         "file.c parse_single_quote (no escapes), parse_double_quote and parse_backslash "
         "(the escaped character literally), parse_str ('#' ends the line)"),
    Case("continuation",
         "config t\n\toption a 'con'\\\n'tinued'\n\toption b \"x\\\ny\"\n\toption c 4\n",
         t({"a": "continued", "b": "xy", "c": "4"}),
         "file.c parse_backslash: at the end of the line, uci_getln appends the next one"),
    Case("continuation-then-whitespace",
         "config t\n\toption b \\\n\t'value'\n", Refused(3, "too many arguments"),
         "file.c parse_str: after a continuation the loop condition sees the next line's "
         "whitespace and ends the argument"),
    Case("libuci-test-multiline",
         # libuci's own test: tests/shunit2/references/show_parsing_multiline.data,
         # expected in show_parsing_multiline_package.result
         "config main\n        option version  1.4.1\n\n"
         "# sockd configuration for vpn and wan\nconfig sockd 'instance0'\n"
         "        option enabled  1\n\t# sockd for vpn\n        list internal_network   vpn\n"
         "\t# ... and for wan\n        list external_network   wan\n\n"
         "\t# a long multi-line option\n        option extra_config '\n"
         "\t\tuser.unprivileged: nobody\n\t\tclient pass {\n\t\t\tfrom: 0.0.0.0/0 to: 0.0.0.0/0\n"
         "\t\t\tsession.max: 64\n\t\t\tlog: error\n\t\t}\n\n\t\tsocks pass {\n"
         "\t\t\tfrom: 0.0.0.0/0 to: 0.0.0.0/0\n\t\t\tlog: connect\n"
         "\t\t} ' # the long multi-line option ends here\n",
         [("main", None, {"version": "1.4.1"}),
          ("sockd", "instance0", {
              "enabled": "1", "internal_network": ["vpn"], "external_network": ["wan"],
              "extra_config": "\n\t\tuser.unprivileged: nobody\n\t\tclient pass {\n"
                              "\t\t\tfrom: 0.0.0.0/0 to: 0.0.0.0/0\n\t\t\tsession.max: 64\n"
                              "\t\t\tlog: error\n\t\t}\n\n\t\tsocks pass {\n"
                              "\t\t\tfrom: 0.0.0.0/0 to: 0.0.0.0/0\n\t\t\tlog: connect\n"
                              "\t\t} "})],
         "libuci's tests/shunit2 show_parsing_multiline (parse_single_quote, case 0)"),
    Case("unterminated-quote",
         "config t\n\toption a 'open\n\n", Refused(3, "EOF with unterminated '", opened=2),
         "file.c parse_single_quote"),
]
