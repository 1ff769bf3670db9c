"""Boxes to 3-D points: a pinhole camera with lens distortion, and a robust depth per box.

Pure numpy + OpenCV (no torch, no ROS), so the node, the bag report and the tests share one
implementation. Conventions:

* boxes are in continuous pixel coordinates of the colour frame (pixel ``i`` covers ``[i, i + 1)``,
  as :class:`~focus_ros.core.geometry.Box`); the intrinsics ``K`` use OpenCV's / ROS's convention
  (pixel ``i``'s centre is at ``i``), so a box coordinate ``c`` is the intrinsics' ``c - 0.5``;
* points are in the camera's optical frame (x right, y down, z forward), metres; a depth image
  holds z (not the range along the ray), as ROS depth images do;
* distortion models are ROS's ``sensor_msgs/CameraInfo`` names: ``plumb_bob`` and
  ``rational_polynomial`` (OpenCV's standard model, 5 or 8 coefficients), ``equidistant``
  (OpenCV's fisheye model, 4 coefficients), empty or ``none`` for none.

:func:`locate` is the whole per-target computation: the ray through the box centre (distortion
removed), pan and tilt from it, a robust depth from the valid depth pixels of the box, the point
and the box's size at that depth. It never raises on missing or bad data: it says why in ``note``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant", "none", "")

# Notes (TargetResult.note): why a target has no point (or no pan/tilt). Callers may append detail.
NOTE_NO_CAMERA_INFO = "no camera_info"
NOTE_NO_DEPTH = "no depth"
NOTE_NO_VALID_DEPTH = "no valid depth in the box"
NOTE_NO_REGION = "no region kept"

# Sizes may differ by this relative amount and still count as the same aspect ratio (a 1920x1080
# camera_info for a 640x360 depth image is exact; 1280x720 -> 848x480 rounds to 0.6 %).
ASPECT_TOLERANCE = 0.01

# Iterative undistortion: OpenCV's default (5 iterations) leaves ~0.1 px at the corners of a
# strongly distorted lens; these converge to well below 1e-3 px for any calibrated lens.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)


def same_aspect(w0: float, h0: float, w1: float, h1: float) -> bool:
    """Whether ``w0 x h0`` and ``w1 x h1`` have the same aspect ratio within ASPECT_TOLERANCE."""
    if min(w0, h0, w1, h1) <= 0:
        return False
    return abs((w0 / h0) / (w1 / h1) - 1.0) <= ASPECT_TOLERANCE


@dataclass(frozen=True)
class CameraModel:
    """A calibrated camera: intrinsics ``K`` (3x3), distortion ``D`` in ``distortion_model``, and the
    image size the calibration is for (``sensor_msgs/CameraInfo`` without the rectification)."""

    K: np.ndarray
    D: np.ndarray
    distortion_model: str
    width: int
    height: int

    @classmethod
    def create(
        cls, k: Sequence[float], d: Sequence[float] = (), distortion_model: str = "", width: int = 0, height: int = 0
    ) -> CameraModel:
        """A validated model from ``k`` (9 values, row-major, or 3x3) and ``d``; ValueError with the
        reason when it cannot be used (zero or negative focal length, unknown distortion model, a
        coefficient count the model does not have)."""
        K = np.asarray(k, np.float64).reshape(3, 3)
        model = (distortion_model or "").strip().lower()
        D = np.asarray(d, np.float64).reshape(-1)
        if not np.all(np.isfinite(K)) or not np.all(np.isfinite(D)):
            raise ValueError("camera_info has a non-finite intrinsic or distortion value")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"camera_info has no intrinsics (fx={K[0, 0]:g}, fy={K[1, 1]:g}): uncalibrated camera?")
        if model not in DISTORTION_MODELS:
            raise ValueError(
                f"unsupported distortion model {distortion_model!r}; supported: plumb_bob, "
                "rational_polynomial, equidistant, none"
            )
        if model in ("", "none") or not np.any(D):
            model, D = "none", np.zeros(0)
        elif model == "equidistant":
            if D.size < 4:
                raise ValueError(f"equidistant distortion needs 4 coefficients, got {D.size}")
            D = D[:4]
        elif D.size not in (4, 5, 8, 12, 14):
            raise ValueError(f"{model} distortion needs 4, 5, 8, 12 or 14 coefficients, got {D.size}")
        return cls(K, D, model, int(width), int(height))

    def scaled(self, width: int, height: int) -> CameraModel:
        """The same camera for the image resized to ``width x height`` (distortion is unchanged: it
        acts on normalised coordinates). Pixel centres move with the resize, so the principal point
        maps as ``(c + 0.5) * s - 0.5``. A model without a size is taken to be for this size."""
        if not self.width or not self.height or (self.width, self.height) == (width, height):
            return CameraModel(self.K, self.D, self.distortion_model, int(width), int(height))
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0, 0] *= sx
        K[0, 1] *= sx
        K[1, 1] *= sy
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
        return CameraModel(K, self.D, self.distortion_model, int(width), int(height))

    def normalised(self, pixels: np.ndarray) -> np.ndarray:
        """N x 2 pixel coordinates (the intrinsics' convention) -> N x 2 undistorted ``(x/z, y/z)``."""
        pts = np.asarray(pixels, np.float64).reshape(-1, 1, 2)
        if self.distortion_model == "none":
            out = cv2.undistortPoints(pts, self.K, None)
        elif self.distortion_model == "equidistant":
            out = cv2.fisheye.undistortPoints(pts, self.K, self.D, criteria=_UNDISTORT_CRITERIA)
        elif hasattr(cv2, "undistortPointsIter"):  # OpenCV 4: the overload with criteria has its own name
            out = cv2.undistortPointsIter(pts, self.K, self.D, None, None, _UNDISTORT_CRITERIA)
        else:
            out = cv2.undistortPoints(pts, self.K, self.D, criteria=_UNDISTORT_CRITERIA)
        return np.asarray(out, np.float64).reshape(-1, 2)

    def ray(self, u: float, v: float) -> np.ndarray:
        """Unit ray (optical frame) through pixel ``(u, v)`` of the intrinsics' convention."""
        x, y = self.normalised(np.array([[u, v]]))[0]
        r = np.array([x, y, 1.0])
        return r / np.linalg.norm(r)

    def box_pixels(self, box: Sequence[float]) -> np.ndarray:
        """Centre, left, right, top and bottom midpoints of a box (continuous px) in the intrinsics' convention."""
        x0, y0, x1, y1 = (float(v) for v in box)
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        return np.array([[cx, cy], [x0, cy], [x1, cy], [cx, y0], [cx, y1]]) - 0.5


@dataclass(frozen=True)
class DepthConfig:
    """How one depth is read from the depth pixels of a box."""

    # A box around an object also holds the background behind it (farther); a low percentile
    # takes the object's front surface while ignoring the few nearest pixels (edge noise, flying pixels).
    percentile: float = 30.0
    # The box's central part (this fraction of its width and height) is mostly the object itself;
    # the whole box is used only when the centre holds too few valid pixels.
    centre_fraction: float = 0.5
    # Fewer valid pixels than this in the centre: the centre is mostly holes, use the whole box.
    min_centre_pixels: int = 9
    # Depth spread (extent.z) between these percentiles: robust to a few outliers at either end.
    spread_low: float = 10.0
    spread_high: float = 90.0
    # Readings outside this range (metres) are sensor artefacts, not depth (0 is "no reading").
    min_depth: float = 1e-3
    max_depth: float = 1000.0

    def validate(self) -> None:
        if not 0.0 <= self.percentile <= 100.0:
            raise ValueError(f"percentile must be within [0, 100], got {self.percentile}")
        if not 0.0 < self.centre_fraction <= 1.0:
            raise ValueError(f"centre_fraction must be within (0, 1], got {self.centre_fraction}")
        if not 0.0 <= self.spread_low <= self.spread_high <= 100.0:
            raise ValueError("spread percentiles must satisfy 0 <= low <= high <= 100")
        if not 0.0 <= self.min_depth < self.max_depth:
            raise ValueError("depth range must satisfy 0 <= min_depth < max_depth")


@dataclass(frozen=True)
class TargetGeometry:
    """Where one target is for a planner (``TargetResult``'s point, extent, pan, tilt, note)."""

    has_point: bool = False
    point: tuple[float, float, float] = (0.0, 0.0, 0.0)  # metres, optical frame
    extent: tuple[float, float, float] = (0.0, 0.0, 0.0)  # box width, height at the depth; depth spread
    has_direction: bool = False  # pan / tilt are known (camera_info and a box)
    pan: float = 0.0  # radians, atan2(x, z) of the box centre's ray: positive towards image right
    tilt: float = 0.0  # radians, atan2(y, z): positive towards image down
    note: str = ""  # why there is no point (or no direction); empty with a point
    depth_pixels: int = 0  # valid depth pixels the depth was read from


def depth_in_box(
    depth: np.ndarray, box: Sequence[float], unit: float = 1.0, config: DepthConfig = DepthConfig()
) -> tuple[float, float, int]:
    """(robust depth, spread, valid pixel count) of ``depth`` inside ``box`` (continuous px of the
    depth image); depth NaN and count 0 when no pixel is valid. ``unit`` scales the stored values
    to metres (0.001 for 16-bit millimetres); 0, NaN, inf and out-of-range readings are ignored."""
    h, w = depth.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)

    def pixels(fx0: float, fy0: float, fx1: float, fy1: float) -> np.ndarray:
        # pixels whose centre lies in the box, at least the one under its centre
        c0, c1 = int(math.ceil(fx0 - 0.5)), int(math.floor(fx1 - 0.5))
        r0, r1 = int(math.ceil(fy0 - 0.5)), int(math.floor(fy1 - 0.5))
        if c1 < c0:
            c0 = c1 = int(math.floor((fx0 + fx1) / 2.0))
        if r1 < r0:
            r0 = r1 = int(math.floor((fy0 + fy1) / 2.0))
        c0, c1 = max(c0, 0), min(c1, w - 1)
        r0, r1 = max(r0, 0), min(r1, h - 1)
        if c1 < c0 or r1 < r0:
            return np.zeros(0, np.float64)
        values = np.asarray(depth[r0 : r1 + 1, c0 : c1 + 1], np.float64).reshape(-1) * unit
        ok = np.isfinite(values) & (values >= config.min_depth) & (values <= config.max_depth)
        return values[ok]

    m = (1.0 - config.centre_fraction) / 2.0
    bw, bh = x1 - x0, y1 - y0
    values = pixels(x0 + m * bw, y0 + m * bh, x1 - m * bw, y1 - m * bh)
    if values.size < config.min_centre_pixels:
        whole = pixels(x0, y0, x1, y1)
        if whole.size > values.size:
            values = whole
    if values.size == 0:
        return float("nan"), 0.0, 0
    z = float(np.percentile(values, config.percentile))
    lo, hi = np.percentile(values, [config.spread_low, config.spread_high])
    return z, float(hi - lo), int(values.size)


