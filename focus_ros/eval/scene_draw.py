"""The vocabulary and drawing primitives every scene look shares: the shapes and colours objects
are drawn in, the muted background (texture, blobs, strokes) and the anti-aliased shape masks.

Both :mod:`focus_ros.eval.scenes` (the plain look) and :mod:`focus_ros.eval.scene_styles` (the
varied training look) draw with them; they live here so that neither of those imports the other
at module level. Pure numpy/OpenCV and deterministic: every random draw comes from the caller's
generator, in order.
"""

from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
COLORS: dict[str, tuple[int, int, int]] = {  # RGB, saturated and far apart
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "purple": (140, 40, 180),
    "orange": (250, 140, 20),
    "white": (250, 250, 250),
    "black": (10, 10, 10),
}

MUTED_MAX_SATURATION = 0.25
MUTED_VALUE = (0.3, 0.75)


def muted_color(rng: np.random.Generator) -> tuple[int, int, int]:
    """A background colour: low saturation, mid value; far from every vocabulary colour."""
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, MUTED_MAX_SATURATION), rng.uniform(*MUTED_VALUE))
    return (int(round(r * 255)), int(round(g * 255)), int(round(b * 255)))


def draw_texture(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Smooth muted colour field + mid-frequency and fine luminance noise (int16, H x W x 3)."""
    gw, gh = int(rng.integers(4, 9)), int(rng.integers(3, 7))
    field_ = np.array([[muted_color(rng) for _ in range(gw)] for _ in range(gh)], dtype=np.float32)
    base = cv2.resize(field_, (w, h), interpolation=cv2.INTER_CUBIC)
    mid = rng.normal(0, 10, (max(2, h // 24), max(2, w // 24), 1)).astype(np.float32)
    base += cv2.resize(mid, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    fine = rng.integers(-6, 7, (h, w, 1), dtype=np.int16)
    out = base.astype(np.int16)
    out += fine
    return out


def draw_blobs(img: np.ndarray, rng: np.random.Generator, short: int) -> None:
    """Large, soft, low-contrast blobs (shadows, stains): drawn at 1/8 scale, blurred, blended."""
    h, w = img.shape[:2]
    sw, sh = max(8, w // 8), max(8, h // 8)
    layer = np.zeros((sh, sw, 3), np.float32)
    alpha = np.zeros((sh, sw), np.float32)
    for _ in range(int(rng.integers(4, 12))):
        center = (int(rng.uniform(0, sw)), int(rng.uniform(0, sh)))
        axes = (int(rng.uniform(0.08, 0.25) * short / 8) + 1, int(rng.uniform(0.08, 0.25) * short / 8) + 1)
        mask = np.zeros((sh, sw), np.uint8)
        cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        a = mask.astype(np.float32) / 255 * rng.uniform(0.15, 0.35)
        layer[a > 0] = muted_color(rng)
        alpha = np.maximum(alpha, a)
    k = max(3, (short // 40) | 1)
    layer = cv2.GaussianBlur(layer, (k, k), 0)
    alpha = cv2.GaussianBlur(alpha, (k, k), 0)
    layer = cv2.resize(layer, (w, h), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    # img * (1 - alpha) + layer * alpha, truncated to int16, in place: the same float32 operations in
    # the same order (the frame's values do not change), without three full-frame temporaries
    out = img.astype(np.float32)
    out *= 1 - alpha
    layer *= alpha
    out += layer
    np.copyto(img, out, casting="unsafe")


def draw_strokes(img: np.ndarray, rng: np.random.Generator, short: int) -> None:
    """Thin muted open curves (cables, cracks, furniture edges): a random walk whose heading turns
    slowly, so a stroke never closes into an outline of a vocabulary shape."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(40, 120))):
        k = int(rng.integers(4, 13))
        heading = rng.uniform(0, 2 * math.pi)
        turns = np.cumsum(rng.normal(0, 0.3, k - 1)) + heading
        lengths = rng.uniform(0.01, 0.06, k - 1) * short
        steps = np.stack([np.cos(turns) * lengths, np.sin(turns) * lengths], axis=1)
        start = rng.uniform([0, 0], [w, h])
        pts = np.vstack([start, start + np.cumsum(steps, axis=0)]).astype(np.int32)
        thickness = max(1, int(rng.uniform(0.0005, 0.003) * short))
        cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, muted_color(rng), thickness, cv2.LINE_AA)


SHIFT = 4  # fixed-point bits for sub-pixel polygon vertices


def _shape_polygon(shape: str, cx: float, cy: float, size: float) -> list[np.ndarray]:
    """Polygon(s) of a shape whose bounding box is about ``size`` px, centred at (cx, cy)."""
    r = size / 2.0
    if shape == "circle":
        t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
        pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)
    elif shape == "square":
        a = r * 0.9
        pts = np.array([[cx - a, cy - a], [cx + a, cy - a], [cx + a, cy + a], [cx - a, cy + a]])
    elif shape == "triangle":
        pts = np.array([[cx, cy - r], [cx + r, cy + 0.75 * r], [cx - r, cy + 0.75 * r]])
    elif shape == "star":
        t = np.arange(10) * math.pi / 5 - math.pi / 2
        rad = np.where(np.arange(10) % 2 == 0, r, 0.42 * r)
        pts = np.stack([cx + rad * np.cos(t), cy + rad * np.sin(t)], axis=1)
    elif shape == "cross":
        a, b = r, r / 3.0
        pts = np.array(
            [
                [cx - b, cy - a],
                [cx + b, cy - a],
                [cx + b, cy - b],
                [cx + a, cy - b],
                [cx + a, cy + b],
                [cx + b, cy + b],
                [cx + b, cy + a],
                [cx - b, cy + a],
                [cx - b, cy + b],
                [cx - a, cy + b],
                [cx - a, cy - b],
                [cx - b, cy - b],
            ]
        )
    elif shape == "diamond":
        pts = np.array([[cx, cy - r], [cx + 0.65 * r, cy], [cx, cy + r], [cx - 0.65 * r, cy]])
    else:
        raise ValueError(f"unknown shape {shape!r}; vocabulary: {SHAPES}")
    return [np.round(pts * (1 << SHIFT)).astype(np.int32).reshape(-1, 1, 2)]


def shape_mask(shape: str, size: float, pad: int = 2) -> tuple[np.ndarray, float, float]:
    """Anti-aliased coverage mask (float32 in [0, 1]) of one shape and its centre in the mask."""
    side = int(math.ceil(size)) + 2 * pad
    cx = cy = side / 2.0
    mask = np.zeros((side, side), np.uint8)
    cv2.fillPoly(mask, _shape_polygon(shape, cx, cy, size), 255, cv2.LINE_AA, SHIFT)
    return mask.astype(np.float32) / 255.0, cx, cy


__all__ = ["SHAPES", "COLORS", "MUTED_MAX_SATURATION", "MUTED_VALUE", "muted_color", "shape_mask"]
