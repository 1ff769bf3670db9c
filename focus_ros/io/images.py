"""``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` -> numpy, without rclpy or message classes.

Intake must cost almost nothing per frame, so a raw image is first turned into a *zero-copy view*
of the received buffer (:func:`image_view`: shape and step are validated, nothing is copied), and
converted to the H x W x 3 uint8 RGB array the model wants only when a question needs that frame
(:func:`view_to_rgb`). Compressed images are kept as received and decoded on demand
(:func:`compressed_to_rgb`).

When ROS 2's ``cv_bridge`` is importable it does the conversion to RGB (:func:`image_to_rgb`,
:func:`compressed_to_rgb`); otherwise, or when it refuses an encoding, this module's own numpy /
OpenCV conversion is used. Both paths raise :class:`ImageError` (a :class:`ValueError`) with a
clear message for a malformed message (step too small, data too short, unknown encoding,
undecodable bytes); its ``kind`` says which problem it was, so a node can throttle its warnings
per topic and problem.

Size limits are checked from the message's header fields alone (:func:`check_frame_size`), and a
compressed frame's size is read from its JPEG / PNG header without decoding it
(:func:`compressed_size`): a 16384 x 16384 frame is refused before anything of its size is
allocated, whether it arrives raw (the message itself is all the memory it takes) or as a
288 KB PNG that would decode to 805 MB. The message's byte count is checked too
(:func:`check_frame_bytes`), and the JPEG header walk is bounded (:data:`JPEG_HEADER_LIMIT`) and
skips fill bytes in native code, so a small valid header followed by hundreds of MB costs
neither memory nor time. Nothing here copies the message's data to probe it.

Every function here works on any object with the message's fields (an rclpy message, a rosbags
one, a test double). Building messages from numpy needs the message classes and lives in
:mod:`focus_ros.ros.image_msgs`.
"""

from __future__ import annotations

import array
import io
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

# encoding -> (channels, bytes per channel, what view_to_rgb does with it)
# Names follow sensor_msgs/image_encodings.hpp; the OpenCV "8UC3"-style names are read the way
# cv_bridge reads them (3 channels = BGR, 4 = BGRA).
_ENCODINGS: dict[str, tuple[int, int, str]] = {
    "rgb8": (3, 1, "rgb"),
    "bgr8": (3, 1, "bgr"),
    "rgba8": (4, 1, "rgba"),
    "bgra8": (4, 1, "bgra"),
    "mono8": (1, 1, "mono"),
    "8UC1": (1, 1, "mono"),
    "8UC3": (3, 1, "bgr"),
    "8UC4": (4, 1, "bgra"),
    "rgb16": (3, 2, "rgb"),
    "bgr16": (3, 2, "bgr"),
    "rgba16": (4, 2, "rgba"),
    "bgra16": (4, 2, "bgra"),
    "mono16": (1, 2, "mono"),
    "16UC1": (1, 2, "mono"),
    "16UC3": (3, 2, "bgr"),
    "16UC4": (4, 2, "bgra"),
    # 4:2:2 packed YUV: ROS "yuv422" is UYVY, "yuv422_yuy2" is YUYV (image_encodings.hpp).
    "yuv422": (2, 1, "uyvy"),
    "uyvy": (2, 1, "uyvy"),
    "UYVY": (2, 1, "uyvy"),
    "yuv422_yuy2": (2, 1, "yuyv"),
    "yuyv": (2, 1, "yuyv"),
    "YUYV": (2, 1, "yuyv"),
    "yuy2": (2, 1, "yuyv"),
    # 4:2:0 semi-planar: a full-resolution Y plane, then interleaved chroma at half resolution.
    "nv12": (1, 1, "nv12"),
    "nv21": (1, 1, "nv21"),
    # Bayer mosaics (8 bit), demosaiced by OpenCV with the pattern names cv_bridge uses.
    "bayer_rggb8": (1, 1, "bayer_rggb"),
    "bayer_bggr8": (1, 1, "bayer_bggr"),
    "bayer_gbrg8": (1, 1, "bayer_gbrg"),
    "bayer_grbg8": (1, 1, "bayer_grbg"),
}

