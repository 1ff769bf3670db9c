"""Randomised looks for *training* scenes: ``SceneSpec(style="varied")`` (or a :class:`StyleSpec`).

Today's scenes (``style="plain"``) keep every background muted (HSV saturation <= 0.25), so a model
trained on them can find the objects as "the saturated blobs" and fails on frames where the
background is colourful. A varied scene breaks that shortcut while its questions stay unambiguous:

* **backgrounds** of several kinds, one drawn per scene: today's muted texture, saturated
  linear/radial gradients with hues across the wheel, mid-saturation rectangles and patches,
  blurred colour noise, and natural photographs from scikit-image's bundled data (one photo
  cropped to the frame, or a collage of crops);
* **distractors**: object-sized ellipses, bars, lines, arcs, rings and blobs (never a vocabulary
  shape) in saturated colours of hues *next to* the vocabulary's (lime, teal, cyan, magenta, pink),
  pastel versions of vocabulary hues, mid-saturation colours and greys;
* **object looks** per object (distractors draw from the same looks, so no look gives an object
  away): flat fill (today's), outline only, gradient fill, texture, blur; the vocabulary colour
  jittered a little within its word;
* per frame, a **lighting** change (a brightness ramp or vignette with a contrast change) and
  **JPEG** re-encoding noise.

**The vocabulary zone.** A colour "reads as" a vocabulary word when (HSV, hue in degrees) its value
is below :data:`BLACK_MAX_VALUE` (black), or it is a near-grey brighter than
:func:`white_min_value` (white), or its hue lies in the word's range of :data:`VOCAB_HUE_RANGES`
(fading out over :data:`HUE_FADE` degrees), its value is at least the word's
:data:`VOCAB_MIN_VALUE` (a dark orange is brown) and its saturation is above
:data:`ZONE_SATURATION` (0.6; :func:`saturation_cap`). Every colour of a vocabulary object is in
its word's zone. After the background and distractors are drawn, :func:`keep_out_of_vocabulary`
caps whatever falls inside (a photo's red flag turns a muted red, a gradient through blue a greyer
blue), so before the frame-wide lighting and JPEG steps the only pixels that read as a vocabulary
colour belong to the objects (and their anti-aliased or blurred rims). Backgrounds reach
saturation 0.6 at every hue (the transfer check's renderer did) and 1 at hues outside the words'
ranges. A distractor is object-shaped, so its colour passes a stricter test: at a word's hue it is
pastel, saturation at most :data:`DISTRACTOR_SATURATION` (0.4). Distinguishable but near: a
saturated teal or lime next to green, a pink next to red, a cream next to yellow, a brown next to
orange, a light grey next to white, a dark grey next to black.

**Boxes** stay tight around the drawn target: around every pixel the object covers, as today;
for a blurred object, around the pixels it covers at least half (its core: where the blurred
object still outweighs the background), since the faint tail of the blur is background colour.

Deterministic like the plain scenes: every random draw comes from the scene's generator, in order.
The natural backgrounds need scikit-image (``skimage.data``, whose images ship in the wheel);
without it, a style that asks for them fails with :class:`NaturalImagesUnavailable`.
"""

from __future__ import annotations

import colorsys
import importlib.util
import logging
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Sequence

import cv2
import numpy as np

from .scenes import COLORS, _blobs, _strokes, _texture, shape_mask

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- the vocabulary zone
# Hue ranges (degrees) in which a saturated colour is still named by the word: what a person calls
# green spans yellow-green to blue-green, orange sits in a narrow band between red and yellow. The
# vocabulary's own hues (red 0, orange 31, yellow 54, green 129, blue 230, purple 283) lie inside.
VOCAB_HUE_RANGES: dict[str, tuple[float, float]] = {
    "red": (345.0, 12.0), "orange": (12.0, 45.0), "yellow": (45.0, 68.0),
    "green": (90.0, 160.0), "blue": (198.0, 258.0), "purple": (258.0, 300.0),
}
# The value from which a saturated colour of the word's hue reads as the word: a dark orange is
# brown and a dark yellow olive (the vocabulary's are bright: value 0.98 and 0.94), while a dark
# red, green, blue or purple is still named so down to where everything turns black.
VOCAB_MIN_VALUE: dict[str, float] = {"red": 0.3, "orange": 0.6, "yellow": 0.6, "green": 0.3, "blue": 0.3,
                                     "purple": 0.3}
