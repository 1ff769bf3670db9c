"""numpy -> ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` messages.

The reverse of :mod:`focus_ros.io.images`, which reads messages without their classes; building
one needs ``sensor_msgs``. The node publishes its relevance images with :func:`rgb_to_image`;
tests, benchmarks and tools build camera frames with all three.
"""

from __future__ import annotations

import array
import sys
from typing import Any

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from ..io.images import encoding_layout


def _fill_header(msg: Any, header: Any) -> None:
    if header is not None:
        msg.header.stamp = header.stamp
        msg.header.frame_id = header.frame_id


def byte_array(buf: np.ndarray) -> array.array:
    """``buf``'s bytes as the ``array.array('B')`` an rclpy message's ``data`` field holds."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(buf).reshape(-1).view(np.uint8).data)
    return out


def numpy_to_image(arr: np.ndarray, encoding: str, header: Any = None, step: int | None = None) -> Any:
    """A ``sensor_msgs/Image`` whose pixels are ``arr`` *as given* in ``encoding``'s layout.

    ``arr`` is H x W x C (or H x W) uint8/uint16 for packed encodings, H x W x 2 for yuv422
    variants, (H * 3 / 2) x W for nv12/nv21. ``step`` > one row pads every row with zeros.
    """
    channels, depth, kind = encoding_layout(encoding)
    arr = np.asarray(arr)
    want = np.uint16 if depth == 2 else np.uint8
    if arr.dtype != want:
        raise ValueError(f"{encoding} needs {np.dtype(want).name} pixels, got {arr.dtype}")
    if kind in ("nv12", "nv21"):
        height, width = arr.shape[0] * 2 // 3, arr.shape[1]
    else:
        height, width = arr.shape[:2]
        got = arr.shape[2] if arr.ndim == 3 else 1
        if got != channels:
            raise ValueError(f"{encoding} needs {channels} channel(s), got {got}")
    rows = arr.reshape(arr.shape[0], -1)
    if depth == 2:
        rows = rows.astype(">u2" if sys.byteorder == "big" else "<u2", copy=False).view(np.uint8)
    row_bytes = rows.shape[1]
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise ValueError(f"step {step} is smaller than a row ({row_bytes} bytes)")
    if step > row_bytes:
        padded = np.zeros((rows.shape[0], step), np.uint8)
        padded[:, :row_bytes] = rows
        rows = padded
    msg = Image()
    _fill_header(msg, header)
    msg.height, msg.width, msg.encoding, msg.step = int(height), int(width), encoding, int(step)
    msg.is_bigendian = 1 if (depth == 2 and sys.byteorder == "big") else 0
    msg.data = byte_array(rows)
    return msg


def rgb_to_image(rgb: np.ndarray, encoding: str = "rgb8", header: Any = None) -> Any:
    """A ``sensor_msgs/Image`` (rgb8, bgr8 or mono8) of an H x W x 3 RGB array, or mono8 of H x W."""
    if encoding == "rgb8":
        return numpy_to_image(rgb, "rgb8", header)
    if encoding == "bgr8":
        return numpy_to_image(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), "bgr8", header)
    if encoding == "mono8":
        gray = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return numpy_to_image(gray, "mono8", header)
    raise ValueError(f"rgb_to_image writes rgb8, bgr8 or mono8, not {encoding!r}")


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "jpeg", header: Any = None, quality: int = 90) -> Any:
    """A ``sensor_msgs/CompressedImage`` (jpeg or png) of an H x W x 3 RGB array."""
    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt.lower())
    if ext is None:
        raise ValueError(f"format must be jpeg or png, got {fmt!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:  # pragma: no cover
        raise ValueError(f"OpenCV could not encode a {fmt} image")
    msg = CompressedImage()
    _fill_header(msg, header)
    msg.format = "jpeg" if ext == ".jpg" else "png"
    msg.data = byte_array(buf)
    return msg


__all__ = ["byte_array", "numpy_to_image", "rgb_to_image", "rgb_to_compressed"]
