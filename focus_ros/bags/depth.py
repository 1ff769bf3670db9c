"""The demo bag's scene in 3-D: the camera, the table, the objects' depth, and the true points.

The scenes are 2-D pictures (:mod:`focus_ros.eval.scenes`); this gives them a known geometry so
the demo bag can carry a registered depth image and camera_info, and its ground truth a 3-D point
per target. A pinhole camera (no distortion: the scenes are drawn undistorted) looks down at a
table plane that tilts away from it; every object is a flat body facing the camera, a few cm in
front of the nearest table point its box covers, over the pixels drawn in its colour. Pure
numpy, deterministic, ROS-free.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..eval.scene_draw import COLORS, SHAPES
from ..eval.scenes import Scene, SceneQuestion


@dataclass(frozen=True)
class DemoCamera:
    """The demo's RGB-D camera and the scene's geometry (see the module docstring): intrinsics of
    the colour image, the table plane, how far objects stand in front of it, the depth image's scale."""

    focal_px: float = 1400.0  # fx = fy: ~69 deg horizontal field of view at 1920 px, a usual RGB-D colour camera
    principal_offset: tuple[float, float] = (7.0, -5.0)  # px off the centre: a real camera's is never exactly on it
    table_far_m: float = 2.5  # table depth along the top row's rays...
    table_near_m: float = 1.2  # ...and the bottom row's: a table seen from above, at an angle
    object_height_m: float = 0.05  # an object's face stands this far in front of the table it covers
    depth_divisor: int = 3  # depth at 1/3 of the colour resolution (640x360): depth is usually coarser
    color_tolerance: int = 40  # an object's pixels: within this of its colour per channel (AA edges half in)

    def validate(self) -> None:
        """ValueError for settings that make no scene: a table the camera cannot see or objects behind it."""
        if not (self.focal_px > 0 and self.depth_divisor >= 1):
            raise ValueError("focal_px must be > 0 and depth_divisor >= 1")
        if not 0 < self.object_height_m < self.table_near_m < self.table_far_m:
            raise ValueError("need 0 < object_height_m < table_near_m < table_far_m")

    def intrinsics(self, width: int, height: int) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) of the colour image, pixels (pixel centres at integer coordinates)."""
        cx = (width - 1) / 2.0 + self.principal_offset[0]
        cy = (height - 1) / 2.0 + self.principal_offset[1]
        return self.focal_px, self.focal_px, cx, cy

    def k(self, width: int, height: int) -> list[float]:
        """The 3x3 camera matrix K, row-major (CameraInfo.k)."""
        fx, fy, cx, cy = self.intrinsics(width, height)
        return [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]

    def table_plane(self, width: int, height: int) -> tuple[float, float, float]:
        """(a, b, c): the table is the plane a*x + b*y + c*z = 1 in the optical frame (metres),
        ``table_far_m`` deep along the top row's rays and ``table_near_m`` along the bottom row's."""
        _, fy, _, cy = self.intrinsics(width, height)
        top, bottom = (0.0 - cy) / fy, (height - 1.0 - cy) / fy
        b = (1.0 / self.table_near_m - 1.0 / self.table_far_m) / (bottom - top)
        return 0.0, b, 1.0 / self.table_far_m - b * top

    def table_depth(self, u: Any, v: Any, width: int, height: int) -> Any:
        """Depth z (metres) at which pixel (u, v)'s ray meets the table; u, v may be arrays."""
        fx, fy, cx, cy = self.intrinsics(width, height)
        a, b, c = self.table_plane(width, height)
        return 1.0 / (a * (np.asarray(u, np.float64) - cx) / fx + b * (np.asarray(v, np.float64) - cy) / fy + c)

    def back_project(self, u: float, v: float, z: float, width: int, height: int) -> list[float]:
        """Pixel (u, v) at depth z (metres) as [x, y, z] in the optical frame, metres."""
        fx, fy, cx, cy = self.intrinsics(width, height)
        return [(u - cx) * z / fx, (v - cy) * z / fy, z]


DEFAULT_CAMERA = DemoCamera()


def box_centre(box: Sequence[int]) -> tuple[float, float]:
    """Centre pixel of a box [x0, y0, x1, y1] (x1/y1 exclusive; pixel centres at integers)."""
    return (box[0] + box[2] - 1) / 2.0, (box[1] + box[3] - 1) / 2.0


def object_depths_mm(scene: Scene, camera: DemoCamera = DEFAULT_CAMERA) -> list[int]:
    """Depth of every object's face (in ``scene.objects``' order), whole millimetres:
    ``object_height_m`` in front of the nearest table point its box covers (a box corner: 1/z is
    linear in the pixel), so the face is nearer than the table all over the box, also for a large
    object on the steep table. Whole mm, so the depth image holds it exactly."""
    out = []
    for o in scene.objects:
        x0, y0, x1, y1 = o.box
        corners = camera.table_depth([x0, x1 - 1, x0, x1 - 1], [y0, y0, y1 - 1, y1 - 1], scene.width, scene.height)
        z = float(np.min(corners)) - camera.object_height_m
        out.append(int(round(z * 1000.0)))
    return out