def locate(
    box: Sequence[float] | None,
    frame_size: tuple[int, int],
    camera: CameraModel | None,
    depth: np.ndarray | None = None,
    depth_unit: float = 1.0,
    config: DepthConfig = DepthConfig(),
) -> TargetGeometry:
    """Point, extent, pan and tilt of the target in ``box`` (continuous px of the ``frame_size`` =
    (width, height) colour frame), from ``camera`` (its calibration, for any image size of the same
    aspect ratio) and an optional registered ``depth`` image (any resolution of the same aspect
    ratio; values x ``depth_unit`` = metres).

    The depth is :func:`depth_in_box`'s low percentile of the valid pixels in the box (scaled into
    depth pixels by the ratio of the sizes); the point is the undistorted ray through the box
    centre at that depth (z = depth); the extent is the box's width and height back-projected at
    that depth, and the spread of depth in the box. Pan and tilt (the angles of that ray's
    projections on the x-z and y-z planes) need only the camera. Never raises on missing or
    unusable data: ``note`` says why there is no point."""
    config.validate()
    if box is None or float(box[2]) <= float(box[0]) or float(box[3]) <= float(box[1]):
        return TargetGeometry(note=NOTE_NO_REGION)
    if camera is None:
        return TargetGeometry(note=NOTE_NO_CAMERA_INFO)
    fw, fh = int(frame_size[0]), int(frame_size[1])
    if camera.width and camera.height and not same_aspect(camera.width, camera.height, fw, fh):
        return TargetGeometry(
            note=f"{NOTE_NO_CAMERA_INFO} for this frame: camera_info is {camera.width}x{camera.height}, "
            f"the frame {fw}x{fh} (another aspect ratio)"
        )
    cam = camera.scaled(fw, fh)
    rays = cam.normalised(cam.box_pixels(box))
    xn, yn = float(rays[0, 0]), float(rays[0, 1])
    pan, tilt = math.atan2(xn, 1.0), math.atan2(yn, 1.0)
    direction = dict(has_direction=True, pan=pan, tilt=tilt)
    if depth is None:
        return TargetGeometry(note=NOTE_NO_DEPTH, **direction)
    dh, dw = depth.shape[:2]
    if not same_aspect(dw, dh, fw, fh):
        return TargetGeometry(
            note=f"{NOTE_NO_DEPTH} for this frame: the depth image is {dw}x{dh}, the frame {fw}x{fh} "
            "(another aspect ratio: not registered to it)",
            **direction,
        )
    sx, sy = dw / fw, dh / fh
    x0, y0, x1, y1 = (float(v) for v in box)
    z, spread, n = depth_in_box(depth, (x0 * sx, y0 * sy, x1 * sx, y1 * sy), depth_unit, config)
    if n == 0:
        return TargetGeometry(note=NOTE_NO_VALID_DEPTH, **direction)
    width = abs(float(rays[2, 0] - rays[1, 0])) * z
    height = abs(float(rays[4, 1] - rays[3, 1])) * z
    return TargetGeometry(
        has_point=True,
        point=(xn * z, yn * z, z),
        extent=(width, height, spread),
        depth_pixels=n,
        **direction,
    )


__all__ = [
    "ASPECT_TOLERANCE",
    "DISTORTION_MODELS",
    "NOTE_NO_CAMERA_INFO",
    "NOTE_NO_DEPTH",
    "NOTE_NO_REGION",
    "NOTE_NO_VALID_DEPTH",
    "CameraModel",
    "DepthConfig",
    "TargetGeometry",
    "depth_in_box",
    "locate",
    "same_aspect",
]
