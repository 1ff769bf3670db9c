"""Message stamps and receive times as integer nanoseconds, and stamps as text for messages and logs."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

# What rclpy hands a two-argument subscription callback besides the message: a dict with
# ``received_timestamp`` (ns) and more. Kilted's rclpy names it ``rclpy.subscription.MessageInfo``
# (a TypedDict); Jazzy's rclpy (7.1) passes the same dict but has no such name, so the node spells
# the type itself.
MessageInfo = Mapping[str, Any]


def stamp_ns(stamp: Any) -> int:
    """A ``builtin_interfaces/Time`` in nanoseconds (0: the sender left it unset)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def arrival_ns(info: MessageInfo) -> int:
    """When the middleware received a message (system clock, ns); now when the RMW does not say."""
    return int(info.get("received_timestamp") or 0) or time.time_ns()


def stamp_text(ns: int) -> str:
    """``sec.nanosec`` as ``ros2 topic echo`` shows a stamp."""
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


__all__ = ["MessageInfo", "arrival_ns", "stamp_ns", "stamp_text"]
