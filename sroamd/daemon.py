"""The composition root: builds the parts from the Config and runs them."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from sroamd.config import Config
from sroamd.flood import Flooder
from sroamd.store import Store
from sroamd.dump import format_dump

log = logging.getLogger("sroamd")

EXPIRY_TICK = 1.0  # seconds between expiry sweeps (a heap peek when idle)


def setup_logging(debug: int) -> None:
    # procd sends stderr to syslog (logread); no timestamps of our own there.
    level = logging.WARNING if debug <= 0 else logging.INFO if debug == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("sroamd: %(levelname)s: %(message)s"))
    root = logging.getLogger("sroamd")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class Daemon:
    def __init__(self, config: Config):
        self.config = config
        self.node_id = os.urandom(8)
        self.store = Store()
        self.flooder = Flooder(self.store, config.port, config.peers)
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(signo, self._stopping.set)
        loop.add_signal_handler(signal.SIGUSR1, self.dump)
        log.warning("starting, node id %s", self.node_id.hex())
        await self.flooder.start()
        expiry = loop.create_task(self._expire_loop())
        try:
            await self._stopping.wait()
        finally:
            log.warning("shutting down")
            expiry.cancel()
            await self.flooder.stop()

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_TICK)
            self.store.expire()

    def dump(self) -> None:
        """SIGUSR1: the store, clients and peers to the log, as upstream does."""
        for line in format_dump(self):
            log.warning("%s", line)


def run(config: Config) -> int:
    setup_logging(config.debug)
    try:
        asyncio.run(Daemon(config).run())
    except OSError as e:
        log.error("%s", e)
        return 1
    return 0
