# sroamd developer targets. The OpenWrt package recipes are in openwrt/.

PYTHON ?= python3
DIST ?= dist

.PHONY: all test ipk demo clean

all: test

test:
	$(PYTHON) -m pytest -q tests

# dist/sroamd_<version>_all.ipk, without the OpenWrt SDK (openwrt/README.md)
ipk:
	$(PYTHON) openwrt/build_ipk.py --outdir $(DIST)

# See it work (root): three APs in network namespaces, a client roaming.
demo:
	bash scripts/install-deps.sh
	$(PYTHON) demo/run.py

clean:
	rm -rf $(DIST) build .pytest_cache
	find sroamd tests openwrt -name __pycache__ -type d -prune -exec rm -rf {} +
