"""The latest frames per camera, bounded, with their headers; decoded lazily and at most once.

Plain Python (no rclpy): the node wraps each received message in a :class:`Frame` whose
``decode`` callable turns it into the H x W x 3 RGB array the model needs. Intake only stores
the frame (a zero-copy view or the compressed bytes as received); the first question that needs
the frame pays for the conversion, and later questions on the same frame reuse the result.

Per camera it also keeps the latest registered depth images (:class:`DepthImage`, as few as
colour frames) and the latest ``camera_info``. A depth image is paired with every stored colour
frame whose stamp is within the tolerance the caller gives (the nearest wins) when either of the
two arrives, and the frame keeps it: a question that waits in the queue while a 30 Hz depth
camera moves on still finds the depth of *its* frame, and the memory stays bounded (one depth
image per stored frame, plus the few unpaired ones).
"""

from __future__ import annotations

import enum
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_UIDS = itertools.count(1)

# A stamp this far behind the newest stored one is a clock reset, not a late frame.
CLOCK_RESET_NS = 1_000_000_000


class Added(enum.Enum):
    """What :meth:`FrameStore.add` did with a frame; true when the frame was kept."""

    STORED = "stored"
    REPLACED = "replaced"  # same stamp as a stored compressed frame: the raw one is kept
    DUPLICATE = "duplicate"  # same stamp as a stored frame that is at least as good: dropped
    OUT_OF_ORDER = "out_of_order"  # older than the newest stored frame (by < CLOCK_RESET_NS): dropped
    CLOCK_RESET = "clock_reset"  # older by >= CLOCK_RESET_NS: the camera's frames were dropped, this kept

    def __bool__(self) -> bool:
        return self in (Added.STORED, Added.REPLACED, Added.CLOCK_RESET)


@dataclass(eq=False)
class Frame:
    """One received frame: where it came from, its header, and how to get its RGB pixels."""

    camera: str
    stamp_ns: int  # header stamp in nanoseconds (0: the sender left it unset)
    frame_id: str
    decode: Callable[[], np.ndarray]  # -> H x W x 3 uint8 RGB; may raise ValueError
    source: str = "raw"  # "raw" or "compressed"
    encoding: str = ""  # raw encoding or compressed format, for messages and logs
    width: int = 0  # known for raw frames before decoding; 0 until decoded otherwise
    height: int = 0
    header: Any = None  # the message header, handed back with results as-is
    topic: str = ""  # the topic it came in on (for warnings)
    received: float = field(default_factory=time.monotonic)
    received_ns: int = 0  # receive time on the node's clock (age of unstamped frames)
    arrived_ns: int = 0  # when the middleware received it (system clock; 0: unknown)
    uid: int = field(default_factory=lambda: next(_UIDS))
    depth: DepthImage | None = field(default=None, repr=False)  # the registered depth paired with it
    _rgb: np.ndarray | None = field(default=None, repr=False)
    _error: str | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def decoded(self) -> bool:
        return self._rgb is not None

    @property
    def failed(self) -> bool:
        """True once decoding this frame failed (it never will succeed)."""
        return self._error is not None

    @property
    def error(self) -> str | None:
        """Why decoding this frame failed (None until it did)."""
        return self._error

    def rgb(self) -> np.ndarray:
        """The frame as H x W x 3 uint8 RGB, converted on first use and cached (thread-safe)."""
        with self._lock:
            if self._rgb is None:
                if self._error is not None:
                    raise ValueError(self._error)
                try:
                    image = self.decode()
                except ValueError as exc:
                    where = f" on {self.topic}" if self.topic else ""
                    self._error = (
                        f"frame from {self.camera!r}{where} ({self.source} {self.encoding}) cannot be decoded: {exc}"
                    )
                    raise ValueError(self._error) from exc
                self._rgb = image
                self.height, self.width = int(image.shape[0]), int(image.shape[1])
            return self._rgb


