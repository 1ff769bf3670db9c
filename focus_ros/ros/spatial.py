"""Depth images and camera_info in; 3-D points, markers and scaled camera_info out.

The ROS edge of :mod:`focus_ros.core.projection`: ``sensor_msgs/Image`` depth (16UC1 millimetres
or 32FC1 metres) becomes a zero-copy array view, ``sensor_msgs/CameraInfo`` a
:class:`~focus_ros.core.projection.CameraModel`; :func:`fill_points` fills every
``TargetResult``'s point, extent, pan, tilt and note from its own ``roi``; :func:`markers` draws
them for RViz; :func:`scaled_camera_info` describes the down-scaled relevance images.

Points stay in the colour camera's optical frame (the analysed frame's ``frame_id``): no TF is
needed here, and a user with TF transforms them with one call (docs/interfaces.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from geometry_msgs.msg import Point, Vector3
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from ..core.projection import (
    NOTE_NO_CAMERA_INFO,
    NOTE_NO_DEPTH,
    CameraModel,
    DepthConfig,
    locate,
    same_aspect,
)
from ..io.images import ImageError

if TYPE_CHECKING:
    from .frame_store import Frame, FrameStore

# encoding -> (stored type, metres per stored value). REP 118: 16UC1 millimetres, 32FC1 metres.
DEPTH_ENCODINGS: dict[str, tuple[type, float]] = {
    "16UC1": (np.uint16, 0.001),
    "mono16": (np.uint16, 0.001),  # some drivers name 16-bit millimetres so
    "32FC1": (np.float32, 1.0),
}

# Markers: a sphere never smaller than this (a flat target has no depth spread), metres.
MIN_MARKER_SIZE = 0.02
# Label letters this high per metre of distance (readable from a viewpoint near the camera), at least 2 cm.
LABEL_HEIGHT_PER_METRE = 0.05
FOUND_COLOUR = ColorRGBA(r=0.1, g=0.9, b=0.2, a=0.6)
NOT_FOUND_COLOUR = ColorRGBA(r=1.0, g=0.55, b=0.0, a=0.6)
LABEL_COLOUR = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)


# ============================================================================ messages -> arrays
def _buffer(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview)) or hasattr(data, "buffer_info"):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8)


def depth_view(msg: Any) -> tuple[np.ndarray, float]:
    """(H x W zero-copy view of a depth image's pixels, metres per value); ImageError with the
    problem's ``kind`` (``depth_encoding``, ``zero_size``, ``step``, ``data``) when it cannot be used."""
    encoding = str(msg.encoding)
    spec = DEPTH_ENCODINGS.get(encoding) or DEPTH_ENCODINGS.get(encoding.upper())
    if spec is None:
        raise ImageError(
            "depth_encoding",
            f"unsupported depth encoding {encoding!r}: a depth image is 16UC1 (millimetres) or 32FC1 (metres)",
        )
    dtype, unit = spec
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    if width <= 0 or height <= 0:
        raise ImageError("zero_size", f"depth image has zero size ({width}x{height})")
    item = np.dtype(dtype).itemsize
    row_bytes = width * item
    if step < row_bytes or step % item:
        raise ImageError(
            "step", f"step {step} is not a whole number of {item}-byte pixels of at least one row ({row_bytes})"
        )
    buf = _buffer(msg.data)
    need = step * height
    if buf.size < need:
        raise ImageError(
            "data", f"depth data is too short: {buf.size} bytes, expected {need} ({width}x{height} {encoding})"
        )
    order = ">" if int(getattr(msg, "is_bigendian", 0)) else "<"
    view = buf[:need].reshape(height, step)[:, :row_bytes].view(np.dtype(dtype).newbyteorder(order))
    return view, unit


def camera_model(info: Any) -> CameraModel:
    """The calibration of a ``sensor_msgs/CameraInfo`` for the image it describes (its ROI and binning
    applied); ValueError with the reason when it cannot be used (e.g. an uncalibrated camera's zero K)."""
    k = np.asarray(info.k, np.float64).reshape(3, 3).copy()
    width, height = int(info.width), int(info.height)
    roi = info.roi
    if roi.width and roi.height and (int(roi.width), int(roi.height)) != (width, height):
        k[0, 2] -= roi.x_offset
        k[1, 2] -= roi.y_offset
        width, height = int(roi.width), int(roi.height)
    model = CameraModel.create(k, list(info.d), str(info.distortion_model), width, height)
    bx, by = max(1, int(info.binning_x)), max(1, int(info.binning_y))
    if (bx > 1 or by > 1) and width and height:
        model = model.scaled(width // bx, height // by)
    return model


def scaled_camera_info(info: Any, width: int, height: int, header: Any) -> CameraInfo | None:
    """``info`` for its image resized to ``width x height`` (K and P scaled, distortion kept), with
    ``header``; None when it has no usable calibration or another aspect ratio."""
    try:
        model = camera_model(info)
    except ValueError:
        return None
    if model.width and model.height and not same_aspect(model.width, model.height, width, height):
        return None
    scaled = model.scaled(width, height)
    out = CameraInfo()
    out.header.stamp, out.header.frame_id = header.stamp, header.frame_id
    out.width, out.height = int(width), int(height)
    out.distortion_model = str(info.distortion_model)
    out.d = [float(v) for v in info.d]
    out.k = scaled.K.reshape(-1).tolist()
    out.r = [float(v) for v in info.r] if np.any(info.r) else [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    p = np.asarray(info.p, np.float64).reshape(3, 4).copy()
    if not np.any(p[:, :3]):
        p = np.hstack([model.K, np.zeros((3, 1))])  # no rectified projection given: K's
    else:
        if model.width and model.height:  # the same ROI / binning as K, then the resize
            p = _scale_projection(p, info, model, width, height)
    out.p = p.reshape(-1).tolist()
    return out


def _scale_projection(p: np.ndarray, info: Any, model: CameraModel, width: int, height: int) -> np.ndarray:
    roi = info.roi
    if roi.width and roi.height and (int(roi.width), int(roi.height)) != (int(info.width), int(info.height)):
        p[0, 2] -= roi.x_offset
        p[1, 2] -= roi.y_offset
        src_w, src_h = int(roi.width), int(roi.height)
    else:
        src_w, src_h = int(info.width) or model.width, int(info.height) or model.height
    sx, sy = width / src_w, height / src_h
    p[0, 0] *= sx
    p[0, 1] *= sx
    p[0, 3] *= sx
    p[1, 1] *= sy
    p[1, 3] *= sy
    p[0, 2] = (p[0, 2] + 0.5) * sx - 0.5
    p[1, 2] = (p[1, 2] + 0.5) * sy - 0.5
    return p


# ============================================================================ points
def fill_points(
    msg: Any,
    frame: Frame,
    frames: FrameStore | None,
    depth_enabled: bool,
    tolerance_ns: int,
    config: DepthConfig | None = None,
) -> int:
    """Fill point, extent, pan, tilt and note of every ``msg.target_results`` entry from its ``roi``,
    the camera's camera_info and the depth image paired with ``frame`` (within ``tolerance_ns``).
    Returns how many targets got a point. Never raises on missing data: the note says what was missing."""
    if not msg.target_results:
        return 0
    camera, camera_note = None, NOTE_NO_CAMERA_INFO
    info = frames.camera_info(frame.camera) if frames is not None else None
    if info is not None:
        try:
            camera = camera_model(info)
        except ValueError as exc:
            camera_note = f"{NOTE_NO_CAMERA_INFO}: {exc}"
    depth, depth_note = None, NOTE_NO_DEPTH
    if not depth_enabled:
        depth_note = f"{NOTE_NO_DEPTH}: depth.enabled is false"
    elif frames is not None:
        depth, offset = frames.depth_for(frame, tolerance_ns)
        if depth is None and offset is None:
            depth_note = f"{NOTE_NO_DEPTH}: no depth image paired with this frame's stamp"
        elif depth is None:
            depth_note = (
                f"{NOTE_NO_DEPTH}: the nearest depth image is {offset / 1e9:.3f} s from the frame "
                f"(depth.stamp_tolerance {tolerance_ns / 1e9:.3f} s)"
            )
    size = (int(frame.width), int(frame.height))
    found = 0
    for target in msg.target_results:
        roi = target.roi
        box = None
        if roi.width and roi.height:
            box = (roi.x_offset, roi.y_offset, roi.x_offset + roi.width, roi.y_offset + roi.height)
        geo = locate(
            box,
            size,
            camera,
            depth.array if depth is not None else None,
            depth.unit if depth is not None else 1.0,
            config or DepthConfig(),
        )
        note = geo.note
        if note == NOTE_NO_CAMERA_INFO:
            note = camera_note
        elif note == NOTE_NO_DEPTH:
            note = depth_note
        target.has_point = bool(geo.has_point)
        target.point.header.stamp, target.point.header.frame_id = msg.header.stamp, msg.header.frame_id
        target.point.point = Point(x=float(geo.point[0]), y=float(geo.point[1]), z=float(geo.point[2]))
        target.extent = Vector3(x=float(geo.extent[0]), y=float(geo.extent[1]), z=float(geo.extent[2]))
        target.pan, target.tilt = float(geo.pan), float(geo.tilt)
        target.note = note
        found += bool(geo.has_point)
    return found


# ============================================================================ markers
def markers(msg: Any) -> MarkerArray:
    """RViz markers of a result: DELETEALL (the previous answer's markers vanish), then per target
    with a point a sphere of its size (at least MIN_MARKER_SIZE) and a label with its phrase and
    confidence, namespaced per target, in the analysed frame's header."""
    out = MarkerArray()
    clear = Marker(action=Marker.DELETEALL)
    clear.header = msg.header
    out.markers.append(clear)
    for i, target in enumerate(msg.target_results):
        if not target.has_point:
            continue
        ns = f"{i}:{target.phrase}"
        p, e = target.point.point, target.extent
        sphere = Marker(ns=ns, id=0, type=Marker.SPHERE, action=Marker.ADD)
        sphere.header = msg.header
        sphere.pose.position = Point(x=p.x, y=p.y, z=p.z)
        sphere.pose.orientation.w = 1.0
        sphere.scale = Vector3(x=max(e.x, MIN_MARKER_SIZE), y=max(e.y, MIN_MARKER_SIZE), z=max(e.z, MIN_MARKER_SIZE))
        sphere.color = FOUND_COLOUR if target.found else NOT_FOUND_COLOUR
        text_h = max(MIN_MARKER_SIZE, LABEL_HEIGHT_PER_METRE * p.z)
        label = Marker(ns=ns, id=1, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        label.header = msg.header
        # above the sphere: optical y points down
        label.pose.position = Point(x=p.x, y=p.y - sphere.scale.y / 2.0 - text_h, z=p.z)
        label.pose.orientation.w = 1.0
        label.scale.z = text_h
        label.color = LABEL_COLOUR
        confidence = f"{target.confidence:.2f}" if target.confidence >= 0.0 else "?"
        label.text = f"{target.phrase} {confidence}" + ("" if target.found else " (not found)")
        out.markers.extend([sphere, label])
    return out


__all__ = [
    "DEPTH_ENCODINGS",
    "MIN_MARKER_SIZE",
    "camera_model",
    "depth_view",
    "fill_points",
    "markers",
    "scaled_camera_info",
]
