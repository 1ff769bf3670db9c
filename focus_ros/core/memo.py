"""Per-frame memo: results that depend only on the frame (and the model and search settings), kept
so that a second question about the same frame does not pay for them again.

What is kept (by :class:`~focus_ros.core.pipeline.FocusPipeline`): a target's relevance map per
(frame, phrase, settings) and an existence confidence per (frame, crop box, phrase, settings).
Each frame's entries live as long as that frame's cached prefix (the same ``frame_key``): the memo
forgets a frame when the prefix cache does, and it is bounded in bytes overall, dropping the least
recently used entries first. Plain Python: values are numpy arrays or floats, sized by the caller.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np

# A float or a small tuple still costs a dict entry and its key: count this much per entry.
ENTRY_OVERHEAD_BYTES = 256


def nbytes_of(value: Any) -> int:
    """What ``value`` costs in the memo: an array's bytes plus the entry overhead."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes) + ENTRY_OVERHEAD_BYTES
    if isinstance(value, tuple):
        return sum(nbytes_of(v) for v in value) + ENTRY_OVERHEAD_BYTES
    return ENTRY_OVERHEAD_BYTES


class FrameMemo:
    """LRU memo keyed by (frame_key, kind, key), bounded by ``max_bytes`` (0 disables it)."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024):
        self.max_bytes = max(0, int(max_bytes))
        self._entries: OrderedDict[tuple[Hashable, str, Hashable], tuple[Any, int]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, frame_key: Hashable | None, kind: str, key: Hashable) -> Any | None:
        """The value stored for this frame, kind and key, or None (also when ``frame_key`` is None:
        an anonymous frame is never memoised)."""
        if frame_key is None:
            return None
        full = (frame_key, kind, key)
        entry = self._entries.get(full)
        if entry is None:
            return None
        self._entries.move_to_end(full)
        return entry[0]

    def put(self, frame_key: Hashable | None, kind: str, key: Hashable, value: Any) -> None:
        """Store ``value``; least recently used entries go first when the memo is over its bound."""
        if frame_key is None or self.max_bytes == 0:
            return
        size = nbytes_of(value)
        if size > self.max_bytes:
            return
        full = (frame_key, kind, key)
        old = self._entries.pop(full, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[full] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped

    def keep_frames(self, frame_keys: list[Hashable]) -> None:
        """Forget every frame not in ``frame_keys`` (those whose prefix left the prefix cache)."""
        keep = set(frame_keys)
        for full in [k for k in self._entries if k[0] not in keep]:
            self.bytes -= self._entries.pop(full)[1]

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0


__all__ = ["ENTRY_OVERHEAD_BYTES", "FrameMemo", "nbytes_of"]
