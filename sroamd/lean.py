"""Keep OpenSSL out of the daemon: about 7 MB resident on a 64 MB access point.

sroamd uses neither TLS nor OpenSSL's hashes, but three imports would load
libssl and libcrypto anyway:
  * asyncio imports ssl to offer TLS: it works without (ssl = None);
  * construct imports hashlib, whose _hashlib links libcrypto: hashlib falls
    back to its built-in hashes without it;
  * pyroute2 imports ssl at module level for a probe we never run: it gets a
    lazy module that loads the real ssl only if an attribute is ever used.
Call keep_openssl_out() before anything imports asyncio, construct or pyroute2.
"""

import importlib.util
import sys


def keep_openssl_out() -> None:
    if "asyncio" in sys.modules or "ssl" in sys.modules:
        return  # too late to matter, and asyncio already holds the real ssl
    sys.modules.setdefault("_hashlib", None)
    sys.modules["ssl"] = None  # seen by asyncio as "no TLS support"
    import asyncio  # noqa: F401  (binds ssl = None inside asyncio)
    del sys.modules["ssl"]
    spec = importlib.util.find_spec("ssl")
    if spec is None or spec.loader is None:
        return
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ssl"] = module
    spec.loader.exec_module(module)
