"""Relevance heat-map and overlay images for RViz (numpy/OpenCV only; no rclpy, no model code).

The relevance maps live on the model's visual-token grid; a :class:`~focus_ros.core.geometry.GridMapping`
says exactly which source pixels every cell covers (resize, pad-to-square and tiling included),
so the heat-map is painted cell by cell onto a down-scaled copy of the frame. The overlay also
draws each target's own box with its phrase (``target_results``): the selected box is the view
the answer was read from, which spans every target of a relation or count question.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import cv2
import numpy as np

from ..core.geometry import Box, GridMapping

SELECTED_COLOUR = (0, 255, 0)  # RGB
CANDIDATE_COLOUR = (255, 200, 0)
TARGET_COLOUR = (255, 0, 255)  # each target's own box: magenta stands out on the JET heat-map


def downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``rgb`` resized so its longer side is at most ``max_side`` (area filter); and the scale."""
    h, w = rgb.shape[:2]
    scale = min(1.0, float(max_side) / max(h, w)) if max_side > 0 else 1.0
    if scale >= 1.0:
        return np.ascontiguousarray(rgb), 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


def heat_on_frame(maps: Sequence[np.ndarray], mapping: GridMapping, out_w: int, out_h: int) -> np.ndarray:
    """Relevance (max over ``maps``, each scaled to [0, 1]) at every pixel of an ``out_w x out_h`` view.

    Every output pixel takes the value of the grid cell that contains its centre in source
    coordinates, so the picture is exactly the model's grid laid over the frame.
    """
    gh, gw = mapping.grid_shape
    xs = (np.arange(out_w) + 0.5) * (mapping.source_width / out_w)
    ys = (np.arange(out_h) + 0.5) * (mapping.source_height / out_h)
    cols = np.clip(np.searchsorted(np.asarray(mapping.x_edges), xs, side="right") - 1, 0, gw - 1)
    rows = np.clip(np.searchsorted(np.asarray(mapping.y_edges), ys, side="right") - 1, 0, gh - 1)
    heat = np.zeros((out_h, out_w), np.float32)
    for m in maps:
        m = np.asarray(m, np.float32)
        if m.shape != (gh, gw):
            raise ValueError(f"relevance map {m.shape} does not match the grid {(gh, gw)}")
        lo, hi = float(m.min()), float(m.max())
        norm = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        np.maximum(heat, norm[rows[:, None], cols[None, :]], out=heat)
    return heat


def colorize(heat: np.ndarray) -> np.ndarray:
    """[0, 1] heat -> H x W x 3 uint8 RGB (OpenCV's JET colour map)."""
    u8 = np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def to_mono8(heat: np.ndarray) -> np.ndarray:
    return np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _draw_box(img: np.ndarray, box: Box, scale: float, colour: tuple[int, int, int], thickness: int) -> None:
    h, w = img.shape[:2]
    x0 = int(np.clip(np.floor(box.x0 * scale), 0, w - 1))
    y0 = int(np.clip(np.floor(box.y0 * scale), 0, h - 1))
    x1 = int(np.clip(np.ceil(box.x1 * scale) - 1, 0, w - 1))
    y1 = int(np.clip(np.ceil(box.y1 * scale) - 1, 0, h - 1))
    cv2.rectangle(img, (x0, y0), (x1, y1), colour, thickness, cv2.LINE_AA)


def _text_banner(img: np.ndarray, lines: Iterable[str]) -> None:
    lines = [ln for ln in lines if ln]
    if not lines:
        return
    h, w = img.shape[:2]
    scale = max(0.4, min(1.0, w / 1200.0))
    line_h = int(26 * scale) + 6
    band = min(h, line_h * len(lines) + 6)
    img[:band] = (img[:band].astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken behind the text
    for i, text in enumerate(lines):
        max_chars = max(8, int(w / (11 * scale)))
        if len(text) > max_chars:
            text = text[: max_chars - 3] + "..."
        cv2.putText(
            img,
            text,
            (6, line_h * (i + 1) - 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6 * scale * 1.4,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )


def target_boxes(result: Any) -> list[tuple[str, Box]]:
    """(phrase, own box) of every target of a core result that kept a region."""
    return [(t.phrase, t.box) for t in getattr(result, "target_results", ()) if t.box is not None]


def _label_box(img: np.ndarray, text: str, box: Box, scale: float, colour: tuple[int, int, int]) -> None:
    h, w = img.shape[:2]
    size = max(0.35, min(0.8, w / 1600.0))
    x = int(np.clip(np.floor(box.x0 * scale), 0, w - 1))
    y = int(np.clip(np.floor(box.y0 * scale) - 4, 12, h - 1))  # above the box, inside the image
    cv2.putText(img, text[:40], (x, y), cv2.FONT_HERSHEY_SIMPLEX, size, colour, 1, cv2.LINE_AA)


def render_overlay(
    small_rgb: np.ndarray,
    scale: float,
    heat: np.ndarray | None,
    candidates: Sequence[Box],
    selected: Box | None,
    question: str = "",
    answer: str = "",
    targets: Sequence[tuple[str, Box]] = (),
    alpha: float = 0.45,
) -> np.ndarray:
    """The down-scaled frame with the heat-map blended in, candidate boxes, the selected box, each
    target's own box with its phrase, and the answer."""
    out = small_rgb.copy()
    if heat is not None:
        out = cv2.addWeighted(out, 1.0 - alpha, colorize(heat), alpha, 0.0)
    thick = max(1, round(max(out.shape[:2]) / 400))
    for box in candidates:
        _draw_box(out, box, scale, CANDIDATE_COLOUR, thick)
    if selected is not None:
        _draw_box(out, selected, scale, SELECTED_COLOUR, thick * 2 + 1)
    for phrase, box in targets:
        _draw_box(out, box, scale, TARGET_COLOUR, thick)
        _label_box(out, phrase, box, scale, TARGET_COLOUR)
    _text_banner(out, [f"Q: {question}" if question else "", f"A: {answer}" if answer else ""])
    return out


__all__ = ["downscale", "heat_on_frame", "colorize", "to_mono8", "render_overlay", "target_boxes"]
