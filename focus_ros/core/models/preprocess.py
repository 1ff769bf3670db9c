"""Frames and crops shrunk with OpenCV before the family's image processor resizes them.

The transformers image processors resize a full-resolution frame or crop themselves (bicubic with
antialiasing, on torch tensors): for a 2382x1588 frame that, and LLaVA's pad-to-square copy of it,
cost several times the embedded model's own forward. Shrinking first with ``cv2.INTER_AREA`` (a box
average, the usual downscaling filter) leaves the processor little or nothing to resize. It never
changes the token layout: the size is the processor's own choice for the original image (Qwen2.5-VL's
``smart_resize``, OneVision's any-res fit, checked to give the same tiles), or, for LLaVA-1.5's fixed
square, twice its side (:data:`LLAVA_PRESHRINK`). Only downscaling is done here; an image the
processor would enlarge is left to it. ``test/model/test_preprocess_equivalence.py`` checks that
answers and existence confidences stay the same.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

# LLaVA-1.5: shrink to twice the processor's side, and let its bicubic filter do the last halving.
# Straight to the side, the box filter's softer output moved the embedded model's existence
# confidences by up to 0.08 (2 of 40 answers changed); from twice the side by up to 0.05 (none), and
# that is how the embedded model's training views were made (training/data.py: render_view).
LLAVA_PRESHRINK = 2


def _get(size: Any, key: str) -> int | None:
    """A field of a processor ``size`` (a transformers SizeDict or a plain dict), None when unset."""
    value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
    return int(value) if value else None


def area_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` resized to ``width`` x ``height`` with INTER_AREA (a box average when shrinking)."""
    if (height, width) == image.shape[:2]:
        return image
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_AREA)


def square_side(image_processor: Any) -> int | None:
    """The side LLaVA's processor resizes a square image to, or None when it would not resize it
    to a fixed square (no resize, or a size this module does not know)."""
    if not getattr(image_processor, "do_resize", False):
        return None
    size = getattr(image_processor, "size", None)
    if size is None:
        return None
    h, w, short = _get(size, "height"), _get(size, "width"), _get(size, "shortest_edge")
    if h and w:
        return h if h == w else None
    return short


def shrink_and_pad_square(image: np.ndarray, side: int, fill: tuple[int, int, int]) -> np.ndarray:
    """LLaVA-1.5's pad-to-square (centred on ``fill``) at ``side`` x ``side`` pixels, shrinking first:
    the image is area-resized to fit ``side`` and then padded, so the full-resolution square is
    never built. Returns None when the image fits already (the caller pads it as before)."""
    h, w = image.shape[:2]
    longest = max(h, w)
    if longest <= side:
        return None
    scale = side / longest
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    small = area_resize(image, new_w, new_h)
    if new_w == new_h:
        return small
    # the offsets expand_to_square uses, at the target size (within half a pixel of the full-size ones)
    return centre_on_square(small, side, fill)


def centre_on_square(image: np.ndarray, side: int, fill: tuple[int, int, int]) -> np.ndarray:
    """``image`` centred on a ``side`` x ``side`` square of ``fill`` (LLaVA-1.5's ``expand2square``
    offsets: the spare rows / columns split with the extra one after the image)."""
    h, w = image.shape[:2]
    out = np.empty((side, side, 3), dtype=np.uint8)
    out[:] = np.asarray(fill, dtype=np.uint8)
    y, x = (side - h) // 2, (side - w) // 2
    out[y : y + h, x : x + w] = image
    return out


def qwen_size(image_processor: Any, height: int, width: int) -> tuple[int, int] | None:
    """(height, width) Qwen2.5-VL's processor resizes an image to (``smart_resize``: multiples of
    patch x merge pixels between its min and max pixel counts), or None when it would not resize."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    if not getattr(image_processor, "do_resize", False):
        return None
    size = image_processor.size
    lo, hi = _get(size, "shortest_edge"), _get(size, "longest_edge")
    if not lo or not hi:
        return None
    factor = int(image_processor.patch_size) * int(image_processor.merge_size)
    return smart_resize(height, width, factor=factor, min_pixels=lo, max_pixels=hi)


def shrink_for_qwen(image_processor: Any, image: np.ndarray) -> np.ndarray:
    """``image`` area-resized to the size Qwen2.5-VL's processor picks for it, when that is smaller in
    both sides and the processor would pick the same size again for the result (so it does not
    resize a second time); otherwise unchanged."""
    h, w = image.shape[:2]
    target = qwen_size(image_processor, h, w)
    if target is None or target == (h, w) or target[0] > h or target[1] > w:
        return image
    if qwen_size(image_processor, *target) != target:
        return image
    return area_resize(image, target[1], target[0])


def onevision_fit(pinpoints: list, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """LLaVA-OneVision's processor on an image of ``height`` x ``width``: its best any-res resolution
    (``select_best_resolution``) and the (height, width) it resizes the image to before padding it
    there (``get_patch_output_size``: the aspect kept, the long side rounded up)."""
    from transformers.image_processing_utils import select_best_resolution

    best_h, best_w = select_best_resolution((height, width), pinpoints)
    sw, sh = best_w / width, best_h / height
    if sw < sh:
        return (best_h, best_w), (min(math.ceil(height * sw), best_h), best_w)
    return (best_h, best_w), (best_h, min(math.ceil(width * sh), best_w))


__all__ = [
    "LLAVA_PRESHRINK",
    "area_resize",
    "onevision_fit",
    "qwen_size",
    "shrink_and_pad_square",
    "shrink_for_qwen",
    "square_side",
]
