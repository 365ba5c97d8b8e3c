"""`make ipk`: the package's format (as OpenWrt's ipkg-build makes it), its
files, modes and owners, control fields and scripts; that it is
reproducible; that its Depends cover what sroamd imports; and that the
installed tree runs."""

from __future__ import annotations

import ast
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import sroamd

ROOT = Path(__file__).resolve().parent.parent
SITE = "usr/lib/python3.11/site-packages"
VERSION = f"{sroamd.__version__}-r1"

# Standard library modules OpenWrt splits out of python3-light
# (lang/python/python3/files/python3-package-*.mk), and the Python
# packages of the feed (or of openwrt/), by import name.
SPLIT_PACKAGES = {
    "asyncio": "python3-asyncio", "logging": "python3-logging", "email": "python3-email",
    "urllib": "python3-urllib", "xml": "python3-xml", "sqlite3": "python3-sqlite3",
    "ctypes": "python3-ctypes", "decimal": "python3-decimal",
    "multiprocessing": "python3-multiprocessing", "unittest": "python3-unittest",
    "lzma": "python3-lzma", "dbm": "python3-dbm", "ssl": "python3-openssl",
    "uuid": "python3-uuid", "readline": "python3-readline", "curses": "python3-ncurses",
    "pydoc": "python3-pydoc", "venv": "python3-venv", "webbrowser": "python3-webbrowser",
    "cgi": "python3-cgi", "cgitb": "python3-cgitb", "lib2to3": "python3-lib2to3",
    "pyroute2": "python3-pyroute2", "construct": "python3-construct", "ubus": "python3-ubus",
}