# OpenCV names a Bayer pattern after the second row's second and third pixels, so ROS's
# "rggb" is OpenCV's "BG" (the same table as cv_bridge's getConversionCode).
_BAYER_TO_RGB = {
    "bayer_rggb": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg": cv2.COLOR_BayerGB2RGB,
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)

try:  # ROS 2's cv_bridge, when a full ROS 2 install provides it (not on PyPI)
    from cv_bridge import CvBridge as _CvBridge  # type: ignore[import-not-found]

    _BRIDGE: Any = _CvBridge()
except Exception:  # ImportError, or a broken/ROS 1 build that cannot even start
    _BRIDGE = None


def conversion_backend() -> str:
    """``"cv_bridge"`` when ROS 2's cv_bridge converts images, else ``"numpy/opencv"``."""
    return "cv_bridge" if _BRIDGE is not None else "numpy/opencv"


# The smallest frame the pipeline answers about (core/pipeline.py refuses smaller ones).
MIN_IMAGE_SIDE = 2


class ImageError(ValueError):
    """A frame that cannot be used; ``kind`` names the problem (for per-problem throttled warnings).

    Kinds: ``zero_size``, ``too_small``, ``too_large``, ``too_many_bytes`` (the message's data is
    above ``max_frame_bytes``), ``odd_size`` (a YUV layout needs even sides), ``encoding`` (unknown
    encoding, depth image), ``step`` (row stride), ``data`` (too short, empty), ``decode`` (bytes
    that are not an image or do not decode); the node's intake adds ``stamp_future`` (a stamp
    ahead of its clock).
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def encoding_layout(encoding: str) -> tuple[int, int, str]:
    """(channels, bytes per channel, pixel layout) of ``encoding``; ImageError when it is not supported."""
    spec = _ENCODINGS.get(encoding) or _ENCODINGS.get(encoding.lower())
    if spec is None:
        raise ImageError(
            "encoding", f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    return spec


def check_frame_size(width: int, height: int, max_side: int = 0) -> None:
    """Raise :class:`ImageError` when a ``width x height`` frame cannot be used; ``max_side`` 0: no upper limit.

    Checked on the header fields before any pixel is touched, so an oversized frame costs nothing
    beyond the message itself."""
    if width <= 0 or height <= 0:
        raise ImageError("zero_size", f"image has zero size ({width}x{height})")
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ImageError(
            "too_small",
            f"image is too small ({width}x{height}); at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} px are needed",
        )
    if max_side and max(width, height) > max_side:
        raise ImageError(
            "too_large",
            f"image is too large ({width}x{height}); the longer side may be at most "
            f"{max_side} px (parameter max_image_side)",
        )


def data_size(data: Any) -> int:
    """Bytes in a message's ``data`` (array.array, bytes, memoryview, numpy array, list), nothing copied."""
    if isinstance(data, np.ndarray):
        return int(data.nbytes)
    try:
        return memoryview(data).nbytes
    except TypeError:  # a Python list of ints: one byte each
        return len(data)


def check_frame_bytes(data: Any, max_bytes: int) -> None:
    """Raise :class:`ImageError` (``too_many_bytes``) when ``data`` holds more than ``max_bytes``.

    The first check of every frame: it reads the length alone, so an oversized message is dropped
    before any probe or view of its bytes (and never stored, ``frame_store_size`` times over)."""
    size = data_size(data)
    if max_bytes and size > max_bytes:
        raise ImageError(
            "too_many_bytes",
            f"message is too large: {size} bytes ({size / 2**20:.1f} MiB) of data, at most {max_bytes} "
            f"({max_bytes / 2**20:.1f} MiB, parameter max_frame_bytes)",
        )


