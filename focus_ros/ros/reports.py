"""The node's counters and its warnings, throttled per topic and problem; safe from any thread.

Intake, the request handlers and the worker all count what happened (``stats``, read by tests and
benchmarks) and report problems here, so that a camera sending a broken frame 30 times a second,
or a flood of questions answered BUSY, costs one log line per :data:`WARN_THROTTLE_S` and not one
per message.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

# One warning per topic and problem at most this often; the next one says how many were suppressed.
WARN_THROTTLE_S = 5.0
# Questions are quoted in logs up to this many characters.
LOG_QUESTION_CHARS = 120


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def quote(text: str) -> str:
    """``text`` for a log line: repr (escapes control characters), cut to LOG_QUESTION_CHARS."""
    if len(text) <= LOG_QUESTION_CHARS:
        return repr(text)
    return f"{text[:LOG_QUESTION_CHARS]!r}... ({len(text)} characters)"


class Reports:
    """Counters and throttled log lines of one node."""

    def __init__(self, logger: Any):
        self.logger = logger
        self.stats: Counter[str] = Counter()  # updated through count (several threads write it)
        self._stats_lock = threading.Lock()
        self._throttle: dict[tuple[str, str], tuple[float, int]] = {}
        self._throttle_lock = threading.Lock()

    def count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def report(self, topic: str, kind: str, text: str, info: bool = False) -> None:
        """Log ``topic: text`` at most once per WARN_THROTTLE_S for this topic and problem ``kind``."""
        now = time.monotonic()
        with self._throttle_lock:
            last, suppressed = self._throttle.get((topic, kind), (None, 0))
            if last is not None and now - last < WARN_THROTTLE_S:
                self._throttle[(topic, kind)] = (last, suppressed + 1)
                return
            self._throttle[(topic, kind)] = (now, 0)
        more = f" ({suppressed} more like this in the last {now - last:.0f} s)" if suppressed and last else ""
        # Two call sites: rclpy refuses one call site logging at two severities.
        if info:
            self.logger.info(f"{topic}: {text}{more}")
        else:
            self.logger.warning(f"{topic}: {text}{more}")


__all__ = ["LOG_QUESTION_CHARS", "WARN_THROTTLE_S", "Reports", "first_line", "quote"]