def untar(data: bytes) -> tuple[list[tarfile.TarInfo], dict[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        members = tar.getmembers()
        files = {m.name: tar.extractfile(m).read() for m in members if m.isfile()}
    return members, files


def build(outdir: Path, epoch: str = "1700000000") -> Path:
    env = dict(os.environ, SOURCE_DATE_EPOCH=epoch)
    if shutil.which("make"):
        done = subprocess.run(["make", "-s", "-C", str(ROOT), "ipk", f"DIST={outdir}"],
                              capture_output=True, text=True, env=env, timeout=120)
    else:
        done = subprocess.run([sys.executable, str(ROOT / "openwrt/build_ipk.py"),
                               "--outdir", str(outdir)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    # `make ipk` builds sroamd's package and luci-app-sroamd's beside it.
    assert sorted(p.name for p in outdir.glob("*.ipk")) == [
        f"luci-app-sroamd_{VERSION}_all.ipk", f"sroamd_{VERSION}_all.ipk"]
    return outdir / f"sroamd_{VERSION}_all.ipk"


def unpack(path: Path) -> dict:
    raw = path.read_bytes()
    outer, outer_files = untar(raw)
    data, data_files = untar(outer_files["./data.tar.gz"])
    control, control_files = untar(outer_files["./control.tar.gz"])
    return {
        "path": path, "raw": raw, "outer": outer, "outer_files": outer_files,
        "data": data, "data_files": data_files, "control": control,
        "control_files": control_files,
    }


@pytest.fixture(scope="module")
def ipk(tmp_path_factory):
    return unpack(build(tmp_path_factory.mktemp("dist")))


@pytest.fixture(scope="module")
def luci_ipk(ipk):
    return unpack(ipk["path"].parent / f"luci-app-sroamd_{VERSION}_all.ipk")


def test_name_and_outer_format(ipk):
    assert ipk["path"].name == f"sroamd_{VERSION}_all.ipk"
    assert ipk["raw"][:2] == b"\x1f\x8b"  # gzip'd tar, as ipkg-build makes (not ar)
    assert [m.name for m in ipk["outer"]] == ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
    assert ipk["outer_files"]["./debian-binary"] == b"2.0\n"
    for name in ("./data.tar.gz", "./control.tar.gz"):
        assert ipk["outer_files"][name][:2] == b"\x1f\x8b"


def test_owners_are_root_and_times_fixed(ipk):
    for member in ipk["outer"] + ipk["data"] + ipk["control"]:
        assert (member.uid, member.gid) == (0, 0), member.name
        assert member.uname == "" and member.gname == "", member.name  # --numeric-owner
        assert member.mtime == 1700000000, member.name


def test_every_module_is_shipped_unchanged(ipk):
    files = ipk["data_files"]
    modules = sorted(p for p in (ROOT / "sroamd").rglob("*.py") if "__pycache__" not in p.parts)
    assert modules
    for path in modules:
        shipped = f"./{SITE}/{path.relative_to(ROOT).as_posix()}"
        assert files.get(shipped) == path.read_bytes(), shipped
    python = [n for n in files if n.startswith(f"./{SITE}/")]
    assert len(python) == len(modules)


def test_nothing_else_is_shipped(ipk):
    names = [m.name for m in ipk["data"]]
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if "/tests" in n or "test_" in n]
    assert {n for n in ipk["data_files"] if not n.startswith(f"./{SITE}/")} == {
        "./usr/sbin/sroamd", "./etc/init.d/sroamd", "./etc/config/sroamd"}


def test_modes(ipk):
    modes = {m.name: m.mode for m in ipk["data"]}
    assert modes["./usr/sbin/sroamd"] == 0o755
    assert modes["./etc/init.d/sroamd"] == 0o755
    assert modes["./etc/config/sroamd"] == 0o600  # OpenWrt's INSTALL_CONF
    for member in ipk["data"]:
        if member.isdir():
            assert member.mode == 0o755, member.name
        elif member.name.endswith(".py"):
            assert member.mode == 0o644, member.name
    # Every directory on the way is in the archive, as tar of a tree has it.
    dirs = {m.name.rstrip("/") for m in ipk["data"] if m.isdir()}
    for name in ipk["data_files"]:
        parent = os.path.dirname(name)
        while parent not in (".", ""):
            assert parent in dirs, parent
            parent = os.path.dirname(parent)


def test_shipped_files_are_the_repositorys(ipk):
    files = ipk["data_files"]
    assert files["./etc/init.d/sroamd"] == (ROOT / "files/etc/init.d/sroamd").read_bytes()
    assert files["./etc/config/sroamd"] == (ROOT / "files/etc/config/sroamd").read_bytes()
    assert files["./usr/sbin/sroamd"].startswith(b"#!/usr/bin/python3\n")


def control_fields(ipk) -> dict[str, str]:
    text = ipk["control_files"]["./control"].decode()
    fields, key = {}, None
    for line in text.splitlines():
        if line.startswith(" "):
            fields[key] += "\n" + line[1:]
        else:
            key, value = line.split(": ", 1)
            fields[key] = value
    return fields


def test_control_fields(ipk):
    fields = control_fields(ipk)
    assert fields["Package"] == "sroamd"
    assert fields["Version"] == VERSION
    assert fields["Architecture"] == "all"
    assert fields["Section"] == "net"
    assert fields["License"] == "MIT"
    assert fields["Maintainer"]
    assert "roaming" in fields["Description"] or "roam" in fields["Description"]
    depends = fields["Depends"].split(", ")
    assert depends[0] == "libc"
    assert {"python3-light", "python3-asyncio", "python3-logging", "python3-pyroute2",
            "python3-construct"} <= set(depends)
    # ipkg-build: the size of the uncompressed data tar.
    data_tar = gzip.decompress(ipk["outer_files"]["./data.tar.gz"])
    assert int(fields["Installed-Size"]) == len(data_tar)


def test_control_scripts_and_conffiles(ipk):
    members = {m.name: m for m in ipk["control"]}
    assert set(members) == {".", "./control", "./conffiles", "./postinst", "./prerm"}
    files = ipk["control_files"]
    assert files["./conffiles"] == b"/etc/config/sroamd\n"
    assert members["./control"].mode == members["./conffiles"].mode == 0o644
    for script, call in (("./postinst", b"default_postinst $0 $@"), ("./prerm", b"default_prerm $0 $@")):
        assert members[script].mode == 0o755
        assert files[script].startswith(b"#!/bin/sh\n")
        assert b". ${IPKG_INSTROOT}/lib/functions.sh\n" in files[script]
        assert files[script].rstrip().endswith(call)
    assert b'[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0' in files["./postinst"]


def test_reproducible(tmp_path, ipk, luci_ipk):
    again = build(tmp_path / "again")
    assert again.read_bytes() == ipk["raw"]
    assert (again.parent / luci_ipk["path"].name).read_bytes() == luci_ipk["raw"]


# --- luci-app-sroamd ----------------------------------------------------------------

LUCI_APP = ROOT / "openwrt" / "luci-app-sroamd"


def test_luci_app_ships_the_views_menu_and_acl_as_luci_mk_installs_them(luci_ipk):
    assert [m.name for m in luci_ipk["outer"]] == ["./debian-binary", "./data.tar.gz",
                                                    "./control.tar.gz"]
    expected = {}
    for top, prefix in (("htdocs", "./www/"), ("root", "./")):
        for path in (LUCI_APP / top).rglob("*"):
            if path.is_file():
                expected[prefix + path.relative_to(LUCI_APP / top).as_posix()] = path.read_bytes()
    assert luci_ipk["data_files"] == expected
    assert set(expected) == {
        "./www/luci-static/resources/view/sroamd/settings.js",
        "./www/luci-static/resources/view/sroamd/status.js",
        "./usr/share/luci/menu.d/luci-app-sroamd.json",
        "./usr/share/rpcd/acl.d/luci-app-sroamd.json"}
    for member in luci_ipk["outer"] + luci_ipk["data"] + luci_ipk["control"]:
        assert (member.uid, member.gid, member.mtime) == (0, 0, 1700000000), member.name
        assert member.mode == (0o755 if member.isdir() else 0o644) or member.name in (
            "./postinst", "./prerm"), member.name
    fields = control_fields(luci_ipk)
    assert fields["Package"] == "luci-app-sroamd" and fields["Version"] == VERSION
    assert fields["Depends"] == "libc, luci-base, sroamd"
    assert fields["Architecture"] == "all" and fields["Section"] == "luci"
    assert set(luci_ipk["control_files"]) == {"./control", "./postinst", "./prerm"}
    postinst = luci_ipk["control_files"]["./postinst"]
    assert b"default_postinst $0 $@" in postinst and b"killall -HUP rpcd" in postinst


# --- versions apk (OpenWrt 25.12) and opkg (24.10) both take --------------------------

# apk-tools' version grammar (src/version.c): digits separated by dots, an
# optional letter, _suffixes (alpha, beta, pre, rc, cvs, svn, git, hg, p)
# with optional digits, an optional ~hash, an optional -rN. OpenWrt makes a
# package's version PKG_VERSION-rPKG_RELEASE (include/package-defaults.mk).
APK_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*"
                         r"(~[0-9a-f]+)?(-r[0-9]+)?$")


def test_apk_version_grammar():
    for good in ("0.1.0-r1", "2.10.70-r1", "1.2.3a_rc2-r0", "6.5_p20250503-r0", "1~abc123-r2"):
        assert APK_VERSION.match(good), good
    # luci.mk's own default (git-YY.DDD.SSSSS-hash), a Debian-style or a
    # dashed release, a PEP 440 dev version: apk refuses each.
    for bad in ("git-24.123.45678-abcdef1-r1", "0.1.0-1", "0.1.0-rc1", "0.1.0.dev1-r1",
                "0.1.0-r1.1", "v0.1.0-r1", "0.1.0~rc1-r1"):
        assert not APK_VERSION.match(bad), bad


@pytest.mark.parametrize("recipe", ["openwrt/Makefile", "openwrt/python-construct/Makefile",
                                    "openwrt/luci-app-sroamd/Makefile"])
def test_recipe_versions_are_valid_for_apk_and_opkg(recipe):
    text = (ROOT / recipe).read_text()
    version = re.search(r"^PKG_VERSION:=(.*)$", text, re.M).group(1)
    if version.startswith("$(shell sed"):  # the version of sroamd/__init__.py
        version = sroamd.__version__
    release = re.search(r"^PKG_RELEASE:=(.*)$", text, re.M).group(1)
    # apk wants PKG_RELEASE a plain number (it becomes -rN).
    assert re.fullmatch(r"[0-9]+", release), release
    assert APK_VERSION.match(f"{version}-r{release}"), (version, release)


def imported_modules() -> set[str]:
    names = set()
    for path in (ROOT / "sroamd").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_depends_cover_what_sroamd_imports(ipk):
    depends = set(control_fields(ipk)["Depends"].split(", "))
    needed = {SPLIT_PACKAGES[m] for m in imported_modules() if m in SPLIT_PACKAGES}
    assert needed <= depends, f"add to DEPENDS in openwrt/Makefile: {sorted(needed - depends)}"
    third_party = {m for m in imported_modules()
                   if m not in sys.stdlib_module_names and m not in ("sroamd", "__future__")}
    assert third_party <= set(SPLIT_PACKAGES), f"no OpenWrt package known for {third_party}"


def test_recipe_agrees_with_the_ipk(ipk):
    """(The SDK-less ipk's fields come from the recipe.)"""
    recipe = (ROOT / "openwrt/Makefile").read_text()
    [depends] = re.findall(r"^\s*DEPENDS:=(.*)$", recipe, re.M)
    assert ["libc"] + [d.lstrip("+") for d in depends.split()] == \
        control_fields(ipk)["Depends"].split(", ")
    assert "/etc/config/sroamd" in re.search(r"define Package/sroamd/conffiles\n(.*?)endef",
                                             recipe, re.S).group(1)
    # The recipe's sed finds the version build_ipk.py and the package use.
    sed = subprocess.run(["sed", "-n", r's/^__version__ = "\(.*\)"$/\1/p',
                          str(ROOT / "sroamd/__init__.py")], capture_output=True, text=True)
    assert sed.stdout.strip() == sroamd.__version__
    assert "$$/\\1/p'" in recipe  # the same expression, '$' doubled for make


def test_construct_recipe_is_the_version_the_tests_use():
    recipe = (ROOT / "openwrt/python-construct/Makefile").read_text()
    version = re.search(r"^PKG_VERSION:=(\S+)$", recipe, re.M).group(1)
    assert version == "2.10.70"
    assert re.search(r"^PKG_HASH:=[0-9a-f]{64}$", recipe, re.M)
    assert re.search(r"^PYPI_NAME:=construct$", recipe, re.M)
    construct = pytest.importorskip("construct")
    assert construct.__version__ == version


def test_installed_tree_runs(tmp_path, ipk):
    root = tmp_path / "root"
    with tarfile.open(fileobj=io.BytesIO(ipk["outer_files"]["./data.tar.gz"])) as tar:
        tar.extractall(root, filter="tar")
    env = dict(os.environ, PYTHONPATH=str(root / SITE))
    done = subprocess.run([sys.executable, str(root / "usr/sbin/sroamd"), "--check",
                           "-c", str(root / "etc/config/sroamd")],
                          capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["enabled"] is False  # shipped disabled
    done = subprocess.run([sys.executable, str(root / "usr/sbin/sroamd"), "--version"],
                          capture_output=True, text=True, env=env, timeout=30)
    assert done.stdout.strip() == f"sroamd {sroamd.__version__}"