@dataclass(frozen=True)
class ImageView:
    """A validated zero-copy view of a raw ``sensor_msgs/Image`` buffer.

    ``array`` is ``rows x width x channels`` (``rows x width`` for one channel) of uint8 or
    uint16 in the message's layout; for nv12/nv21 it is the ``height * 3 / 2`` rows of both planes.
    It shares memory with the message: keep the message alive as long as the view.
    """

    array: np.ndarray
    encoding: str
    width: int
    height: int

    @property
    def kind(self) -> str:
        return encoding_layout(self.encoding)[2]


def _as_buffer(data: Any) -> np.ndarray:
    """uint8 view of a message's ``data`` (array.array, bytes, memoryview, list) without copying."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8)  # a Python list (rare): this one copies


def image_view(msg: Any) -> ImageView:
    """Validate a raw ``sensor_msgs/Image`` and return a zero-copy view of its pixels.

    Raises ImageError for an unknown encoding, zero size, a ``step`` smaller than one row, a
    ``step`` that is not a whole number of 16-bit words, or ``data`` shorter than ``step * height``.
    """
    encoding = str(msg.encoding)
    channels, depth, kind = encoding_layout(encoding)
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    if width <= 0 or height <= 0:
        raise ImageError("zero_size", f"image has zero size ({width}x{height})")
    if kind in ("uyvy", "yuyv") and width % 2:
        raise ImageError("odd_size", f"{encoding} needs an even width, got {width}")
    rows = height
    if kind in ("nv12", "nv21"):
        if width % 2 or height % 2:
            raise ImageError("odd_size", f"{encoding} needs an even width and height, got {width}x{height}")
        rows = height * 3 // 2
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageError(
            "step",
            f"step {step} is smaller than one row of {width} px x {channels * depth} bytes "
            f"({row_bytes}) for encoding {encoding}",
        )
    if depth == 2 and step % 2:
        raise ImageError("step", f"step {step} is odd; a 16-bit encoding ({encoding}) needs whole 2-byte words")
    buf = _as_buffer(msg.data)
    need = step * rows
    if buf.size < need:
        raise ImageError(
            "data",
            f"image data is too short: {buf.size} bytes, expected step x rows = "
            f"{step} x {rows} = {need} ({width}x{height} {encoding})",
        )
    view = buf[:need].reshape(rows, step)
    if depth == 2:
        dtype = np.dtype(">u2" if int(getattr(msg, "is_bigendian", 0)) else "<u2")
        view = view.view(dtype)
        row_items = width * channels
        view = view[:, :row_items]
    else:
        view = view[:, :row_bytes]
    if channels > 1 and kind not in ("nv12", "nv21"):
        view = view.reshape(rows, width, channels)
    return ImageView(view, encoding, width, height)


def view_to_rgb(view: ImageView) -> np.ndarray:
    """H x W x 3 uint8 RGB from a view; no copy at all when the frame is packed rgb8."""
    arr, kind = view.array, view.kind
    if arr.dtype != np.uint8:
        arr = (arr >> 8).astype(np.uint8)  # 16 bit -> the high byte (as cv_bridge does)
    if kind == "rgb":
        return np.ascontiguousarray(arr)
    if kind == "bgr":
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if kind == "rgba":
        return cv2.cvtColor(arr, cv2.COLOR_RGBA2RGB)
    if kind == "bgra":
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    if kind == "mono":
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    if kind == "uyvy":
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_YUV2RGB_UYVY)
    if kind == "yuyv":
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_YUV2RGB_YUYV)
    if kind == "nv12":
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_YUV2RGB_NV12)
    if kind == "nv21":
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_YUV2RGB_NV21)
    if kind in _BAYER_TO_RGB:
        return cv2.cvtColor(np.ascontiguousarray(arr), _BAYER_TO_RGB[kind])
    raise ValueError(f"no conversion to RGB for encoding {view.encoding!r}")  # pragma: no cover


def image_to_rgb(msg: Any, view: ImageView | None = None) -> np.ndarray:
    """H x W x 3 uint8 RGB of a raw ``sensor_msgs/Image`` (cv_bridge when available)."""
    if view is None:
        view = image_view(msg)  # validates even when cv_bridge converts
    if _BRIDGE is not None:
        try:
            return np.ascontiguousarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
        except Exception:  # an encoding cv_bridge refuses: use our own conversion
            pass
    try:
        return view_to_rgb(view)
    except cv2.error as exc:  # callers handle bad frames as ValueError, not OpenCV's own type
        raise ImageError(
            "decode",
            f"OpenCV cannot convert this {view.width}x{view.height} {view.encoding} "
            f"frame: {str(exc).strip().splitlines()[-1]}",
        ) from exc


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """H x W x 3 uint8 RGB of a ``sensor_msgs/CompressedImage`` (jpeg, png, anything OpenCV reads)."""
    fmt, buf = _compressed_buffer(msg)
    if _BRIDGE is not None:
        try:
            return np.ascontiguousarray(_BRIDGE.compressed_imgmsg_to_cv2(msg, desired_encoding="rgb8"))
        except Exception:
            pass
    flag = getattr(cv2, "IMREAD_COLOR_RGB", None)
    try:
        if flag is not None:
            out = cv2.imdecode(buf, flag)
        else:  # OpenCV < 4.10
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            out = None if out is None else cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    except cv2.error as exc:  # e.g. a header OpenCV refuses outright
        raise ImageError(
            "decode",
            f"cannot decode compressed image ({fmt or 'no format'}, {buf.size} bytes): "
            f"{str(exc).strip().splitlines()[-1]}",
        ) from exc
    if out is None:
        raise ImageError("decode", f"cannot decode compressed image ({fmt or 'no format'}, {buf.size} bytes)")
    if out.dtype != np.uint8:
        out = (out >> 8).astype(np.uint8)
    return out


def _compressed_buffer(msg: Any) -> tuple[str, np.ndarray]:
    fmt = str(getattr(msg, "format", ""))
    if "compresseddepth" in fmt.lower():
        raise ImageError(
            "encoding", f"compressed depth images ({fmt!r}) are not camera frames; subscribe to a colour stream"
        )
    buf = _as_buffer(msg.data)
    if buf.size == 0:
        raise ImageError("data", f"compressed image ({fmt or 'no format'}) has no data")
    return fmt, buf


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (they carry the size); C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# The frame header (SOF) must start within this many bytes: a camera's JPEG header (APPn metadata,
# tables) is a few KB, a photo's with an ICC profile rarely 1 MiB; more is no camera frame, and the
# walk never looks further, however large the message.
JPEG_HEADER_LIMIT = 4 * 2**20
# Segments before the frame header at most: a real JPEG has about a dozen (an ICC profile split into
# 64 KiB chunks some dozens more); this bounds the Python loop over 2-byte markers.
JPEG_MAX_SEGMENTS = 1024


def _skip_fill(buf: np.ndarray, i: int, end: int) -> int:
    """Index of the first byte at or after ``i`` that is not 0xFF; ``end`` when there is none before it.

    A marker may be preceded by any number of 0xFF fill bytes: they are skipped by numpy in windows
    growing from 64 bytes (a short run costs one small comparison, 50 MiB a few vectorised passes)."""
    window = 64
    while i < end:
        chunk = buf[i : min(end, i + window)]
        first = int(np.argmax(chunk != 0xFF))  # stops at the first True
        if chunk[first] != 0xFF:
            return i + first
        i += chunk.size
        window = min(window * 8, 2**20)
    return end


def _jpeg_size(buf: np.ndarray) -> tuple[int, int]:
    """(width, height) from the first start-of-frame segment, walking the markers before it.

    Bounded: at most :data:`JPEG_HEADER_LIMIT` bytes and :data:`JPEG_MAX_SEGMENTS` segments are
    looked at; runs of fill bytes are skipped in native code, never one byte per Python step."""
    n = int(buf.size)
    end = min(n, JPEG_HEADER_LIMIT)
    data = memoryview(buf)  # int per index, no copy
    i = 2
    for _ in range(JPEG_MAX_SEGMENTS):
        if i + 4 > end:
            break
        if data[i] != 0xFF:
            raise ImageError("decode", f"corrupt JPEG: no marker at byte {i}")
        j = _skip_fill(buf, i + 1, end) if data[i + 1] == 0xFF else i + 1  # j: the marker's byte
        if j + 3 > end:
            break
        marker = data[j]
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i = j + 1  # markers without a length
            continue
        if marker in (0xD9, 0xDA):
            raise ImageError("decode", "corrupt JPEG: image data starts before any frame header (SOF)")
        length = (data[j + 1] << 8) | data[j + 2]
        if length < 2:
            raise ImageError("decode", f"corrupt JPEG: segment length {length} at byte {j - 1}")
        if marker in _JPEG_SOF:
            if j + 8 > end:
                break
            height = (data[j + 4] << 8) | data[j + 5]
            width = (data[j + 6] << 8) | data[j + 7]
            return width, height
        i = j + 1 + length
    else:
        raise ImageError(
            "decode", f"corrupt JPEG: more than {JPEG_MAX_SEGMENTS} segments before the frame header (SOF)"
        )
    if n > end:
        raise ImageError(
            "decode",
            f"corrupt JPEG: no frame header (SOF) in the first {JPEG_HEADER_LIMIT // 2**20} MiB of its {n} bytes "
            f"(a camera frame's header is far shorter: fill bytes or metadata of that size are refused)",
        )
    raise ImageError("decode", f"corrupt JPEG: no frame header (SOF) in {n} bytes (truncated?)")


class _BufferReader(io.RawIOBase):
    """A read-only, seekable file over a buffer for Pillow's header probe: only what Pillow reads is
    copied (``io.BytesIO`` would copy the whole message first)."""

    def __init__(self, data: memoryview):
        super().__init__()
        self._data = data
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._data)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b: Any) -> int:
        chunk = self._data[self._pos : self._pos + len(b)]
        n = len(chunk)
        memoryview(b).cast("B")[:n] = chunk
        self._pos += n
        return n


def compressed_size(msg: Any) -> tuple[int, int]:
    """(width, height) of a ``sensor_msgs/CompressedImage`` from its header only, nothing decoded.

    JPEG and PNG are parsed here (no copy of the bytes; the JPEG walk is bounded, see
    :func:`_jpeg_size`); any other format is probed with Pillow through a reader over the message's
    own buffer, reading only the header. Raises :class:`ImageError` for an empty message, a depth
    image, or bytes that are not a recognisable image.
    """
    fmt, buf = _compressed_buffer(msg)
    head = bytes(buf[:8])
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(buf)
    if head == _PNG_SIGNATURE:
        if buf.size < 24 or bytes(buf[12:16]) != b"IHDR":
            raise ImageError("decode", f"corrupt PNG: no IHDR header in {buf.size} bytes")
        width = int.from_bytes(bytes(buf[16:20]), "big")
        height = int.from_bytes(bytes(buf[20:24]), "big")
        return width, height
    from PIL import Image as PILImage

    try:
        with PILImage.open(_BufferReader(memoryview(buf))) as probe:  # lazy: reads the header only
            return int(probe.size[0]), int(probe.size[1])
    except PILImage.DecompressionBombError as exc:  # Pillow's own limit; ours is checked by the caller
        raise ImageError("too_large", f"compressed image ({fmt or 'no format'}) is far too large ({exc})") from exc
    except Exception as exc:  # UnidentifiedImageError, OSError, SyntaxError ...
        raise ImageError(
            "decode",
            f"compressed image ({fmt or 'no format'}, {buf.size} bytes) is not a recognisable JPEG, PNG or other image",
        ) from exc


__all__ = [
    "SUPPORTED_ENCODINGS",
    "MIN_IMAGE_SIDE",
    "ImageError",
    "ImageView",
    "JPEG_HEADER_LIMIT",
    "JPEG_MAX_SEGMENTS",
    "check_frame_bytes",
    "check_frame_size",
    "data_size",
    "compressed_size",
    "conversion_backend",
    "encoding_layout",
    "image_view",
    "view_to_rgb",
    "image_to_rgb",
    "compressed_to_rgb",
]
