"""The colour vocabulary's zone for varied scenes: which colours read as a vocabulary word, the
cap that keeps backgrounds and distractors out of it, and the colours objects and distractors
are drawn in (see :mod:`.scene_styles` for why the zone exists)."""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from .scene_draw import COLORS

# ----------------------------------------------------------------------------- the vocabulary zone
# Hue ranges (degrees) in which a saturated colour is still named by the word: what a person calls
# green spans yellow-green to blue-green, orange sits in a narrow band between red and yellow. The
# vocabulary's own hues (red 0, orange 31, yellow 54, green 129, blue 230, purple 283) lie inside.
VOCAB_HUE_RANGES: dict[str, tuple[float, float]] = {
    "red": (345.0, 12.0),
    "orange": (12.0, 45.0),
    "yellow": (45.0, 68.0),
    "green": (90.0, 160.0),
    "blue": (198.0, 258.0),
    "purple": (258.0, 300.0),
}
# The value from which a saturated colour of the word's hue reads as the word: a dark orange is
# brown and a dark yellow olive (the vocabulary's are bright: value 0.98 and 0.94), while a dark
# red, green, blue or purple is still named so down to where everything turns black.
VOCAB_MIN_VALUE: dict[str, float] = {"red": 0.3, "orange": 0.6, "yellow": 0.6, "green": 0.3, "blue": 0.3, "purple": 0.3}
# Above ZONE_SATURATION a colour of a word's hue reads as the word (objects: 0.72-0.92 after jitter);
# backgrounds go up to it, as the transfer check's renderer did (0.6). A distractor is object-shaped,
# so it must be unmistakably not the word: at a word's hue it stays pastel, at most DISTRACTOR_SATURATION.
ZONE_SATURATION = 0.6
DISTRACTOR_SATURATION = 0.4
HUE_FADE = 8.0  # outside a range the saturation cap rises to 1 over this many degrees (no visible band edge)
VALUE_FADE = 0.1  # and below a word's minimum value over this much value
BLACK_MAX_VALUE = 0.25  # anything darker reads as black (the vocabulary black has value 0.04)
WHITE_MIN_VALUE = 0.8  # a near-grey brighter than this reads as white (vocabulary white: value 0.98)

# Saturated hues outside every zone, which a person names otherwise: lime, teal/cyan, magenta/pink.
NEAR_HUES: tuple[tuple[float, float], ...] = (
    (68.0 + HUE_FADE, 90.0 - HUE_FADE),
    (160.0 + HUE_FADE, 198.0 - HUE_FADE),
    (300.0 + HUE_FADE, 345.0 - HUE_FADE),
)


def range_gap(deg, lo: float, hi: float):
    """Degrees from ``deg`` (a number or an array) to the hue arc lo -> hi (counter-clockwise; 0 inside)."""
    span, off = (hi - lo) % 360.0, np.mod(np.asarray(deg, np.float64) - lo, 360.0)
    return np.where(off <= span, 0.0, np.minimum(off - span, 360.0 - off))


def word_caps(deg, v, zone: float = ZONE_SATURATION) -> dict[str, np.ndarray]:
    """Each word's saturation cap at hue ``deg`` and value ``v`` (numbers or arrays of one shape),
    ``zone`` inside the word's range."""
    out = {}
    for word, (lo, hi) in VOCAB_HUE_RANGES.items():
        f = np.maximum(
            np.minimum(1.0, range_gap(deg, lo, hi) / HUE_FADE),
            np.clip((VOCAB_MIN_VALUE[word] - np.asarray(v, np.float64)) / VALUE_FADE, 0.0, 1.0),
        )
        out[word] = zone + (1.0 - zone) * f
    return out


def saturation_cap(deg, v=1.0, zone: float = ZONE_SATURATION):
    """The highest saturation a colour of hue ``deg`` and value ``v`` may have outside the
    vocabulary zone (1: any); numbers or arrays."""
    caps = word_caps(deg, v, zone)
    out = np.minimum.reduce(list(caps.values()))
    return float(out) if np.ndim(out) == 0 else out