# Above ZONE_SATURATION a colour of a word's hue reads as the word (objects: 0.72-0.92 after jitter);
# backgrounds go up to it, as the transfer check's renderer did (0.6). A distractor is object-shaped,
# so it must be unmistakably not the word: at a word's hue it stays pastel, at most DISTRACTOR_SATURATION.
ZONE_SATURATION = 0.6
DISTRACTOR_SATURATION = 0.4
HUE_FADE = 8.0          # outside a range the saturation cap rises to 1 over this many degrees (no visible band edge)
VALUE_FADE = 0.1        # and below a word's minimum value over this much value
BLACK_MAX_VALUE = 0.25  # anything darker reads as black (the vocabulary black has value 0.04)
WHITE_MIN_VALUE = 0.8   # a near-grey brighter than this reads as white (vocabulary white: value 0.98)

# Saturated hues outside every zone, which a person names otherwise: lime, teal/cyan, magenta/pink.
NEAR_HUES: tuple[tuple[float, float], ...] = ((68.0 + HUE_FADE, 90.0 - HUE_FADE), (160.0 + HUE_FADE, 198.0 - HUE_FADE),
                                              (300.0 + HUE_FADE, 345.0 - HUE_FADE))


def _range_gap(deg, lo: float, hi: float):
    """Degrees from ``deg`` (a number or an array) to the hue arc lo -> hi (counter-clockwise; 0 inside)."""
    span, off = (hi - lo) % 360.0, np.mod(np.asarray(deg, np.float64) - lo, 360.0)
    return np.where(off <= span, 0.0, np.minimum(off - span, 360.0 - off))


def _word_caps(deg, v, zone: float = ZONE_SATURATION) -> dict[str, np.ndarray]:
    """Each word's saturation cap at hue ``deg`` and value ``v`` (numbers or arrays of one shape),
    ``zone`` inside the word's range."""
    out = {}
    for word, (lo, hi) in VOCAB_HUE_RANGES.items():
        f = np.maximum(np.minimum(1.0, _range_gap(deg, lo, hi) / HUE_FADE),
                       np.clip((VOCAB_MIN_VALUE[word] - np.asarray(v, np.float64)) / VALUE_FADE, 0.0, 1.0))
        out[word] = zone + (1.0 - zone) * f
    return out


def saturation_cap(deg, v=1.0, zone: float = ZONE_SATURATION):
    """The highest saturation a colour of hue ``deg`` and value ``v`` may have outside the
    vocabulary zone (1: any); numbers or arrays."""
    caps = _word_caps(deg, v, zone)
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
    inside = [w for w, cap in _word_caps(h * 360.0, v, zone).items() if s > cap]
    return min(inside, key=lambda w: float(_range_gap(h * 360.0, *VOCAB_HUE_RANGES[w]))) if inside else None


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
    white = np.array([min(255, max(0, int(math.floor(white_min_value(s / 255.0) * 255)) - 2)) for s in range(256)],
                     np.uint8)
    return sat, white


_SAT_CAP_LUT, _WHITE_LUT = _build_luts()          # (180, 256) and (256,)
_BLACK_FLOOR = int(math.ceil(BLACK_MAX_VALUE * 255)) + 2


