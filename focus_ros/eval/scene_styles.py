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

import importlib.util
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache

import cv2
import numpy as np

from .scene_colors import (
    DISTRACTOR_SATURATION,
    NEAR_HUES,
    VOCAB_HUE_RANGES,
    VOCAB_MIN_VALUE,
    ZONE_SATURATION,
    distractor_color,
    keep_out_of_vocabulary,
    object_color,
    push_out,
    rgb_of_hsv,
    saturation_cap,
    vocabulary_word,
    white_min_value,
)
from .scene_draw import draw_blobs, draw_strokes, draw_texture, shape_mask

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- the spec
NATURAL_IMAGES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "coins",
    "camera",
    "grass",
    "gravel",
    "moon",
)  # skimage.data's bundled images; scenes_eval uses others
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
    object_styles: tuple[tuple[str, float], ...] = (
        ("flat", 2.0),
        ("outline", 1.0),
        ("gradient", 1.0),
        ("texture", 1.0),
        ("blur", 1.0),
    )
    color_jitter: bool = True  # objects' RGB varies within the word (see object_color)
    lighting: float = 0.6  # share of frames with a lighting change
    jpeg: float = 0.5  # share of frames re-encoded as JPEG
    # below 50, 4:2:0 chroma washes a 10 px target out of its colour word altogether
    jpeg_quality: tuple[int, int] = (50, 90)

    def validate(self) -> None:
        for name, weights, known in (
            ("backgrounds", self.backgrounds, BACKGROUND_KINDS),
            ("object_styles", self.object_styles, OBJECT_STYLES),
        ):
            if not weights or any(k not in known or w < 0 for k, w in weights) or sum(w for _, w in weights) <= 0:
                raise ValueError(f"{name} must be (kind, weight >= 0) pairs of {known} with a positive sum")
        if not 0 <= self.distractors[0] <= self.distractors[1]:
            raise ValueError("distractors must satisfy 0 <= min <= max")
        if not 0 < self.distractor_frac[0] <= self.distractor_frac[1] <= 0.5:
            raise ValueError("distractor_frac must satisfy 0 < min <= max <= 0.5")
        if not (
            0 <= self.lighting <= 1 and 0 <= self.jpeg <= 1 and 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100
        ):
            raise ValueError("lighting and jpeg are shares in [0, 1]; jpeg_quality within [1, 100]")
        if dict(self.backgrounds).get("natural", 0) > 0:
            if not self.natural_images:
                raise ValueError("natural backgrounds need at least one image name")
            if not natural_available():
                raise NaturalImagesUnavailable(
                    "natural backgrounds come from scikit-image's bundled images (skimage.data), and scikit-image "
                    "is not installed: install it (pip install scikit-image==0.26.0) or use a StyleSpec whose "
                    "backgrounds leave out 'natural'"
                )

    def without_natural(self) -> StyleSpec:
        return replace(self, backgrounds=tuple((k, w) for k, w in self.backgrounds if k != "natural"))


VARIED = StyleSpec()


def resolve(style: str | StyleSpec) -> StyleSpec | None:
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
    img = draw_texture(rng, w, h)  # today's muted background, as the plain scenes draw it
    draw_blobs(img, rng, min(w, h))
    draw_strokes(img, rng, min(w, h))
    return np.clip(img, 0, 255).astype(np.uint8)