def white_min_value(s: float) -> float:
    """The value above which a colour of saturation ``s`` reads as white; rising with saturation so
    a pale tint (cream, pink-white) reads as white only when nearly grey."""
    return WHITE_MIN_VALUE + max(0.0, s - 0.1)


def vocabulary_word(rgb: Sequence[float], zone: float = ZONE_SATURATION) -> str | None:
    """The vocabulary word ``rgb`` (0-255) reads as, or None outside every zone; ``zone``
    DISTRACTOR_SATURATION asks the stricter question a distractor's colour must pass."""
    h, s, v = colorsys.rgb_to_hsv(*(float(c) / 255.0 for c in rgb))
    if v < BLACK_MAX_VALUE:
        return "black"
    if v > white_min_value(s):
        return "white"
    inside = [w for w, cap in word_caps(h * 360.0, v, zone).items() if s > cap]
    return min(inside, key=lambda w: float(range_gap(h * 360.0, *VOCAB_HUE_RANGES[w]))) if inside else None


def _strict_caps(deg: np.ndarray, v: np.ndarray, dh: float, dv: float) -> np.ndarray:
    """The lowest cap within +-dh degrees and +-dv value of each (deg, v): what a value rounded to
    that precision may be allowed at most."""
    caps = [saturation_cap(deg + a, v + b) for a in np.linspace(-dh, dh, 5) for b in (-dv, 0.0, dv)]
    return np.minimum.reduce(caps)


def _build_luts() -> tuple[np.ndarray, np.ndarray]:
    """Lookup tables over OpenCV's 8-bit HSV (H = degrees / 2) for :func:`keep_out_of_vocabulary`:
    the saturation cap per (H, V), and the white bound per S. Both err on the safe side (the cap is
    the lowest within +-2 degrees and +-1 level, less 3 levels; the white bound 2 levels lower), so
    a pixel written back through 8-bit HSV still lies outside the zone when measured exactly."""
    hh, vv = np.meshgrid(np.arange(180) * 2.0, np.arange(256) / 255.0, indexing="ij")
    cap = _strict_caps(hh, vv, 2.0, 1 / 255)
    sat = np.where(cap < 1.0, np.maximum(0, np.floor(cap * 255) - 3), 255).astype(np.uint8)
    white = np.array(
        [min(255, max(0, int(math.floor(white_min_value(s / 255.0) * 255)) - 2)) for s in range(256)], np.uint8
    )
    return sat, white


_SAT_CAP_LUT, _WHITE_LUT = _build_luts()  # (180, 256) and (256,)
_BLACK_FLOOR = int(math.ceil(BLACK_MAX_VALUE * 255)) + 2


