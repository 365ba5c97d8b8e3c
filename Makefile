# sroamd developer targets. The OpenWrt package recipes are in openwrt/.

PYTHON ?= python3
DIST ?= dist

.PHONY: all deps test test-py313 ipk demo clean

all: test

# What the tests, the demo and the benchmarks need (Debian packages, Python
# packages): installed when missing, so `make test` works on a fresh machine.
deps:
	bash scripts/install-deps.sh

# The tests import sroamd from this checkout (no install needed).
test: deps
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON) -m pytest -q tests

# The whole suite again under Python 3.13 (OpenWrt 25.12's) with pyroute2
# 0.7.9 (25.12's), in a private venv; anything 3.13 deprecates is an error,
# in the tests and in every sroamd they start.
PY313_VENV ?= build/py313
test-py313: deps
	bash scripts/py313-venv.sh $(PY313_VENV)
	PYTHONPATH=$(CURDIR) PYTHONWARNINGS=error::DeprecationWarning,error::PendingDeprecationWarning \
		$(PY313_VENV)/bin/python -m pytest -q -p no:cacheprovider tests

# dist/sroamd_<version>_all.ipk, without the OpenWrt SDK (openwrt/README.md)
ipk:
	$(PYTHON) openwrt/build_ipk.py --outdir $(DIST)

# See it work (root): three APs in network namespaces, a client roaming.
demo: deps
	$(PYTHON) demo/run.py

clean:
	rm -rf $(DIST) build .pytest_cache
	find sroamd tests openwrt -name __pycache__ -type d -prune -exec rm -rf {} +
