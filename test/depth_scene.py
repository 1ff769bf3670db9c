"""A synthetic scene with known geometry, for the depth tests (unit and ROS tiers).

A distorted pinhole camera (plumb_bob, principal point off-centre) looks at a wall 1.5 m away;
a square card faces it 0.8 m away, off the optical axis. Everything is drawn with OpenCV's
*forward* model (``cv2.projectPoints``), never with the inverse the code under test uses: the
depth image is the card's surface sampled densely and projected, then area-downscaled to the depth
camera's resolution (edge pixels mix card and wall, like a real sensor's flying pixels).
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

WIDTH, HEIGHT = 1920, 1080
FX = FY = 900.0
CX, CY = 1003.7, 531.2  # off-centre
K = np.array([[FX, 0.0, CX], [0.0, FY, CY], [0.0, 0.0, 1.0]])
D = np.array([-0.1, 0.02, 0.0015, -0.001, 0.0])  # k1, k2, p1, p2, k3 (plumb_bob)
WALL_Z = 1.5
# metres, optical frame: the card projects near (1260, 480), the centre of one cell of the embedded
# model's 16x16 grid over a 960x540 copy (60 px cells; the frame is padded to a square), so its box
# can be the card's own
CARD_CENTRE = np.array([0.2296, -0.0465, 0.8])
CARD_SIDE = 0.1


def truth_pan_tilt() -> tuple[float, float]:
    x, y, z = CARD_CENTRE
    return math.atan2(x, z), math.atan2(y, z)


def _card_surface(n: int) -> np.ndarray:
    s = np.linspace(-CARD_SIDE / 2, CARD_SIDE / 2, n)
    xs, ys = np.meshgrid(s, s)
    return np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1) + CARD_CENTRE


def project(points: np.ndarray, k: np.ndarray = K, d: np.ndarray = D) -> np.ndarray:
    """N x 3 optical-frame points -> N x 2 pixels (the intrinsics' convention: pixel i's centre at i)."""
    out, _ = cv2.projectPoints(np.asarray(points, np.float64).reshape(-1, 1, 3), np.zeros(3), np.zeros(3), k, d)
    return out.reshape(-1, 2)


def card_box(scale: float = 1.0) -> tuple[float, float, float, float]:
    """The card's projection's bounding box in continuous colour pixels (pixel i covers [i, i+1)),
    grown about its centre by ``scale`` (a loose box, as a detector may return)."""
    uv = project(_card_surface(200)) + 0.5
    x0, y0 = uv.min(axis=0)
    x1, y1 = uv.max(axis=0)
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 * scale, (y1 - y0) / 2 * scale
    return (float(cx - hw), float(cy - hh), float(cx + hw), float(cy + hh))


@functools.lru_cache(maxsize=1)
def _full_depth() -> np.ndarray:
    full = np.full((HEIGHT, WIDTH), WALL_Z, np.float32)
    uv = np.floor(project(_card_surface(900)) + 0.5).astype(int)
    ok = (uv[:, 0] >= 0) & (uv[:, 0] < WIDTH) & (uv[:, 1] >= 0) & (uv[:, 1] < HEIGHT)
    full[uv[ok, 1], uv[ok, 0]] = CARD_CENTRE[2]
    full.flags.writeable = False
    return full


def depth_metres(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """float32 depth (z, metres) registered to the colour camera, at ``width x height`` (a whole
    fraction of the colour size): drawn at full resolution, then area-averaged."""
    full = _full_depth()
    if (width, height) == (WIDTH, HEIGHT):
        return full.copy()
    assert WIDTH % width == 0 and HEIGHT % height == 0 and WIDTH // width == HEIGHT // height
    return cv2.resize(full, (width, height), interpolation=cv2.INTER_AREA)


def depth_millimetres(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """The same depth as 16UC1 millimetres (what most depth drivers publish)."""
    return np.round(depth_metres(width, height) * 1000.0).astype(np.uint16)


def colour_frame(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """RGB frame: a grey wall and the card drawn as a saturated red square where it projects."""
    img = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    corners = project(_card_surface(2)[[0, 1, 3, 2]])  # around the card's outline
    cv2.fillPoly(img, [np.round(corners * 16).astype(np.int32)], (220, 20, 20), cv2.LINE_AA, shift=4)
    if (width, height) != (WIDTH, HEIGHT):
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    return img


def depth_msg(depth: np.ndarray, header=None, big_endian: bool = False, pad: int = 0):
    """A ``sensor_msgs/Image`` of a depth array: uint16 -> 16UC1 (millimetres), float32 -> 32FC1 (metres);
    ``pad`` extra bytes at the end of every row."""
    from sensor_msgs.msg import Image

    from focus_ros.ros.image_msgs import byte_array

    encoding = {np.dtype(np.uint16): "16UC1", np.dtype(np.float32): "32FC1"}[depth.dtype]
    rows = depth.astype(depth.dtype.newbyteorder(">" if big_endian else "<")).view(np.uint8).reshape(depth.shape[0], -1)
    if pad:
        rows = np.hstack([rows, np.zeros((rows.shape[0], pad), np.uint8)])
    msg = Image(height=depth.shape[0], width=depth.shape[1], encoding=encoding, is_bigendian=int(big_endian))
    msg.step = rows.shape[1]
    msg.data = byte_array(rows)
    if header is not None:
        msg.header = header
    return msg


def camera_info_msg(header=None):
    """The scene camera's ``sensor_msgs/CameraInfo``: plumb_bob, calibrated at 1920x1080."""
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo(width=WIDTH, height=HEIGHT, distortion_model="plumb_bob")
    msg.d = [float(v) for v in D]
    msg.k = K.ravel().tolist()
    msg.r = np.eye(3).ravel().tolist()
    msg.p = np.hstack([K, np.zeros((3, 1))]).ravel().tolist()
    if header is not None:
        msg.header = header
    return msg


__all__ = [
    "CARD_CENTRE",
    "CARD_SIDE",
    "CX",
    "CY",
    "D",
    "FX",
    "FY",
    "HEIGHT",
    "K",
    "WALL_Z",
    "WIDTH",
    "camera_info_msg",
    "card_box",
    "colour_frame",
    "depth_msg",
    "depth_metres",
    "depth_millimetres",
    "project",
    "truth_pan_tilt",
]