def keep_out_of_vocabulary(img: np.ndarray) -> int:
    """Move every pixel of an RGB uint8 frame (in place) out of the vocabulary zone: saturation
    capped to :func:`saturation_cap`, value kept between black and white. Returns the number of
    pixels changed."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    h, s, v = cv2.split(hsv)
    v1 = cv2.max(v, _BLACK_FLOOR)                  # first out of black: the cap depends on the value
    s2 = cv2.min(s, _SAT_CAP_LUT[h, v1])
    v2 = cv2.min(v1, cv2.LUT(s2, _WHITE_LUT))     # darkening never lowers a cap
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


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
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
        return _rgb(rng.uniform(), rng.uniform(0.0, 0.05), rng.uniform(0.95, 1.0))
    if color == "black":
        return _rgb(rng.uniform(), rng.uniform(0.0, 0.5), rng.uniform(0.0, 0.12))
    return _rgb(h + rng.uniform(-6, 6) / 360.0, min(1.0, s * rng.uniform(0.92, 1.05)),
                min(1.0, v * rng.uniform(0.9, 1.05)))


def distractor_color(rng: np.random.Generator) -> tuple[int, int, int]:
    """A colour outside every vocabulary zone: a saturated near-vocabulary hue (lime, teal, cyan,
    magenta, pink), a pastel of a vocabulary hue, a mid-saturation colour of any hue, a dark shade
    of orange or yellow (brown, olive), or a grey."""
    for _ in range(100):
        mode = rng.random()
        if mode < 0.3:
            lo, hi = NEAR_HUES[int(rng.integers(len(NEAR_HUES)))]
            rgb = _rgb(rng.uniform(lo, hi) / 360.0, rng.uniform(0.6, 1.0), rng.uniform(0.45, 1.0))
        elif mode < 0.5:
            lo, hi = list(VOCAB_HUE_RANGES.values())[int(rng.integers(len(VOCAB_HUE_RANGES)))]
            rgb = _rgb((lo + rng.uniform(0, (hi - lo) % 360.0)) / 360.0,
                       rng.uniform(0.15, DISTRACTOR_SATURATION - 0.03), rng.uniform(0.4, 0.95))
        elif mode < 0.7:
            rgb = _rgb(rng.uniform(), rng.uniform(0.25, 0.6), rng.uniform(0.35, 0.95))
        elif mode < 0.85:         # dark shades of the bright words: brown, olive
            lo, hi = VOCAB_HUE_RANGES[("orange", "yellow")[int(rng.integers(2))]]
            rgb = _rgb(rng.uniform(lo, hi) / 360.0, rng.uniform(0.5, 1.0), rng.uniform(0.3, 0.48))
        else:
            rgb = _rgb(rng.uniform(), rng.uniform(0.0, 0.1), rng.uniform(0.3, 0.76))
        if vocabulary_word(rgb, DISTRACTOR_SATURATION) is None:
            return rgb
    raise RuntimeError("no distractor colour found")        # unreachable with these bounds


# ----------------------------------------------------------------------------- the spec
NATURAL_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "coins", "camera", "grass",
                  "gravel", "moon")     # skimage.data's bundled images; scenes_eval uses others
BACKGROUND_KINDS = ("texture", "gradient", "patches", "noise", "natural")
OBJECT_STYLES = ("flat", "outline", "gradient", "texture", "blur")
DISTRACTOR_KINDS = ("ellipse", "bar", "line", "arc", "ring", "blob")


class NaturalImagesUnavailable(RuntimeError):
    """A style asks for natural backgrounds and scikit-image is not installed."""


def natural_available() -> bool:
    return importlib.util.find_spec("skimage") is not None


@dataclass(frozen=True)
class StyleSpec:
    """What a varied scene randomises; ``SceneSpec(style=StyleSpec(...))`` uses it, ``"varied"``
    the defaults."""

    # each kind equally likely: no look of the background is typical
    backgrounds: tuple[tuple[str, float], ...] = tuple((k, 1.0) for k in BACKGROUND_KINDS)
    natural_images: tuple[str, ...] = NATURAL_IMAGES
    # the transfer check's renderer drew 25 distractors a frame; training sees fewer and more
    distractors: tuple[int, int] = (12, 40)
    # distractor size / short side: the objects' whole range, so size never tells them apart
    distractor_frac: tuple[float, float] = (0.008, 0.12)
    # flat twice as likely as each other look: the benchmark's objects are flat
    object_styles: tuple[tuple[str, float], ...] = (("flat", 2.0), ("outline", 1.0), ("gradient", 1.0),
                                                    ("texture", 1.0), ("blur", 1.0))
    color_jitter: bool = True           # objects' RGB varies within the word (see object_color)
    lighting: float = 0.6               # share of frames with a lighting change
    jpeg: float = 0.5                   # share of frames re-encoded as JPEG
    # below 50, 4:2:0 chroma washes a 10 px target out of its colour word altogether
    jpeg_quality: tuple[int, int] = (50, 90)

    def validate(self) -> None:
        for name, weights, known in (("backgrounds", self.backgrounds, BACKGROUND_KINDS),
                                     ("object_styles", self.object_styles, OBJECT_STYLES)):
            if not weights or any(k not in known or w < 0 for k, w in weights) or sum(w for _, w in weights) <= 0:
                raise ValueError(f"{name} must be (kind, weight >= 0) pairs of {known} with a positive sum")
        if not 0 <= self.distractors[0] <= self.distractors[1]:
            raise ValueError("distractors must satisfy 0 <= min <= max")
        if not 0 < self.distractor_frac[0] <= self.distractor_frac[1] <= 0.5:
            raise ValueError("distractor_frac must satisfy 0 < min <= max <= 0.5")
        if not (0 <= self.lighting <= 1 and 0 <= self.jpeg <= 1
                and 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100):
            raise ValueError("lighting and jpeg are shares in [0, 1]; jpeg_quality within [1, 100]")
        if dict(self.backgrounds).get("natural", 0) > 0:
            if not self.natural_images:
                raise ValueError("natural backgrounds need at least one image name")
            if not natural_available():
                raise NaturalImagesUnavailable(
                    "natural backgrounds come from scikit-image's bundled images (skimage.data), and scikit-image "
                    "is not installed: install it (pip install scikit-image==0.26.0) or use a StyleSpec whose "
                    "backgrounds leave out 'natural'")

    def without_natural(self) -> "StyleSpec":
        return replace(self, backgrounds=tuple((k, w) for k, w in self.backgrounds if k != "natural"))


VARIED = StyleSpec()


def resolve(style: "str | StyleSpec") -> StyleSpec | None:
    """The StyleSpec a SceneSpec's ``style`` stands for; None for the plain scenes."""
    if isinstance(style, StyleSpec):
        return style
    if style == "plain":
        return None
    if style == "varied":
        return VARIED
    raise ValueError(f"style must be 'plain', 'varied' or a StyleSpec, got {style!r}")