def _grid(w: int, h: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y (in short sides) of a low-resolution grid over the frame, ``cells`` on the long side."""
    short = min(w, h)
    gw, gh = max(2, round(cells * w / max(w, h))), max(2, round(cells * h / max(w, h)))
    xs, ys = np.meshgrid(
        np.linspace(0, w / short, gw, dtype=np.float32), np.linspace(0, h / short, gh, dtype=np.float32)
    )
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
    cols = np.asarray(
        [rgb_of_hsv(rng.uniform(), rng.uniform(0.35, 1.0), rng.uniform(0.35, 0.95)) for _ in range(k)], np.float32
    )
    low = push_out(np.stack([np.interp(t, stops, cols[:, c]) for c in range(3)], axis=-1))
    img = cv2.resize(np.clip(low + 0.5, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    return _grain(img, rng, 4)


def _bg_patches(rng: np.random.Generator, w: int, h: int, style: StyleSpec) -> np.ndarray:
    """Mid-saturation rectangles and soft patches over a muted field; each at least 0.15 of the short
    side, so no patch is object-sized."""
    short = min(w, h)
    field_ = np.asarray(
        [[rgb_of_hsv(rng.uniform(), rng.uniform(0, 0.3), rng.uniform(0.3, 0.8)) for _ in range(4)] for _ in range(3)],
        np.uint8,
    )
    img = cv2.resize(field_, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(10, 35))):
        raw = np.asarray(rgb_of_hsv(rng.uniform(), rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.9)), np.float32)
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
    acc[:] = rgb_of_hsv(rng.uniform(), rng.uniform(0.1, 0.5), rng.uniform(0.35, 0.8))
    for cells, amp in ((3, 55.0), (10, 35.0), (32, 18.0)):
        gw, gh = (cells, max(2, cells * qh // qw)) if qw >= qh else (max(2, cells * qw // qh), cells)
        acc += cv2.resize(rng.normal(0, amp, (gh, gw, 3)).astype(np.float32), (qw, qh), interpolation=cv2.INTER_CUBIC)
    acc = push_out(np.clip(acc, 0, 255))
    img = cv2.resize(np.clip(acc + 0.5, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    return _grain(img, rng, 5)


@cache
def natural_image(name: str) -> np.ndarray:
    """One of scikit-image's bundled images as RGB uint8 (read-only, loaded once per process)."""
    try:
        import skimage.data
    except ImportError as exc:
        raise NaturalImagesUnavailable("natural backgrounds need scikit-image (skimage.data)") from exc
    a = getattr(skimage.data, name)()
    a = a[0] if isinstance(a, tuple) else a  # stereo pairs: the left view
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32) / max(1e-6, float(a.max())), 0, 1) * 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    a = np.ascontiguousarray(a[..., :3])
    a.setflags(write=False)
    log.debug("natural background %s: %dx%d", name, a.shape[1], a.shape[0])
    return a


@cache
def _is_grey(name: str) -> bool:
    a = natural_image(name)
    return bool(np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2]))