@dataclass(eq=False)
class DepthImage:
    """One registered depth image: a zero-copy view of its message (which it keeps alive) and the
    unit that turns its values into metres (0.001 for 16-bit millimetres, 1 for 32-bit metres)."""

    camera: str
    stamp_ns: int
    frame_id: str
    array: np.ndarray = field(repr=False)  # H x W, the message's own buffer
    unit: float = 1.0
    encoding: str = ""
    topic: str = ""
    received: float = field(default_factory=time.monotonic)

    @property
    def width(self) -> int:
        return int(self.array.shape[1])

    @property
    def height(self) -> int:
        return int(self.array.shape[0])


def _pair(frame: Frame, depth: DepthImage, tolerance_ns: int) -> None:
    """Give ``frame`` this depth when the stamps are within ``tolerance_ns`` and nearer than its own."""
    if not frame.stamp_ns or not depth.stamp_ns:
        return  # an unstamped frame or depth cannot be matched to anything
    offset = abs(frame.stamp_ns - depth.stamp_ns)
    if offset <= tolerance_ns and (frame.depth is None or offset < abs(frame.stamp_ns - frame.depth.stamp_ns)):
        frame.depth = depth


class FrameStore:
    """Bounded latest frames per camera (thread-safe).

    ``size`` frames are kept per camera, oldest dropped first. A frame with the same non-zero
    stamp as one already stored is the same image over another transport (raw and compressed):
    the raw one is kept, because it is cheaper to convert than to decode.
    """

    def __init__(self, cameras: list[str] | tuple[str, ...], size: int = 4):
        if size < 1:
            raise ValueError(f"frame store size must be >= 1, got {size}")
        if not cameras:
            raise ValueError("at least one camera is needed")
        self.size = int(size)
        self._frames: dict[str, deque[Frame]] = {c: deque(maxlen=self.size) for c in cameras}
        self._received: dict[str, int] = {c: 0 for c in cameras}
        self._depths: dict[str, deque[DepthImage]] = {c: deque(maxlen=self.size) for c in cameras}
        self._infos: dict[str, Any] = {}  # camera -> its latest camera_info message
        self._lock = threading.Lock()

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self._frames)

    def has_camera(self, camera: str) -> bool:
        return camera in self._frames

    def add(self, frame: Frame, pair_within_ns: int | None = None) -> Added:
        """Store ``frame`` unless it duplicates a stored one or arrived out of order (see the module doc);
        with ``pair_within_ns``, pair it with the nearest stored depth image within that many ns."""
        with self._lock:
            frames = self._frames.get(frame.camera)
            if frames is None:
                raise KeyError(f"unknown camera {frame.camera!r}; known: {list(self._frames)}")
            self._received[frame.camera] += 1
            if pair_within_ns is not None:
                for depth in self._depths[frame.camera]:
                    _pair(frame, depth, pair_within_ns)
            if frame.stamp_ns:
                for i, old in enumerate(frames):
                    if old.stamp_ns == frame.stamp_ns:
                        if old.source == "compressed" and frame.source == "raw":
                            if frame.depth is None:
                                frame.depth = old.depth
                            frames[i] = frame
                            return Added.REPLACED
                        return Added.DUPLICATE
                newest = max((f.stamp_ns for f in frames), default=0)
                if frame.stamp_ns < newest:
                    if newest - frame.stamp_ns < CLOCK_RESET_NS:
                        return Added.OUT_OF_ORDER
                    frames.clear()
                    frames.append(frame)
                    return Added.CLOCK_RESET
            frames.append(frame)
            return Added.STORED

    def newest_stamp(self, camera: str) -> int:
        """The newest non-zero stamp stored for ``camera`` (0 when none)."""
        with self._lock:
            return max((f.stamp_ns for f in self._frames.get(camera, ())), default=0)

    def received(self, camera: str) -> int:
        """How many frames ``camera`` delivered so far (duplicates included)."""
        with self._lock:
            return self._received.get(camera, 0)

    def latest(self, camera: str, usable_only: bool = True, arrived_by: int = 0) -> Frame | None:
        """The most recently received frame of ``camera`` (None before the first one); with
        ``usable_only`` the newest one that has not failed to decode.

        With ``arrived_by`` (a middleware receive time, ns): the newest such frame that had arrived by
        then, so that a question is bound to what the camera showed when the question arrived, however
        late its callback runs; when every stored frame arrived later (the one asked about was already
        dropped), the oldest stored one, the nearest in time."""
        with self._lock:
            frames = self._frames.get(camera)
            if frames is None:
                raise KeyError(f"unknown camera {camera!r}; known: {list(self._frames)}")
            usable = [f for f in frames if not (usable_only and f.failed)]
            if arrived_by:
                before = [f for f in usable if f.arrived_ns <= arrived_by]
                return before[-1] if before else (usable[0] if usable else None)
            return usable[-1] if usable else None

    def find(self, camera: str, stamp_ns: int, tolerance_ns: int = 0) -> Frame | None:
        """The stored frame whose stamp is nearest ``stamp_ns`` within ``tolerance_ns`` (None if none)."""
        with self._lock:
            frames = self._frames.get(camera)
            if frames is None:
                raise KeyError(f"unknown camera {camera!r}; known: {list(self._frames)}")
            best, best_d = None, None
            for f in frames:
                d = abs(f.stamp_ns - stamp_ns)
                if d <= tolerance_ns and (best_d is None or d < best_d):
                    best, best_d = f, d
            return best

    def add_depth(self, depth: DepthImage, pair_within_ns: int = 0) -> bool:
        """Keep ``depth`` (the oldest of the camera's depth images goes) and pair it with the stored
        frames within ``pair_within_ns`` of its stamp; True when it was paired with one."""
        with self._lock:
            depths = self._depths.get(depth.camera)
            if depths is None:
                raise KeyError(f"unknown camera {depth.camera!r}; known: {list(self._frames)}")
            depths.append(depth)
            for frame in self._frames[depth.camera]:
                _pair(frame, depth, pair_within_ns)
            return any(f.depth is depth for f in self._frames[depth.camera])

    def depth_for(self, frame: Frame, tolerance_ns: int) -> tuple[DepthImage | None, int | None]:
        """The depth image nearest ``frame``'s stamp within ``tolerance_ns`` (its own pairing or a
        stored one), and the offset in ns of the nearest depth image at all (None: none known)."""
        with self._lock:
            candidates = list(self._depths.get(frame.camera, ()))
        if frame.depth is not None:
            candidates.append(frame.depth)
        if not frame.stamp_ns:
            return None, None
        stamped = [d for d in candidates if d.stamp_ns]
        if not stamped:
            return None, None
        best = min(stamped, key=lambda d: abs(d.stamp_ns - frame.stamp_ns))
        offset = abs(best.stamp_ns - frame.stamp_ns)
        return (best if offset <= tolerance_ns else None), offset

    def latest_depth(self, camera: str) -> DepthImage | None:
        with self._lock:
            depths = self._depths.get(camera)
            return depths[-1] if depths else None

    def set_camera_info(self, camera: str, info: Any) -> None:
        """Keep ``info`` as the camera's calibration (the latest wins: intrinsics are taken as constant)."""
        with self._lock:
            if camera not in self._frames:
                raise KeyError(f"unknown camera {camera!r}; known: {list(self._frames)}")
            self._infos[camera] = info

    def camera_info(self, camera: str) -> Any:
        """The camera's latest camera_info message (None before the first one)."""
        with self._lock:
            return self._infos.get(camera)

    def stamps(self, camera: str) -> list[int]:
        """Stamps (ns) of the stored frames of ``camera``, oldest first."""
        with self._lock:
            return [f.stamp_ns for f in self._frames.get(camera, ())]

    def clear(self) -> None:
        with self._lock:
            for frames in self._frames.values():
                frames.clear()
            for depths in self._depths.values():
                depths.clear()
            self._infos.clear()


__all__ = ["Added", "CLOCK_RESET_NS", "DepthImage", "Frame", "FrameStore"]