def _pick(rng: np.random.Generator, weighted: Sequence[tuple[str, float]]) -> str:
    names = [k for k, _ in weighted]
    p = np.asarray([w for _, w in weighted], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


# ----------------------------------------------------------------------------- backgrounds
def _grain(img: np.ndarray, rng: np.random.Generator, amp: int) -> np.ndarray:
    """Fine luminance noise, +-amp: a 256 px tile of noise repeated (cheaper than a frame of draws,
    and no eye finds the period in noise)."""
    h, w = img.shape[:2]
    tile = rng.integers(-amp, amp + 1, (256, 256, 1), dtype=np.int16)
    noise = np.tile(tile, (h // 256 + 1, w // 256 + 1, 3))[:h, :w]
    pos = np.clip(noise, 0, None).astype(np.uint8)
    neg = np.clip(-noise, 0, None).astype(np.uint8)
    return cv2.subtract(cv2.add(img, pos), neg)


def _bg_texture(rng: np.random.Generator, w: int, h: int, style: StyleSpec) -> np.ndarray:
    img = _texture(rng, w, h)           # today's muted background, as the plain scenes draw it
    _blobs(img, rng, min(w, h))
    _strokes(img, rng, min(w, h))
    return np.clip(img, 0, 255).astype(np.uint8)


def _grid(w: int, h: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y (in short sides) of a low-resolution grid over the frame, ``cells`` on the long side."""
    short = min(w, h)
    gw, gh = max(2, round(cells * w / max(w, h))), max(2, round(cells * h / max(w, h)))
    xs, ys = np.meshgrid(np.linspace(0, w / short, gw, dtype=np.float32),
                         np.linspace(0, h / short, gh, dtype=np.float32))
    return xs, ys


def _bg_gradient(rng: np.random.Generator, w: int, h: int, style: StyleSpec) -> np.ndarray:
    """A linear or radial gradient through 2-4 colours of any hue, saturation up to 1."""
    xs, ys = _grid(w, h, 48)
    if rng.random() < 0.5:
        a = rng.uniform(0, 2 * math.pi)
        t = xs * math.cos(a) + ys * math.sin(a)
    else:
        t = np.hypot(xs - rng.uniform(-0.3, 1.5), ys - rng.uniform(-0.3, 1.2))
    warp = cv2.resize(rng.normal(0, 0.08, (3, 3)).astype(np.float32), t.shape[::-1], interpolation=cv2.INTER_CUBIC)
    t = t + warp
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    k = int(rng.integers(2, 5))
    stops = np.concatenate([[0.0], np.sort(rng.uniform(0, 1, k - 2)), [1.0]])
    cols = np.asarray([_rgb(rng.uniform(), rng.uniform(0.35, 1.0), rng.uniform(0.35, 0.95)) for _ in range(k)],
                      np.float32)
    low = push_out(np.stack([np.interp(t, stops, cols[:, c]) for c in range(3)], axis=-1))
    img = cv2.resize(np.clip(low + 0.5, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    return _grain(img, rng, 4)


def _bg_patches(rng: np.random.Generator, w: int, h: int, style: StyleSpec) -> np.ndarray:
    """Mid-saturation rectangles and soft patches over a muted field; each at least 0.15 of the short
    side, so no patch is object-sized."""
    short = min(w, h)
    field_ = np.asarray([[_rgb(rng.uniform(), rng.uniform(0, 0.3), rng.uniform(0.3, 0.8)) for _ in range(4)]
                         for _ in range(3)], np.uint8)
    img = cv2.resize(field_, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(10, 35))):
        raw = np.asarray(_rgb(rng.uniform(), rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.9)), np.float32)
        col = tuple(int(c) for c in push_out(raw) + 0.5)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        a, b = rng.uniform(0.15, 0.6, 2) * short / 2
        ang = rng.uniform(0, 180)
        if rng.random() < 0.7:
            box = cv2.boxPoints(((cx, cy), (2 * a, 2 * b), ang))
            cv2.fillPoly(img, [np.round(box * 16).astype(np.int32)], col, cv2.LINE_AA, 4)
        else:
            cv2.ellipse(img, (int(cx), int(cy)), (int(a), int(b)), ang, 0, 360, col, -1, cv2.LINE_AA)
    return _grain(img, rng, 5)


def _bg_noise(rng: np.random.Generator, w: int, h: int, style: StyleSpec) -> np.ndarray:
    """Blurred colour noise at three scales around a base colour (saturation up to about 0.7)."""
    qw, qh = max(8, w // 4), max(8, h // 4)
    acc = np.empty((qh, qw, 3), np.float32)
    acc[:] = _rgb(rng.uniform(), rng.uniform(0.1, 0.5), rng.uniform(0.35, 0.8))
    for cells, amp in ((3, 55.0), (10, 35.0), (32, 18.0)):
        gw, gh = (cells, max(2, cells * qh // qw)) if qw >= qh else (max(2, cells * qw // qh), cells)
        acc += cv2.resize(rng.normal(0, amp, (gh, gw, 3)).astype(np.float32), (qw, qh), interpolation=cv2.INTER_CUBIC)
    acc = push_out(np.clip(acc, 0, 255))
    img = cv2.resize(np.clip(acc + 0.5, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    return _grain(img, rng, 5)


@lru_cache(maxsize=None)
def natural_image(name: str) -> np.ndarray:
    """One of scikit-image's bundled images as RGB uint8 (read-only, loaded once per process)."""
    try:
        import skimage.data
    except ImportError as exc:
        raise NaturalImagesUnavailable("natural backgrounds need scikit-image (skimage.data)") from exc
    a = getattr(skimage.data, name)()
    a = a[0] if isinstance(a, tuple) else a                 # stereo pairs: the left view
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32) / max(1e-6, float(a.max())), 0, 1) * 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    a = np.ascontiguousarray(a[..., :3])
    a.setflags(write=False)
    log.debug("natural background %s: %dx%d", name, a.shape[1], a.shape[0])
    return a


@lru_cache(maxsize=None)
def _is_grey(name: str) -> bool:
    a = natural_image(name)
    return bool(np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2]))


