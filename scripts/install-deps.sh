#!/usr/bin/env bash
# Installs what sroamd's tests, demo and benchmarks need on a Debian-like
# machine (as root): the real network components and the Python packages.
# Skips apt when every program is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: tests/test_luci_app.py drives the LuCI views in it (headless).
programs="ip ping babeld hostapd hostapd_cli wpa_supplicant wpa_cli busybox dhclient dhcpcd rdisc6 perfdhcp shellcheck make chromium"
missing=""
for p in $programs; do
    command -v "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing Debian packages (missing:$missing)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends \
        make iproute2 iputils-ping procps \
        babeld hostapd wpasupplicant busybox isc-dhcp-client dhcpcd-base ndisc6 kea-admin \
        shellcheck chromium
fi

# The Python that will run the tests ($PYTHON, as `make test PYTHON=...` sets it).
python=${PYTHON:-python3}
if ! "$python" -c 'import pyroute2, construct, pytest' 2>/dev/null; then
    "$python" -m pip install -q --disable-pip-version-check -e '.[test]'
fi
