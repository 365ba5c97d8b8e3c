"""The server side of the LuCI stand-in (tests/luci/), and headless Chromium.

No LuCI runtime runs here (no uhttpd, rpcd, ubusd), so the views of
openwrt/luci-app-sroamd are loaded by the smallest stand-in of LuCI's client
API (tests/luci/standin.js) in a real browser, served by this HTTP server,
which stands in for uhttpd and rpcd:

- /luci-static/resources/... from the app's htdocs, as uhttpd serves /www;
- POST /ubus, JSON-RPC `call` as rpcd's: every call is checked against the
  app's ACL file (and the few grants luci-base gives every page: uci's own
  methods, netifd's dump, luci-rpc's device list), as rpcd checks sessions;
  what is not granted gets ubus code 6 (permission denied) and is recorded;
- `uci get|set|delete|commit` over a UCI state read from a real file,
  with rpcd's per-config read/write ACL;
- `sroamd <method>` answered with replies captured from a running daemon
  (rounds: the n-th call of a method gets the n-th round's reply, the last
  one repeated), or ubus code 4 (not found) when no daemon is given;
- /result: what the page's scenario (tests/luci/scenarios.js) saw.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sroamd.uci import parse_uci

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "openwrt" / "luci-app-sroamd"
HTDOCS = APP / "htdocs"
STANDIN = Path(__file__).resolve().parent / "luci"
ACL_FILE = APP / "root" / "usr" / "share" / "rpcd" / "acl.d" / "luci-app-sroamd.json"

# What luci-base's ACL grants every logged-in page (modules/luci-base/root/
# usr/share/rpcd/acl.d/luci-base.json), of what the views touch.
LUCI_BASE_UBUS = {"uci": {"get", "set", "delete", "commit", "changes"},
                  "network.interface": {"dump"}, "luci-rpc": {"getNetworkDevices"}}
UCI_WRITES = {"set", "delete", "commit"}

UBUS_OK, UBUS_NOT_FOUND, UBUS_PERMISSION_DENIED = 0, 4, 6

# A router's netifd and devices, for the interface choices.
NETIFD_DUMP = {"interface": [
    {"interface": "lan", "up": True, "device": "br-lan", "l3_device": "br-lan"},
    {"interface": "roam", "up": True, "device": "wlan0", "l3_device": "wlan0"},
    {"interface": "loopback", "up": True, "device": "lo", "l3_device": "lo"},
]}
NETWORK_DEVICES = {name: {"name": name, "up": True}
                   for name in ("lo", "eth0", "br-lan", "wlan0", "wlan1")}


def acl() -> dict:
    return json.loads(ACL_FILE.read_text())["luci-app-sroamd"]


def uci_values(text: str) -> dict:
    """A UCI file as `ubus call uci get` returns it: {section: {options}}."""
    values = {}
    for index, section in enumerate(parse_uci(text)):
        name = section.name or f"cfg{index:02x}"
        entry = {".type": section.type, ".name": name, ".anonymous": section.name is None}
        for option in section.options.values():
            entry[option.name] = list(option.values) if option.is_list else option.values[0]
        values[name] = entry
    return values


def uci_text(values: dict) -> str:
    """{section: {options}} back to a UCI file."""
    def quote(v):
        return "'" + str(v).replace("'", "'\\''") + "'"
    lines = []
    for name, section in values.items():
        lines.append(f"config {section['.type']} {quote(name)}")
        for option, value in section.items():
            if option.startswith("."):
                continue
            for item in (value if isinstance(value, list) else [value]):
                lines.append(f"\t{'list' if isinstance(value, list) else 'option'} {option} {quote(item)}")
        lines.append("")
    return "\n".join(lines)


class StandinServer:
    def __init__(self, uci_configs: dict[str, str] | None = None, sroamd_rounds=None,
                 cases=None, full_config=None):
        self.uci = {name: uci_values(text) for name, text in (uci_configs or {}).items()}
        self.committed = {name: json.loads(json.dumps(v)) for name, v in self.uci.items()}
        self.sroamd_rounds = sroamd_rounds  # [{method: reply}], or None: no daemon
        self.cases = cases or []
        self.full_config = full_config or {}
        self.calls: list[tuple[str, str, int]] = []  # (object, method, ubus code)
        self.method_calls: dict[str, int] = {}
        self.results: list[dict] = []
        self.result_ready = threading.Event()
        grant = acl()
        self.ubus_grants = {obj: set(methods) for part in ("read", "write")
                            for obj, methods in grant.get(part, {}).get("ubus", {}).items()}
        self.uci_read = set(grant.get("read", {}).get("uci", [])) | set(grant.get("write", {}).get("uci", []))
        self.uci_write = set(grant.get("write", {}).get("uci", []))
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- ubus as rpcd answers it ------------------------------------------------

    def granted(self, obj: str, method: str, args: dict) -> bool:
        if method in self.ubus_grants.get(obj, ()) or method in LUCI_BASE_UBUS.get(obj, ()):
            if obj == "uci":  # rpcd's uci plugin checks the config too
                allowed = self.uci_write if method in UCI_WRITES else self.uci_read
                return args.get("config") in allowed
            return True
        return False

    def ubus(self, obj: str, method: str, args: dict) -> tuple[int, dict | None]:
        if not self.granted(obj, method, args):
            return UBUS_PERMISSION_DENIED, None
        if obj == "sroamd":
            if self.sroamd_rounds is None:
                return UBUS_NOT_FOUND, None
            n = self.method_calls.get(method, 0)
            self.method_calls[method] = n + 1
            reply = self.sroamd_rounds[min(n, len(self.sroamd_rounds) - 1)].get(method)
            return (UBUS_OK, reply) if reply is not None else (UBUS_NOT_FOUND, None)
        if obj == "uci":
            config = self.uci.get(args.get("config"))
            if config is None:
                return UBUS_NOT_FOUND, None
            section = config.get(args.get("section")) if "section" in args else None
            if method == "get":
                return UBUS_OK, {"values": config}
            if method == "set":
                section.update(args.get("values", {}))
                return UBUS_OK, None
            if method == "delete":
                for option in args.get("options", []):
                    section.pop(option, None)
                return UBUS_OK, None
            if method == "commit":
                self.committed[args["config"]] = json.loads(json.dumps(config))
                return UBUS_OK, None
            return UBUS_OK, {"changes": {}}
        if obj == "network.interface":
            return UBUS_OK, NETIFD_DUMP
        if obj == "luci-rpc":
            return UBUS_OK, NETWORK_DEVICES
        return UBUS_NOT_FOUND, None

    # -- HTTP ------------------------------------------------------------------------

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body: bytes, kind="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _file(self, path: Path):
                if not path.is_file():
                    return self._send(404, b"not found", "text/plain")
                kind = {".js": "application/javascript", ".html": "text/html",
                        ".css": "text/css"}.get(path.suffix, "application/octet-stream")
                self._send(200, path.read_bytes(), kind)

            def do_GET(self):
                path = self.path.split("?")[0]
                if path == "/harness.html":
                    return self._file(STANDIN / "harness.html")
                if path.startswith("/standin/"):
                    return self._file(STANDIN / os.path.basename(path))
                if path.startswith("/luci-static/"):
                    target = (HTDOCS / path.lstrip("/")).resolve()
                    if HTDOCS.resolve() not in target.parents:
                        return self._send(403, b"", "text/plain")
                    return self._file(target)
                if path == "/cases":
                    return self._send(200, json.dumps(server.cases).encode())
                if path == "/full-config":
                    return self._send(200, json.dumps(server.full_config).encode())
                self._send(404, b"not found", "text/plain")

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"null")
                if self.path == "/result":
                    with server.lock:
                        server.results.append(body)
                    server.result_ready.set()
                    return self._send(200, b"{}")
                if self.path == "/ubus":
                    _session, obj, method, args = body["params"]
                    with server.lock:
                        code, reply = server.ubus(obj, method, args)
                        server.calls.append((obj, method, code))
                    result = [code] if reply is None else [code, reply]
                    return self._send(200, json.dumps(
                        {"jsonrpc": "2.0", "id": body.get("id"), "result": result}).encode())
                self._send(404, b"{}")

        return Handler


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--hide-scrollbars"]


def run_page(server: StandinServer, view: str, scenario: str, screenshot: str,
             height: int = 2200, budget_ms: int = 30000, timeout: float = 120) -> dict:
    """Load harness.html?view=...&scenario=... in headless Chromium; the
    scenario's result. The screenshot is taken when the page is done (the
    virtual time budget runs the page's timers, poll included, without
    waiting for them in real time)."""
    server.result_ready.clear()
    profile = tempfile.mkdtemp(prefix="sroamd-chromium-")
    try:
        done = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             f"--window-size=1280,{height}", f"--virtual-time-budget={budget_ms}",
             f"--screenshot={screenshot}",
             f"{server.url}/harness.html?view={view}&scenario={scenario}"],
            capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if not server.result_ready.wait(5):
        raise AssertionError(f"the page posted no result (chromium exit {done.returncode}):\n"
                             f"{done.stderr[-3000:]}")
    return server.results[-1]