def _natural_crop(rng: np.random.Generator, names: Sequence[str], tw: int, th: int,
                  zoom: tuple[float, float]) -> np.ndarray:
    """A random crop of a random image scaled to tw x th (flipped half the time; grey photos tinted)."""
    name = names[int(rng.integers(len(names)))]
    src = natural_image(name)
    ih, iw = src.shape[:2]
    scale = max(tw / iw, th / ih) * rng.uniform(*zoom)
    cw, ch = min(iw, max(2, int(round(tw / scale)))), min(ih, max(2, int(round(th / scale))))
    x0, y0 = int(rng.integers(0, iw - cw + 1)), int(rng.integers(0, ih - ch + 1))
    crop = cv2.resize(src[y0:y0 + ch, x0:x0 + cw], (tw, th), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if _is_grey(name):                                      # a grey photo: tint it
        tint = np.asarray(_rgb(rng.uniform(), rng.uniform(0, 0.5), 1.0), np.float32) / 255
        crop = cv2.transform(np.ascontiguousarray(crop), np.diag(tint))
    return crop


def _bg_natural(rng: np.random.Generator, w: int, h: int, style: StyleSpec) -> np.ndarray:
    """One photo cropped to the frame, or a collage of crops in columns and rows of random sizes."""
    short = min(w, h)
    if rng.random() < 0.5:
        return _natural_crop(rng, style.natural_images, w, h, (1.0, 1.6))
    img = np.empty((h, w, 3), np.uint8)
    x = 0
    while x < w:
        cw = min(w - x, int(rng.uniform(0.2, 0.6) * short))
        y = 0
        while y < h:
            ch = min(h - y, int(rng.uniform(0.2, 0.6) * short))
            img[y:y + ch, x:x + cw] = _natural_crop(rng, style.natural_images, cw, ch, (1.0, 3.0))
            y += ch
        x += cw
    return img


BACKGROUNDS = {"texture": _bg_texture, "gradient": _bg_gradient, "patches": _bg_patches, "noise": _bg_noise,
               "natural": _bg_natural}


def background(rng: np.random.Generator, w: int, h: int, style: StyleSpec) -> tuple[str, np.ndarray]:
    kind = _pick(rng, style.backgrounds)
    return kind, BACKGROUNDS[kind](rng, w, h, style)


# ----------------------------------------------------------------------------- painting
SHIFT = 4


def _distractor_cover(rng: np.random.Generator, kind: str, size: float, pad: int) -> tuple[np.ndarray, float, float]:
    """Coverage (float32 in [0, 1]) of an off-vocabulary shape about ``size`` px across, and its centre."""
    side = int(math.ceil(size)) + 2 * pad
    c = side / 2.0
    m = np.zeros((side, side), np.uint8)

    def fp(v: float) -> int:                             # a fixed-point sub-pixel coordinate
        return int(round(v * (1 << SHIFT)))

    ang = rng.uniform(0, 180)
    r = size / 2.0
    if kind == "ellipse":                                # 1.8:1 or longer: an oval, never a circle
        cv2.ellipse(m, (fp(c), fp(c)), (fp(r), fp(r / rng.uniform(1.8, 3.5))), ang, 0, 360, 255, -1, cv2.LINE_AA, SHIFT)
    elif kind == "bar":                                  # 2.5:1 or longer: never a square
        box = cv2.boxPoints(((c, c), (size, size / rng.uniform(2.5, 6.0)), ang))
        cv2.fillPoly(m, [np.round(box * (1 << SHIFT)).astype(np.int32)], 255, cv2.LINE_AA, SHIFT)
    elif kind == "line":
        t = math.radians(ang)
        d = np.array([math.cos(t), math.sin(t)]) * (r - 1)
        cv2.line(m, (fp(c - d[0]), fp(c - d[1])), (fp(c + d[0]), fp(c + d[1])), 255,
                 max(1, int(round(size * rng.uniform(0.04, 0.12)))), cv2.LINE_AA, SHIFT)
    elif kind in ("arc", "ring"):
        th = max(2 if kind == "ring" else 1, int(round(size * rng.uniform(0.08, 0.18))))
        ax = (fp(r - th / 2), fp((r - th / 2) * (rng.uniform(0.5, 1.0) if kind == "arc" else 1.0)))
        start = rng.uniform(0, 360)
        span = rng.uniform(60, 220) if kind == "arc" else 360.0
        cv2.ellipse(m, (fp(c), fp(c)), ax, ang, start, start + span, 255, th, cv2.LINE_AA, SHIFT)
    elif kind == "blob":                                 # lumpy: 20-35 % radial harmonics
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        rad = 1 + sum(rng.uniform(0.2, 0.35) / k * np.cos(k * t + rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5))
        rad = rad / rad.max() * r
        pts = np.stack([c + rad * np.cos(t), c + rad * np.sin(t)], axis=1)
        cv2.fillPoly(m, [np.round(pts * (1 << SHIFT)).astype(np.int32)], 255, cv2.LINE_AA, SHIFT)
    else:
        raise ValueError(f"unknown distractor kind {kind!r}")
    return m.astype(np.float32) / 255.0, c, c


def paint(img: np.ndarray, cover: np.ndarray, ox: int, oy: int, rgb: Sequence[int], look: str,
          rng: np.random.Generator, size: float) -> tuple[int, int, int, int] | None:
    """Paint coverage ``cover`` (top-left at frame pixel ox, oy; clipped to the frame) in ``rgb``
    with ``look``; returns the box of the painted pixels (see the module docstring) or None when
    nothing lands in the frame. The patch must have room for the blur (its pad)."""
    core = None
    if look == "outline":         # 3 px at least: JPEG's half-resolution chroma would wash a thinner line out
        t = max(3, int(round(size * rng.uniform(0.08, 0.16))))
        inner = cv2.erode(cover, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * t + 1, 2 * t + 1)))
        cover = np.clip(cover - inner, 0.0, 1.0)
    elif look == "blur":
        cover = cv2.GaussianBlur(cover, (0, 0), max(0.6, size * rng.uniform(0.03, 0.08)))
        core = cover >= 0.5
    ph, pw = cover.shape
    col = np.empty((ph, pw, 3), np.float32)
    col[:] = np.asarray(rgb, np.float32)
    if look == "gradient":        # lighter on one side, darker on the other: up to 14 % towards white / black
        a = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:ph, 0:pw].astype(np.float32)
        t = ((xs - pw / 2) * math.cos(a) + (ys - ph / 2) * math.sin(a)) / max(1.0, size / 2)
        t = np.clip(t, -1, 1)[..., None] * rng.uniform(0.06, 0.14)
        col = np.where(t > 0, col + t * (255 - col), col * (1 + t))
    # (both bounded so that a jittered white, the lightest word, stays above white_min_value)
    elif look == "texture":       # stripes or speckle, +-10 % (and +-8 levels, so black shows it too)
        ys, xs = np.mgrid[0:ph, 0:pw].astype(np.float32)
        if rng.random() < 0.5:
            a = rng.uniform(0, math.pi)
            p = np.sin((xs * math.cos(a) + ys * math.sin(a)) * 2 * math.pi / rng.uniform(3, 8))
        else:
            p = rng.uniform(-1, 1, (ph, pw)).astype(np.float32)
        p = p[..., None] * 0.1
        col = col * (1 + p) + 80 * p
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(0, ox), max(0, oy), min(w, ox + pw), min(h, oy + ph)
    if x0 >= x1 or y0 >= y1:
        return None
    sub = cover[y0 - oy:y1 - oy, x0 - ox:x1 - ox, None]
    region = img[y0:y1, x0:x1].astype(np.float32)
    region += (np.clip(col[y0 - oy:y1 - oy, x0 - ox:x1 - ox], 0, 255) - region) * sub
    img[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    drawn = (core if core is not None else cover > 0)[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    ys, xs = np.nonzero(drawn)
    if len(xs) == 0:
        return None
    return (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)


def _pad(size: float) -> int:
    return 3 + int(math.ceil(0.24 * size))        # room for the widest blur (3 sigma, sigma <= 0.08 size)


def draw_styled_object(img: np.ndarray, rng: np.random.Generator, style: StyleSpec, shape: str, color: str,
                       cx: float, cy: float, size: float) -> tuple[tuple[int, int, int, int], str]:
    """Draw a vocabulary object with a look drawn from ``style``; returns its box and the look."""
    look = _pick(rng, style.object_styles)
    rgb = object_color(rng, color, style.color_jitter)
    cover, mx, my = shape_mask(shape, size, _pad(size))
    box = paint(img, cover, int(round(cx - mx)), int(round(cy - my)), rgb, look, rng, size)
    if box is None:
        raise ValueError("object does not fit in the frame")
    return box, look


@dataclass(frozen=True)
class Distractor:
    kind: str                          # one of DISTRACTOR_KINDS: never a vocabulary shape
    rgb: tuple[int, int, int]          # outside every vocabulary zone
    look: str
    box: tuple[int, int, int, int]


def _overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def add_distractors(img: np.ndarray, rng: np.random.Generator, style: StyleSpec,
                    keep_clear: Sequence[tuple[float, float, float, float]]) -> list[Distractor]:
    """Draw off-vocabulary shapes in off-vocabulary colours, each clear of every ``keep_clear``
    box (the objects' places), so no distractor touches or hides an object. Sizes are log-uniform
    over ``distractor_frac``: like the objects, most are small."""
    h, w = img.shape[:2]
    short = min(w, h)
    lo, hi = (math.log(f * short) for f in style.distractor_frac)
    out = []
    for _ in range(int(rng.integers(style.distractors[0], style.distractors[1] + 1))):
        size = max(5.0, math.exp(rng.uniform(lo, hi)))
        kind = DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))]
        for _ in range(20):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            reach = size / 2 + _pad(size)
            if not any(_overlaps((cx - reach, cy - reach, cx + reach, cy + reach), k) for k in keep_clear):
                break
        else:
            continue                                     # a crowded frame: one distractor fewer
        rgb = distractor_color(rng)
        look = _pick(rng, style.object_styles)
        cover, mx, my = _distractor_cover(rng, kind, size, _pad(size))
        box = paint(img, cover, int(round(cx - mx)), int(round(cy - my)), rgb, look, rng, size)
        if box is not None:
            out.append(Distractor(kind, rgb, look, box))
    return out


