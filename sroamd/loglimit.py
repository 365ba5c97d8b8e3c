"""Logging that a flood of bad input cannot turn into a flood of log lines.

    limiter = LogLimiter(log, interval=60)
    limiter.log(logging.WARNING, "dropped %s", reason)

The first message is logged at once; later ones within `interval` seconds
are only counted, and the next message logged says how many were left out.
Each limiter has its own window, so one noisy kind of input does not hide
another.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

DEFAULT_INTERVAL = 60.0


class LogLimiter:
    def __init__(self, logger: logging.Logger, interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self.suppressed = 0
        self._next = None

    def log(self, level: int, message: str, *args, exc_info=None) -> bool:
        """Log now if the window allows it (True), else count it (False)."""
        now = self.clock()
        if self._next is not None and now < self._next:
            self.suppressed += 1
            return False
        self._next = now + self.interval
        if self.suppressed:
            message += " (%d similar messages not logged in the last %g s)"
            args = (*args, self.suppressed, self.interval)
            self.suppressed = 0
        self.logger.log(level, message, *args, exc_info=exc_info)
        return True
