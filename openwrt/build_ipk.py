#!/usr/bin/env python3
"""Build sroamd_<version>_all.ipk and luci-app-sroamd_<version>_all.ipk without the OpenWrt SDK.

The package is what OpenWrt's scripts/ipkg-build makes: a gzip'd tar (GNU
format, numeric owners 0:0, names sorted, one fixed mtime) holding
./debian-binary ("2.0"), ./data.tar.gz and ./control.tar.gz, each made the
same way. control.tar.gz has control, conffiles and the postinst/prerm that
OpenWrt's package-pack.mk writes for every package (default_postinst
enables and starts the init script, default_prerm stops and disables it).

Package fields (release, license, maintainer, section, title, depends,
description) come from openwrt/Makefile (luci-app-sroamd's from
openwrt/luci-app-sroamd/Makefile, as luci.mk makes them), the version from
sroamd/__init__.py. Unlike the SDK's package, which ships bytecode, this
one ships the Python sources: OpenWrt's Python runs them as they are.

  python3 openwrt/build_ipk.py [--outdir dist] [--python-version 3.11]

(--python-version 3.13 for OpenWrt 25.12's site-packages; 25.12 installs
.apk packages, not these: build them with the SDK, see README.md.)

The mtime is $SOURCE_DATE_EPOCH, else the time of the last git commit,
so building the same tree twice gives the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "openwrt" / "Makefile"
LAUNCHER = ROOT / "openwrt" / "files" / "sroamd.launcher"
INITSCRIPT = ROOT / "files" / "etc" / "init.d" / "sroamd"
UCI_CONFIG = ROOT / "files" / "etc" / "config" / "sroamd"
PACKAGE_DIR = ROOT / "sroamd"
CONFFILES = ["/etc/config/sroamd"]
PYTHON_VERSION = "3.11"  # OpenWrt 23.05 and 24.10
LUCI_APP = ROOT / "openwrt" / "luci-app-sroamd"
LUCI_RECIPE = LUCI_APP / "Makefile"
# After installing a LuCI app: drop LuCI's menu and module caches and make
# rpcd reread its ACLs, so the new pages and grants work without a reboot.
LUCI_POSTINST_EXTRA = """[ -n "${IPKG_INSTROOT}" ] || {
	rm -f /tmp/luci-indexcache* 2>/dev/null
	rm -rf /tmp/luci-modulecache/ 2>/dev/null
	killall -HUP rpcd 2>/dev/null
	exit 0
}
"""

# What OpenWrt's include/package-pack.mk writes into every package.
POSTINST = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
"""
PRERM = """#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
"""


@dataclass
class Recipe:
    """The fields of openwrt/Makefile that go into the control file."""
    name: str
    release: str
    license: str
    maintainer: str
    section: str
    title: str
    depends: list[str]
    description: str
    url: str = ""
    extra: dict = field(default_factory=dict)


def _assignments(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([A-Z_][A-Z0-9_]*)\s*:?=\s*(.*?)\s*$", line)
        if m:
            out.setdefault(m.group(1), m.group(2))
    return out


def _define(text: str, name: str) -> str:
    m = re.search(rf"^define {re.escape(name)}\n(.*?)^endef$", text, re.S | re.M)
    if not m:
        raise SystemExit(f"build_ipk: no 'define {name}' in {RECIPE}")
    return m.group(1)


def read_recipe(path: Path = RECIPE) -> Recipe:
    text = path.read_text()
    top = _assignments(text)
    package = _assignments(_define(text, f"Package/{top['PKG_NAME']}"))
    depends = []
    for dep in package.get("DEPENDS", "").split():
        if dep.startswith("@") or ":" in dep:
            raise SystemExit(f"build_ipk: conditional dependency {dep!r} not supported")
        depends.append(dep.lstrip("+"))
    description = "\n".join(line.strip() for line in
                            _define(text, f"Package/{top['PKG_NAME']}/description").splitlines())
    return Recipe(name=top["PKG_NAME"], release=top["PKG_RELEASE"],
                  license=top.get("PKG_LICENSE", ""), maintainer=top.get("PKG_MAINTAINER", ""),
                  section=package.get("SECTION", ""), title=package.get("TITLE", ""),
                  url=package.get("URL", ""), depends=depends, description=description.strip())


def read_luci_recipe(path: Path = LUCI_RECIPE) -> Recipe:
    """luci-app-sroamd's fields, as luci.mk's Package definition makes them."""
    top = _assignments(path.read_text())
    depends = [d.lstrip("+") for d in top.get("LUCI_DEPENDS", "").split()]
    return Recipe(name=path.parent.name, release=top["PKG_RELEASE"],
                  license=top.get("PKG_LICENSE", ""), maintainer=top.get("PKG_MAINTAINER", ""),
                  section="luci", title=top["LUCI_TITLE"], depends=depends,
                  description=top.get("LUCI_DESCRIPTION", top["LUCI_TITLE"]))


def read_version(package_dir: Path = PACKAGE_DIR) -> str:
    m = re.search(r'^__version__ = "([^"]+)"$', (package_dir / "__init__.py").read_text(), re.M)
    if not m:
        raise SystemExit("build_ipk: no __version__ in sroamd/__init__.py")
    return m.group(1)


def package_version(recipe: Recipe, version: str) -> str:
    # include/package-defaults.mk: VERSION = $(PKG_VERSION)-r$(PKG_RELEASE)
    return f"{version}-r{recipe.release}" if recipe.release else version


def source_date_epoch() -> int:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return int(out)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


class Tree:
    """Files and directories of an archive, by path ('./etc/config/sroamd')."""

    def __init__(self):
        self.entries: dict[str, tuple[int, bytes | None]] = {"./": (0o755, None)}

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            self.entries.setdefault("./" + "/".join(parts[:i]) + "/", (mode, None))

    def add_file(self, path: str, data: bytes, mode: int) -> None:
        parent = os.path.dirname(path.strip("/"))
        if parent:
            self.add_dir(parent)
        self.entries["./" + path.strip("/")] = (mode, data)

    def tar_gz(self, mtime: int) -> bytes:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
            # As GNU tar --sort=name: each directory's entries, recursively.
            for name in sorted(self.entries, key=lambda n: n.rstrip("/").split("/")):
                mode, data = self.entries[name]
                info = tarfile.TarInfo(name.rstrip("/") if name != "./" else ".")
                info.mode = mode
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = mtime
                if data is None:
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return raw.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as f:
        f.write(data)
    return out.getvalue()


def python_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The package's modules: every .py under sroamd/, no caches."""
    return sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts)