# ----------------------------------------------------------------------------- the frame
def lighting(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A brightness ramp (light from one side) or a vignette, times a global gain, with a contrast
    change: gain 0.9-1.05, +-5-15 % across the frame, contrast 0.9-1.1 about mid-grey. Mostly
    darker, since brightening clips whites and a grey background would then match white; at most
    about 30 % darker, so a dimmed yellow is still yellow, not olive (VOCAB_MIN_VALUE)."""
    h, w = img.shape[:2]
    gy, gx = np.mgrid[0:9, 0:9].astype(np.float32) / 8 - 0.5
    amount, g0, contrast = rng.uniform(0.05, 0.15), rng.uniform(0.9, 1.05), rng.uniform(0.9, 1.1)
    if rng.random() < 0.5:
        a = rng.uniform(0, 2 * math.pi)
        gain = 1 + amount * 2 * (gx * math.cos(a) + gy * math.sin(a))
    else:
        gain = 1 + amount * (0.5 - 2 * np.hypot(gx - rng.uniform(-0.3, 0.3), gy - rng.uniform(-0.3, 0.3)))
    g = cv2.resize((gain * g0 * contrast).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    out = img.astype(np.float32)
    out *= g[..., None]
    out += 128.0 * (1 - contrast)
    return np.clip(out, 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Re-encode as JPEG (4:2:0, as cameras write) and decode: blocking and chroma bleeding."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def photometric(img: np.ndarray, rng: np.random.Generator, style: StyleSpec) -> np.ndarray:
    """The frame-wide steps, after the objects: lighting, then JPEG (a camera's order)."""
    if rng.random() < style.lighting:
        img = lighting(img, rng)
    if rng.random() < style.jpeg:
        img = jpeg(img, int(rng.integers(style.jpeg_quality[0], style.jpeg_quality[1] + 1)))
    return img


__all__ = ["StyleSpec", "VARIED", "Distractor", "NaturalImagesUnavailable", "VOCAB_HUE_RANGES", "NEAR_HUES",
           "VOCAB_MIN_VALUE", "ZONE_SATURATION", "DISTRACTOR_SATURATION", "BACKGROUND_KINDS", "OBJECT_STYLES",
           "DISTRACTOR_KINDS", "NATURAL_IMAGES", "resolve", "natural_available", "natural_image", "vocabulary_word",
           "saturation_cap", "white_min_value", "keep_out_of_vocabulary", "push_out", "object_color",
           "distractor_color", "background", "add_distractors", "draw_styled_object", "paint", "lighting", "jpeg",
           "photometric"]