def _natural_crop(
    rng: np.random.Generator, names: Sequence[str], tw: int, th: int, zoom: tuple[float, float]
) -> np.ndarray:
    """A random crop of a random image scaled to tw x th (flipped half the time; grey photos tinted)."""
    name = names[int(rng.integers(len(names)))]
    src = natural_image(name)
    ih, iw = src.shape[:2]
    scale = max(tw / iw, th / ih) * rng.uniform(*zoom)
    cw, ch = min(iw, max(2, int(round(tw / scale)))), min(ih, max(2, int(round(th / scale))))
    x0, y0 = int(rng.integers(0, iw - cw + 1)), int(rng.integers(0, ih - ch + 1))
    crop = cv2.resize(src[y0 : y0 + ch, x0 : x0 + cw], (tw, th), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if _is_grey(name):  # a grey photo: tint it
        tint = np.asarray(rgb_of_hsv(rng.uniform(), rng.uniform(0, 0.5), 1.0), np.float32) / 255
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
            img[y : y + ch, x : x + cw] = _natural_crop(rng, style.natural_images, cw, ch, (1.0, 3.0))
            y += ch
        x += cw
    return img


BACKGROUNDS = {
    "texture": _bg_texture,
    "gradient": _bg_gradient,
    "patches": _bg_patches,
    "noise": _bg_noise,
    "natural": _bg_natural,
}


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

    def fp(v: float) -> int:  # a fixed-point sub-pixel coordinate
        return int(round(v * (1 << SHIFT)))

    ang = rng.uniform(0, 180)
    r = size / 2.0
    if kind == "ellipse":  # 1.8:1 or longer: an oval, never a circle
        cv2.ellipse(m, (fp(c), fp(c)), (fp(r), fp(r / rng.uniform(1.8, 3.5))), ang, 0, 360, 255, -1, cv2.LINE_AA, SHIFT)
    elif kind == "bar":  # 2.5:1 or longer: never a square
        box = cv2.boxPoints(((c, c), (size, size / rng.uniform(2.5, 6.0)), ang))
        cv2.fillPoly(m, [np.round(box * (1 << SHIFT)).astype(np.int32)], 255, cv2.LINE_AA, SHIFT)
    elif kind == "line":
        t = math.radians(ang)
        d = np.array([math.cos(t), math.sin(t)]) * (r - 1)
        cv2.line(
            m,
            (fp(c - d[0]), fp(c - d[1])),
            (fp(c + d[0]), fp(c + d[1])),
            255,
            max(1, int(round(size * rng.uniform(0.04, 0.12)))),
            cv2.LINE_AA,
            SHIFT,
        )
    elif kind in ("arc", "ring"):
        th = max(2 if kind == "ring" else 1, int(round(size * rng.uniform(0.08, 0.18))))
        ax = (fp(r - th / 2), fp((r - th / 2) * (rng.uniform(0.5, 1.0) if kind == "arc" else 1.0)))
        start = rng.uniform(0, 360)
        span = rng.uniform(60, 220) if kind == "arc" else 360.0
        cv2.ellipse(m, (fp(c), fp(c)), ax, ang, start, start + span, 255, th, cv2.LINE_AA, SHIFT)
    elif kind == "blob":  # lumpy: 20-35 % radial harmonics
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        rad = 1 + sum(rng.uniform(0.2, 0.35) / k * np.cos(k * t + rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5))
        rad = rad / rad.max() * r
        pts = np.stack([c + rad * np.cos(t), c + rad * np.sin(t)], axis=1)
        cv2.fillPoly(m, [np.round(pts * (1 << SHIFT)).astype(np.int32)], 255, cv2.LINE_AA, SHIFT)
    else:
        raise ValueError(f"unknown distractor kind {kind!r}")
    return m.astype(np.float32) / 255.0, c, c


def paint(
    img: np.ndarray,
    cover: np.ndarray,
    ox: int,
    oy: int,
    rgb: Sequence[int],
    look: str,
    rng: np.random.Generator,
    size: float,
) -> tuple[int, int, int, int] | None:
    """Paint coverage ``cover`` (top-left at frame pixel ox, oy; clipped to the frame) in ``rgb``
    with ``look``; returns the box of the painted pixels (see the module docstring) or None when
    nothing lands in the frame. The patch must have room for the blur (its pad)."""
    core = None
    if look == "outline":  # 3 px at least: JPEG's half-resolution chroma would wash a thinner line out
        t = max(3, int(round(size * rng.uniform(0.08, 0.16))))
        inner = cv2.erode(cover, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * t + 1, 2 * t + 1)))
        cover = np.clip(cover - inner, 0.0, 1.0)
    elif look == "blur":
        cover = cv2.GaussianBlur(cover, (0, 0), max(0.6, size * rng.uniform(0.03, 0.08)))
        core = cover >= 0.5
    ph, pw = cover.shape
    col = np.empty((ph, pw, 3), np.float32)
    col[:] = np.asarray(rgb, np.float32)
    if look == "gradient":  # lighter on one side, darker on the other: up to 14 % towards white / black
        a = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:ph, 0:pw].astype(np.float32)
        t = ((xs - pw / 2) * math.cos(a) + (ys - ph / 2) * math.sin(a)) / max(1.0, size / 2)
        t = np.clip(t, -1, 1)[..., None] * rng.uniform(0.06, 0.14)
        col = np.where(t > 0, col + t * (255 - col), col * (1 + t))
    # (both bounded so that a jittered white, the lightest word, stays above white_min_value)
    elif look == "texture":  # stripes or speckle, +-10 % (and +-8 levels, so black shows it too)
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
    sub = cover[y0 - oy : y1 - oy, x0 - ox : x1 - ox, None]
    region = img[y0:y1, x0:x1].astype(np.float32)
    region += (np.clip(col[y0 - oy : y1 - oy, x0 - ox : x1 - ox], 0, 255) - region) * sub
    img[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    drawn = (core if core is not None else cover > 0)[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    ys, xs = np.nonzero(drawn)
    if len(xs) == 0:
        return None
    return (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)


def _pad(size: float) -> int:
    return 3 + int(math.ceil(0.24 * size))  # room for the widest blur (3 sigma, sigma <= 0.08 size)


def draw_styled_object(
    img: np.ndarray,
    rng: np.random.Generator,
    style: StyleSpec,
    shape: str,
    color: str,
    cx: float,
    cy: float,
    size: float,
) -> tuple[tuple[int, int, int, int], str]:
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
    kind: str  # one of DISTRACTOR_KINDS: never a vocabulary shape
    rgb: tuple[int, int, int]  # outside every vocabulary zone
    look: str
    box: tuple[int, int, int, int]


def _overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def add_distractors(
    img: np.ndarray, rng: np.random.Generator, style: StyleSpec, keep_clear: Sequence[tuple[float, float, float, float]]
) -> list[Distractor]:
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
            continue  # a crowded frame: one distractor fewer
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


__all__ = [
    "StyleSpec",
    "VARIED",
    "Distractor",
    "NaturalImagesUnavailable",
    "VOCAB_HUE_RANGES",
    "NEAR_HUES",
    "VOCAB_MIN_VALUE",
    "ZONE_SATURATION",
    "DISTRACTOR_SATURATION",
    "BACKGROUND_KINDS",
    "OBJECT_STYLES",
    "DISTRACTOR_KINDS",
    "NATURAL_IMAGES",
    "resolve",
    "natural_available",
    "natural_image",
    "vocabulary_word",
    "saturation_cap",
    "white_min_value",
    "keep_out_of_vocabulary",
    "push_out",
    "object_color",
    "distractor_color",
    "background",
    "add_distractors",
    "draw_styled_object",
    "paint",
    "lighting",
    "jpeg",
    "photometric",
]