def data_tree(python_version: str = PYTHON_VERSION) -> Tree:
    tree = Tree()
    site = f"usr/lib/python{python_version}/site-packages"
    for path in python_files():
        tree.add_file(f"{site}/{path.relative_to(ROOT).as_posix()}", path.read_bytes(), 0o644)
    tree.add_file("usr/sbin/sroamd", LAUNCHER.read_bytes(), 0o755)
    tree.add_file("etc/init.d/sroamd", INITSCRIPT.read_bytes(), 0o755)
    # INSTALL_CONF in OpenWrt's rules.mk installs config files 0600.
    tree.add_file("etc/config/sroamd", UCI_CONFIG.read_bytes(), 0o600)
    return tree


def luci_data_tree(app: Path = LUCI_APP) -> Tree:
    """luci.mk's install: htdocs/ into /www, root/ into /."""
    tree = Tree()
    for top, prefix in (("htdocs", "www/"), ("root", "")):
        for path in sorted((app / top).rglob("*")):
            if path.is_file():
                tree.add_file(prefix + path.relative_to(app / top).as_posix(),
                              path.read_bytes(), 0o644)
    return tree


def control_text(recipe: Recipe, version: str, installed_size: int) -> str:
    fields = [
        ("Package", recipe.name),
        ("Version", version),
        ("Depends", ", ".join(["libc", *recipe.depends])),
        ("SourceName", recipe.name),
        ("License", recipe.license),
        ("Section", recipe.section),
        ("URL", recipe.url),
        ("Maintainer", recipe.maintainer),
        ("Architecture", "all"),
        ("Installed-Size", str(installed_size)),
    ]
    lines = [f"{k}: {v}" for k, v in fields if v]
    description = recipe.description.splitlines() or [recipe.title]
    lines.append(f"Description: {description[0]}")
    lines += [f" {line}" if line else " ." for line in description[1:]]
    return "\n".join(lines) + "\n"


def write_ipk(outdir: Path, recipe: Recipe, version: str, data: Tree, conffiles: list[str],
              postinst: str, mtime: int) -> Path:
    data_tar = data.tar_gz(mtime)
    control = Tree()
    # ipkg-build: Installed-Size is the size of the uncompressed data tar.
    control.add_file("control", control_text(recipe, version, len(data_tar)).encode(), 0o644)
    if conffiles:
        control.add_file("conffiles", "".join(f"{c}\n" for c in conffiles).encode(), 0o644)
    control.add_file("postinst", postinst.encode(), 0o755)
    control.add_file("prerm", PRERM.encode(), 0o755)

    members = [
        ("./debian-binary", b"2.0\n"),
        ("./data.tar.gz", gzip_bytes(data_tar)),
        ("./control.tar.gz", gzip_bytes(control.tar_gz(mtime))),
    ]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, blob in members:  # in ipkg-build's order
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(blob), 0o644, mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(blob))

    outdir.mkdir(parents=True, exist_ok=True)
    target = outdir / f"{recipe.name}_{version}_all.ipk"
    tmp = target.with_suffix(".ipk.tmp")
    tmp.write_bytes(gzip_bytes(raw.getvalue()))
    tmp.replace(target)
    return target


def build(outdir: Path, python_version: str = PYTHON_VERSION, mtime: int | None = None) -> Path:
    recipe = read_recipe()
    version = package_version(recipe, read_version())
    mtime = source_date_epoch() if mtime is None else mtime
    return write_ipk(outdir, recipe, version, data_tree(python_version), CONFFILES, POSTINST, mtime)


def build_luci(outdir: Path, mtime: int | None = None) -> Path:
    recipe = read_luci_recipe()
    version = package_version(recipe, read_version())
    mtime = source_date_epoch() if mtime is None else mtime
    return write_ipk(outdir, recipe, version, luci_data_tree(), [],
                     POSTINST + LUCI_POSTINST_EXTRA, mtime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outdir", default=str(ROOT / "dist"), help="where to write the .ipk")
    parser.add_argument("--python-version", default=PYTHON_VERSION,
                        help="the target's Python (site-packages directory), default %(default)s")
    args = parser.parse_args(argv)
    print(build(Path(args.outdir), args.python_version))
    print(build_luci(Path(args.outdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