def keep_out_of_vocabulary(img: np.ndarray) -> int:
    """Move every pixel of an RGB uint8 frame (in place) out of the vocabulary zone: saturation
    capped to :func:`saturation_cap`, value kept between black and white. Returns the number of
    pixels changed."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    h, s, v = cv2.split(hsv)
    v1 = cv2.max(v, _BLACK_FLOOR)  # first out of black: the cap depends on the value
    s2 = cv2.min(s, _SAT_CAP_LUT[h, v1])
    v2 = cv2.min(v1, cv2.LUT(s2, _WHITE_LUT))  # darkening never lowers a cap
    changed = (s2 != s) | (v2 != v)
    n = int(np.count_nonzero(changed))
    if n:
        back = cv2.cvtColor(cv2.merge([h, s2, v2]), cv2.COLOR_HSV2RGB)
        np.copyto(img, back, where=changed[..., None])
    return n


@lru_cache(maxsize=1)
def _fine_cap() -> np.ndarray:
    """The cap on a fine grid (0.5 degree, 1/255 value), strict within +-3.5 degrees and +-2 levels:
    at least as strict as the 8-bit table for any hue and value it rounds to."""
    return _strict_caps(*np.meshgrid(np.arange(721) * 0.5, np.arange(256) / 255.0, indexing="ij"), 3.5, 2 / 255)


def push_out(rgb: np.ndarray) -> np.ndarray:
    """The float version of :func:`keep_out_of_vocabulary` for small arrays (float32 RGB 0-255,
    any shape ... x 3), exact in hue: smooth fields (gradients, noise) are pushed out at low
    resolution before they are scaled up, so the 8-bit pass over the frame, whose 2-degree hue
    steps would show as bands across a gradient, finds next to nothing left to change."""
    flat = np.ascontiguousarray(rgb, np.float32).reshape(-1, 1, 3) / 255.0
    h, s, v = cv2.split(cv2.cvtColor(flat, cv2.COLOR_RGB2HSV))
    v = np.maximum(v, BLACK_MAX_VALUE + 0.01)
    hi = np.clip(np.round(h * 2), 0, 720).astype(np.int32)
    vi = np.clip(np.round(v * 255), 0, 255).astype(np.int32)
    cap = _fine_cap()[hi, vi]
    cap = np.where(cap < 1.0, cap - 0.02, 1.0).astype(np.float32)
    s = np.minimum(s, cap)
    v = np.minimum(v, WHITE_MIN_VALUE - 0.01 + np.maximum(0.0, s - 0.1)).astype(np.float32)
    out = cv2.cvtColor(cv2.merge([h, s, v]), cv2.COLOR_HSV2RGB) * 255.0
    return out.reshape(np.shape(rgb))


def rgb_of_hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (int(round(r * 255)), int(round(g * 255)), int(round(b * 255)))


def object_color(rng: np.random.Generator, color: str, jitter: bool) -> tuple[int, int, int]:
    """The RGB of an object of vocabulary colour ``color``: the palette's, or with ``jitter`` a
    nearby colour that still reads as the word (hue +-6 degrees, saturation -8..+5 %, value -10..+5 %),
    so a model learns the word's range rather than one RGB triple."""
    base = COLORS[color]
    if not jitter:
        return base
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in base))
    if color == "white":
        return rgb_of_hsv(rng.uniform(), rng.uniform(0.0, 0.05), rng.uniform(0.95, 1.0))
    if color == "black":
        return rgb_of_hsv(rng.uniform(), rng.uniform(0.0, 0.5), rng.uniform(0.0, 0.12))
    return rgb_of_hsv(
        h + rng.uniform(-6, 6) / 360.0, min(1.0, s * rng.uniform(0.92, 1.05)), min(1.0, v * rng.uniform(0.9, 1.05))
    )


def distractor_color(rng: np.random.Generator) -> tuple[int, int, int]:
    """A colour outside every vocabulary zone: a saturated near-vocabulary hue (lime, teal, cyan,
    magenta, pink), a pastel of a vocabulary hue, a mid-saturation colour of any hue, a dark shade
    of orange or yellow (brown, olive), or a grey."""
    for _ in range(100):
        mode = rng.random()
        if mode < 0.3:
            lo, hi = NEAR_HUES[int(rng.integers(len(NEAR_HUES)))]
            rgb = rgb_of_hsv(rng.uniform(lo, hi) / 360.0, rng.uniform(0.6, 1.0), rng.uniform(0.45, 1.0))
        elif mode < 0.5:
            lo, hi = list(VOCAB_HUE_RANGES.values())[int(rng.integers(len(VOCAB_HUE_RANGES)))]
            rgb = rgb_of_hsv(
                (lo + rng.uniform(0, (hi - lo) % 360.0)) / 360.0,
                rng.uniform(0.15, DISTRACTOR_SATURATION - 0.03),
                rng.uniform(0.4, 0.95),
            )
        elif mode < 0.7:
            rgb = rgb_of_hsv(rng.uniform(), rng.uniform(0.25, 0.6), rng.uniform(0.35, 0.95))
        elif mode < 0.85:  # dark shades of the bright words: brown, olive
            lo, hi = VOCAB_HUE_RANGES[("orange", "yellow")[int(rng.integers(2))]]
            rgb = rgb_of_hsv(rng.uniform(lo, hi) / 360.0, rng.uniform(0.5, 1.0), rng.uniform(0.3, 0.48))
        else:
            rgb = rgb_of_hsv(rng.uniform(), rng.uniform(0.0, 0.1), rng.uniform(0.3, 0.76))
        if vocabulary_word(rgb, DISTRACTOR_SATURATION) is None:
            return rgb
    raise RuntimeError("no distractor colour found")  # unreachable with these bounds