def _object_labels(scene: Scene, camera: DemoCamera) -> np.ndarray:
    """H x W int16: the index of the object drawn at each pixel (its colour, within its box), -1 elsewhere."""
    labels = np.full((scene.height, scene.width), -1, np.int16)
    for k, o in enumerate(scene.objects):
        x0, y0, x1, y1 = o.box
        patch = scene.image[y0:y1, x0:x1].astype(np.int16)
        mask = np.abs(patch - np.asarray(COLORS[o.color], np.int16)).max(axis=2) <= camera.color_tolerance
        if not mask.any():  # cannot happen with the vocabulary's colours; the box then stands in
            mask[:] = True
        labels[y0:y1, x0:x1][mask] = k
    return labels


def depth_image(scene: Scene, camera: DemoCamera = DEFAULT_CAMERA) -> np.ndarray:
    """The scene's registered depth image: (H / divisor) x (W / divisor) uint16 millimetres.
    Depth pixel (i, j) samples the colour pixel nearest its centre: the table's depth there, or
    the face depth of the object drawn there."""
    w, h = scene.width, scene.height
    dw, dh = max(1, w // camera.depth_divisor), max(1, h // camera.depth_divisor)
    uc = (np.arange(dw) + 0.5) * (w / dw) - 0.5  # colour-pixel coordinates of the depth pixels' centres
    vc = (np.arange(dh) + 0.5) * (h / dh) - 0.5
    depth = np.round(camera.table_depth(uc[None, :], vc[:, None], w, h) * 1000.0).astype(np.uint16)
    ui = np.clip(np.round(uc).astype(np.int64), 0, w - 1)
    vi = np.clip(np.round(vc).astype(np.int64), 0, h - 1)
    labels = _object_labels(scene, camera)[vi[:, None], ui[None, :]]
    for k, z_mm in enumerate(object_depths_mm(scene, camera)):
        depth[labels == k] = z_mm
    return depth


def _word_in(words: Sequence[str], text: str) -> str:
    """The first of ``words`` that is a whole word of ``text`` (case-insensitive), or ''."""
    return next((w for w in words if re.search(rf"\b{re.escape(w)}\b", text, re.IGNORECASE)), "")


def question_targets(
    q: SceneQuestion, scene: Scene, camera: DemoCamera | None = DEFAULT_CAMERA
) -> list[dict[str, Any]]:
    """The objects a question is about, as the node's target results name them: per target its
    phrase, ``key`` (the word that identifies it: its colour, or its shape for a colour question),
    ``every`` (every instance matters: a count) and its instances (box, centre pixel, true 3-D
    point in the optical frame, metres; point None without a camera). A relation question has two
    targets (its boxes' order), a count one target with every instance, an absent colour one
    target without instances."""
    index = {tuple(o.box): k for k, o in enumerate(scene.objects)}
    objs = [index[tuple(b)] for b in q.boxes]  # the generator's boxes are its objects' boxes
    depths = object_depths_mm(scene, camera) if camera is not None else None

    def instance(k: int) -> dict[str, Any]:
        box = list(map(int, scene.objects[k].box))
        u, v = box_centre(box)
        point = None
        if depths is not None:
            point = [round(x, 6) for x in camera.back_project(u, v, depths[k] / 1000.0, scene.width, scene.height)]
        return {"box": box, "pixel": [u, v], "point": point}

    if q.type == "color":  # "What color is the {shape}?": the shape names it
        key = scene.objects[objs[0]].shape if objs else _word_in(SHAPES, q.question)
        return [{"phrase": key, "key": key, "every": False, "instances": [instance(k) for k in objs]}]
    if q.type == "relation":
        groups = [[k] for k in objs]
    else:
        groups = [objs]
    out = []
    for group in groups:
        key = scene.objects[group[0]].color if group else _word_in(tuple(COLORS), q.question)
        every = q.type == "count"
        phrase = f"{key} objects" if every else f"{key} object"
        out.append({"phrase": phrase, "key": key, "every": every, "instances": [instance(k) for k in group]})
    return out


def camera_info_fields(width: int, height: int, camera: DemoCamera, store: Any) -> dict[str, Any]:
    """CameraInfo fields (all but the header) of the colour image: plumb_bob with D = 0 (the
    scenes are drawn undistorted), R = I, P = [K | 0], no binning, full-frame ROI."""
    RegionOfInterest = store.types["sensor_msgs/msg/RegionOfInterest"]
    k = camera.k(width, height)
    return {
        "height": height,
        "width": width,
        "distortion_model": "plumb_bob",
        "d": np.zeros(5, np.float64),
        "k": np.array(k, np.float64),
        "r": np.eye(3, dtype=np.float64).reshape(-1),
        "p": np.array(k[0:3] + [0.0] + k[3:6] + [0.0] + k[6:9] + [0.0], np.float64),
        "binning_x": 0,
        "binning_y": 0,
        "roi": RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    }


__all__ = [
    "DEFAULT_CAMERA",
    "DemoCamera",
    "box_centre",
    "camera_info_fields",
    "depth_image",
    "object_depths_mm",
    "question_targets",
]
