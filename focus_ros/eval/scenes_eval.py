"""A second scene renderer, **for evaluation only: never used in training.**

It checks whether a model trained on :mod:`focus_ros.eval.scenes` (plain or varied) finds and
names objects drawn by *other* code: the same vocabulary (colour words, shapes, question templates
and answer words, imported from :mod:`focus_ros.eval.scenes`, so benchmarks score it unchanged),
the same frame and target size distributions (a :class:`~focus_ros.eval.scenes.SceneSpec`), and the
same on-disk format (:func:`write_eval_scenes` goes through ``scenes.write_scenes``, so
``focus-bench --scenes DIR`` reads it), but nothing of the training renderer's drawing:

* its own palette, :data:`EVAL_PALETTE`: other RGB values for each colour word, still what a person
  calls that colour (crimson-leaning red, forest green, azure-leaning blue, golden yellow...);
* shapes drawn with PIL's ImageDraw at 4x and box-filtered down (the trainer's are OpenCV
  fixed-point polygons), with their own proportions and a small rotation; some filled with a
  shaded or rimmed look;
* its own backgrounds: fractal clouds, gradients with soft spots, rotated checkers and stripes, and
  collages of scikit-image photos that the training styles never use (:data:`EVAL_NATURAL`);
* clutter of off-vocabulary objects (ovals, crescents, scribbles, rings, bars, arcs) in named
  colours outside the vocabulary (teal, pink, lime, brown, ...), sized like the targets;
* sensor noise and a slight defocus per frame.

Questions stay unambiguous by this module's own rule, not the training one's: before the targets
are drawn, every pixel of background and clutter is at least :data:`KEEP_AWAY` (RGB distance) from
every vocabulary colour of both palettes; what lands closer is moved towards grey until it is not
(:func:`keep_away`).
Boxes are tight around every pixel a target covers. Scene ``i`` of seed ``s`` is deterministic and
drawn from a random stream of its own (:data:`EVAL_STREAM`), unrelated to training scene ``i``.

The trainer (:mod:`focus_ros.training`) must never import this module; a test guards it.
"""

from __future__ import annotations

import colorsys
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from .scenes import COLORS, SHAPES, Scene, SceneObject, SceneSpec, draw_questions, write_scenes

# Other RGB for the same words: each at least 20 away from the training palette's, and still read
# as the word (hue inside the word's range, saturated; white and black off-neutral).
EVAL_PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (196, 22, 46),
    "green": (46, 140, 36),
    "blue": (24, 96, 208),
    "yellow": (250, 204, 0),
    "purple": (118, 48, 160),
    "orange": (240, 118, 0),
    "white": (236, 238, 230),
    "black": (34, 30, 38),
}
# Clutter colours, named by what a person calls them, none a vocabulary word.
CLUTTER_COLORS: dict[str, tuple[int, int, int]] = {
    "teal": (0, 128, 128),
    "cyan": (60, 200, 215),
    "turquoise": (64, 214, 190),
    "pink": (244, 150, 190),
    "hot pink": (236, 82, 150),
    "lime": (168, 222, 56),
    "mint": (150, 222, 176),
    "brown": (120, 72, 36),
    "tan": (204, 178, 130),
    "beige": (222, 208, 168),
    "grey": (128, 128, 128),
    "slate": (96, 108, 140),
    "lavender": (196, 176, 226),
    "olive drab": (108, 120, 52),
    "sky": (150, 200, 240),
    "peach": (250, 196, 160),
}
EVAL_NATURAL = ("stereo_motorcycle", "immunohistochemistry", "brick", "cell", "clock")  # none of the trainer's
EVAL_BACKGROUNDS = ("clouds", "gradient", "checker", "stripes", "collage")
CLUTTER_KINDS = ("oval", "crescent", "scribble", "ring", "bar", "arc")
TARGET_LOOKS = ("flat", "rim", "shaded")
KEEP_AWAY = 80.0  # RGB distance: twice the 40 within which a pixel is taken for a palette colour
EVAL_STREAM = 0x45564C  # "EVL": third entry of the seed sequence, so no stream is shared with training
SUPERSAMPLE = 4


class CollageUnavailable(RuntimeError):
    """The collage background needs scikit-image, which is not installed."""


@dataclass(frozen=True)
class EvalSpec:
    """What the evaluation renderer draws; the defaults are the benchmark's sizes."""

    scene: SceneSpec = SceneSpec()  # frame and target sizes, object counts (style unused)
    backgrounds: tuple[str, ...] = EVAL_BACKGROUNDS  # one drawn per frame, equally likely
    clutter: tuple[int, int] = (20, 40)  # the transfer check drew 25 distractors a frame

    def validate(self) -> None:
        self.scene.validate()
        if self.scene.style != "plain":
            raise ValueError("the evaluation renderer has its own look: its SceneSpec's style must be 'plain'")
        if not self.backgrounds or any(b not in EVAL_BACKGROUNDS for b in self.backgrounds):
            raise ValueError(f"backgrounds must be a non-empty subset of {EVAL_BACKGROUNDS}")
        if not 0 <= self.clutter[0] <= self.clutter[1]:
            raise ValueError("clutter must satisfy 0 <= min <= max")
        if "collage" in self.backgrounds and importlib.util.find_spec("skimage") is None:
            raise CollageUnavailable(
                "the collage background uses scikit-image's bundled photos (skimage.data); "
                "install it (pip install scikit-image==0.26.0) or leave 'collage' out of "
                "EvalSpec.backgrounds"
            )


@dataclass(frozen=True)
class Clutter:
    kind: str
    name: str  # the colour's name (CLUTTER_COLORS)
    box: tuple[int, int, int, int]


# ----------------------------------------------------------------------------- colours
_VOCAB_RGB = np.asarray(list(EVAL_PALETTE.values()) + list(COLORS.values()), np.float32)


def vocab_distance(rgb: np.ndarray) -> np.ndarray:
    """RGB distance from each colour (... x 3) to the nearest vocabulary colour of either palette."""
    p = np.asarray(rgb, np.float32)[..., None, :]
    return np.sqrt(((p - _VOCAB_RGB) ** 2).sum(axis=-1)).min(axis=-1)


@lru_cache(maxsize=1)
def _near_table() -> np.ndarray:
    """For each 8x8x8 cube of RGB: may a colour in it lie within KEEP_AWAY of the vocabulary? (the
    cube's centre within KEEP_AWAY + its half diagonal). A cheap first pass over a whole frame."""
    c = np.arange(32, dtype=np.float32) * 8 + 3.5
    grid = np.stack(np.meshgrid(c, c, c, indexing="ij"), axis=-1).reshape(-1, 3)
    return vocab_distance(grid) < KEEP_AWAY + 4 * math.sqrt(3) + 0.5


_GREY = np.full(3, 128.0, np.float32)  # 87+ from every vocabulary colour: where pushed colours head


def _push_away(p: np.ndarray) -> np.ndarray:
    """Colours (N x 3 float) moved towards mid-grey, in tenths of the way, until they are
    KEEP_AWAY from every vocabulary colour: a near-red turns greyish pink, a near-white light grey,
    a near-black dark grey; the hue never swings the way pushing straight away would."""
    p = p.copy()
    todo = np.arange(len(p))
    start = p.copy()
    for t in np.linspace(0.1, 1.0, 10):
        todo = todo[vocab_distance(p[todo]) < KEEP_AWAY]
        if len(todo) == 0:
            break
        p[todo] = start[todo] + (_GREY - start[todo]) * t
    return p


def keep_away(img: np.ndarray) -> int:
    """Move every pixel (RGB uint8, in place) within KEEP_AWAY of a vocabulary colour out of reach
    (:func:`_push_away`). Pixels are screened by a table over 8x8x8 cubes of RGB, then measured
    exactly once per distinct colour. Returns the number of pixels moved."""
    flat = img.reshape(-1, 3)
    r, g, b = (flat[:, i].astype(np.int32) for i in range(3))
    cand = np.nonzero(_near_table()[(r >> 3) << 10 | (g >> 3) << 5 | (b >> 3)])[0]
    if len(cand) == 0:
        return 0
    uniq, inv = np.unique((r[cand] << 16) | (g[cand] << 8) | b[cand], return_inverse=True)
    cols = np.stack([uniq >> 16, (uniq >> 8) & 255, uniq & 255], axis=1).astype(np.float32)
    fixed = np.round(_push_away(cols)).astype(np.uint8)
    moved_u = (fixed != cols.astype(np.uint8)).any(axis=1)
    moved = moved_u[inv.ravel()]
    flat[cand[moved]] = fixed[inv.ravel()[moved]]
    return int(moved.sum())


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.asarray(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32) * 255


def _bg_colour(rng: np.random.Generator) -> np.ndarray:
    """A background colour: any hue, saturation up to 0.6 (the transfer check's), KEEP_AWAY from the vocabulary."""
    for _ in range(200):
        c = _hsv(rng.uniform(), rng.uniform(0.05, 0.6), rng.uniform(0.25, 0.88))
        if vocab_distance(c) >= KEEP_AWAY:
            return c
    return np.full(3, 128.0, np.float32)


def _clutter_colour(rng: np.random.Generator) -> tuple[str, np.ndarray]:
    names = list(CLUTTER_COLORS)
    name = names[int(rng.integers(len(names)))]
    base = np.asarray(CLUTTER_COLORS[name], np.float32)
    for _ in range(20):
        c = np.clip(base * rng.uniform(0.9, 1.08) + rng.normal(0, 6, 3), 0, 255)
        if vocab_distance(c) >= KEEP_AWAY:
            return name, c
    return name, base


# ----------------------------------------------------------------------------- backgrounds
def _upsample(a: np.ndarray, w: int, h: int, resample=Image.BILINEAR) -> np.ndarray:
    """Resize an H x W (x C) float field with PIL, channel by channel (mode F)."""
    if a.ndim == 2:
        return np.asarray(Image.fromarray(a.astype(np.float32), "F").resize((w, h), resample))
    return np.stack([_upsample(a[..., i], w, h, resample) for i in range(a.shape[2])], axis=-1)


def _ramp(t: np.ndarray, colours: Sequence[np.ndarray]) -> np.ndarray:
    """Map a field in [0, 1] through evenly spaced colours."""
    xs = np.linspace(0, 1, len(colours))
    cs = np.asarray(colours, np.float32)
    return np.stack([np.interp(t, xs, cs[:, i]) for i in range(3)], axis=-1).astype(np.float32)


def _clouds(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Fractal value noise: five octaves of random lattices, bicubic, halving amplitude."""
    qw, qh = max(16, w // 4), max(16, h // 4)
    f = np.zeros((qh, qw), np.float32)
    for o in range(5):
        n = 2 ** (o + 1) + 1
        lattice = rng.uniform(0, 1, (max(2, n * qh // max(qw, qh) + 1), max(2, n * qw // max(qw, qh) + 1)))
        f += _upsample(lattice, qw, qh, Image.BICUBIC) * 0.5**o
    f = (f - f.min()) / max(1e-6, float(f.max() - f.min()))
    rgb = _ramp(f, [_bg_colour(rng) for _ in range(int(rng.integers(2, 4)))])
    return _upsample(rgb, w, h)


def _gradient(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    qw, qh = max(16, w // 8), max(16, h // 8)
    a = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:qh, 0:qw].astype(np.float32)
    t = xs * math.cos(a) + ys * math.sin(a)
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    rgb = _upsample(_ramp(t, [_bg_colour(rng) for _ in range(int(rng.integers(2, 4)))]), w, h)
    # soft spots: big blurred ellipses, as light through foliage or stains
    spots = Image.new("RGB", (qw, qh))
    alpha = Image.new("L", (qw, qh), 0)
    ds, da = ImageDraw.Draw(spots), ImageDraw.Draw(alpha)
    for _ in range(int(rng.integers(3, 9))):
        cx, cy, rx, ry = rng.uniform(0, qw), rng.uniform(0, qh), rng.uniform(0.1, 0.3) * qw, rng.uniform(0.1, 0.3) * qh
        ds.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=tuple(int(c) for c in _bg_colour(rng)))
        da.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=int(rng.uniform(60, 160)))
    r = max(2.0, qw / 40)
    spots_f = _upsample(np.asarray(spots.filter(ImageFilter.GaussianBlur(r)), np.float32), w, h)
    alpha_f = _upsample(np.asarray(alpha.filter(ImageFilter.GaussianBlur(r)), np.float32) / 255, w, h)[..., None]
    return rgb * (1 - alpha_f) + spots_f * alpha_f


def _rotated_coords(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.uniform(0, math.pi)
    x = np.arange(w, dtype=np.float32)[None, :]
    y = np.arange(h, dtype=np.float32)[:, None]
    return x * math.cos(a) + y * math.sin(a), -x * math.sin(a) + y * math.cos(a)


def _checker(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A rotated checkerboard of two colours; cells 6-15 % of the short side (never object-sized)."""
    u, v = _rotated_coords(rng, w, h)
    cell = rng.uniform(0.06, 0.15) * min(w, h)
    odd = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)[..., None]
    a, b = _bg_colour(rng), _bg_colour(rng)
    img = Image.fromarray(np.clip(a * (1 - odd) + b * odd, 0, 255).astype(np.uint8))
    return np.asarray(img.filter(ImageFilter.GaussianBlur(1.0)), np.float32)


def _stripes(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Stripes of 2-3 colours, hard-edged or sinusoidal, at any angle."""
    u, _ = _rotated_coords(rng, w, h)
    period = rng.uniform(0.03, 0.2) * min(w, h)
    colours = [_bg_colour(rng) for _ in range(int(rng.integers(2, 4)))]
    if rng.random() < 0.5:
        t = (0.5 + 0.5 * np.sin(u * 2 * math.pi / period)).astype(np.float32)
        return _ramp(t, colours)
    k = (np.floor(u / period) % len(colours)).astype(np.int32)
    return np.asarray(colours, np.float32)[k]


@cache
def _photo(name: str) -> Image.Image:
    try:
        import skimage.data
    except ImportError as exc:
        raise CollageUnavailable("the collage background needs scikit-image") from exc
    a = getattr(skimage.data, name)()
    a = np.asarray(a[0] if isinstance(a, tuple) else a)
    if a.dtype != np.uint8:
        a = (a.astype(np.float32) / max(1e-6, float(a.max())) * 255).astype(np.uint8)
    return Image.fromarray(a).convert("RGB")


def _collage(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Faded photos pasted at random places, sizes and small rotations over clouds, as on a pinboard."""
    canvas = Image.fromarray(np.clip(_clouds(rng, w, h), 0, 255).astype(np.uint8))
    short = min(w, h)
    for _ in range(int(rng.integers(6, 14))):
        photo = _photo(EVAL_NATURAL[int(rng.integers(len(EVAL_NATURAL)))])
        side = rng.uniform(0.25, 0.7) * short
        scale = side / max(photo.size)
        p = photo.resize((max(2, int(photo.size[0] * scale)), max(2, int(photo.size[1] * scale))), Image.BICUBIC)
        if rng.random() < 0.5:
            p = p.transpose(Image.FLIP_LEFT_RIGHT)
        # faded prints: no photo region as vivid as a target (a red motorcycle would make "is there
        # a red object?" arguable)
        p = ImageEnhance.Color(p).enhance(rng.uniform(0.35, 0.7))
        angle = rng.uniform(-20, 20)
        mask = Image.new("L", p.size, 255).rotate(angle, Image.BICUBIC, expand=True)
        p = p.rotate(angle, Image.BICUBIC, expand=True)
        canvas.paste(p, (int(rng.uniform(-0.2, 1.0) * w), int(rng.uniform(-0.2, 1.0) * h)), mask)
    return np.asarray(canvas, np.float32)


BACKGROUNDS = {"clouds": _clouds, "gradient": _gradient, "checker": _checker, "stripes": _stripes, "collage": _collage}


# ----------------------------------------------------------------------------- shapes
def _outline(shape: str, rng: np.random.Generator, r: float) -> list[tuple[float, float]] | None:
    """Vertices (relative to the centre, y down) of a vocabulary shape of radius r; None: a circle."""
    if shape == "circle":
        return None
    if shape == "square":
        a = r * 0.88
        pts = [(-a, -a), (a, -a), (a, a), (-a, a)]
        rot = rng.uniform(-8, 8)
    elif shape == "triangle":  # equilateral, point up; centred on its box
        pts = [(r * math.cos(math.radians(t)), r * math.sin(math.radians(t)) + 0.25 * r) for t in (-90, 30, 150)]
        rot = rng.uniform(-8, 8)
    elif shape == "star":
        inner = rng.uniform(0.38, 0.5)
        pts = [
            (
                (r if k % 2 == 0 else inner * r) * math.cos(math.radians(-90 + 36 * k)),
                (r if k % 2 == 0 else inner * r) * math.sin(math.radians(-90 + 36 * k)),
            )
            for k in range(10)
        ]
        rot = rng.uniform(-6, 6)
    elif shape == "cross":
        b = r * rng.uniform(0.28, 0.36)
        pts = [
            (-b, -r),
            (b, -r),
            (b, -b),
            (r, -b),
            (r, b),
            (b, b),
            (b, r),
            (-b, r),
            (-b, b),
            (-r, b),
            (-r, -b),
            (-b, -b),
        ]
        rot = rng.uniform(-6, 6)
    elif shape == "diamond":
        a = r * rng.uniform(0.55, 0.7)
        pts = [(0, -r), (a, 0), (0, r), (-a, 0)]
        rot = rng.uniform(-5, 5)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))
    return [(x * c - y * s, x * s + y * c) for x, y in pts]


def _coverage(draw_fn, size: float) -> np.ndarray:
    """Anti-aliased coverage (float32 in [0, 1]) of what ``draw_fn(draw, centre, scale)`` paints
    on a patch of about ``size`` px: drawn at SUPERSAMPLE x, box-filtered down."""
    side = int(math.ceil(size)) + 4
    im = Image.new("L", (side * SUPERSAMPLE, side * SUPERSAMPLE), 0)
    draw_fn(ImageDraw.Draw(im), side * SUPERSAMPLE / 2.0, float(SUPERSAMPLE))
    return np.asarray(im.reduce(SUPERSAMPLE), np.float32) / 255.0


def target_coverage(shape: str, size: float, rng: np.random.Generator) -> np.ndarray:
    def draw(d: ImageDraw.ImageDraw, c: float, k: float) -> None:
        r = size * k / 2
        pts = _outline(shape, rng, r)
        if pts is None:
            d.ellipse([c - r, c - r, c + r, c + r], fill=255)
        else:
            d.polygon([(c + x, c + y) for x, y in pts], fill=255)

    return _coverage(draw, size)


def clutter_coverage(kind: str, size: float, rng: np.random.Generator) -> np.ndarray:
    """An off-vocabulary shape: never a circle, square, triangle, star, cross or diamond."""

    def draw(d: ImageDraw.ImageDraw, c: float, k: float) -> None:
        r = size * k / 2
        if kind == "oval":  # 1.8:1 or longer
            q = r / rng.uniform(1.8, 3.2)
            d.ellipse([c - r, c - q, c + r, c + q], fill=255) if rng.random() < 0.5 else d.ellipse(
                [c - q, c - r, c + q, c + r], fill=255
            )
        elif kind == "crescent":
            d.ellipse([c - r, c - r, c + r, c + r], fill=255)
            off = r * rng.uniform(0.35, 0.6)
            a = rng.uniform(0, 2 * math.pi)
            ox, oy = off * math.cos(a), off * math.sin(a)
            d.ellipse([c + ox - r * 0.95, c + oy - r * 0.95, c + ox + r * 0.95, c + oy + r * 0.95], fill=0)
        elif kind == "scribble":  # a wavy open line, never closing on itself
            xs = np.linspace(-r, r, 24)
            ys = r * rng.uniform(0.15, 0.4) * np.sin(xs / r * math.pi * rng.uniform(1.0, 2.5) + rng.uniform(0, 6.3))
            a = rng.uniform(0, math.pi)
            ca, sa = math.cos(a), math.sin(a)
            pts = [(c + x * ca - y * sa, c + x * sa + y * ca) for x, y in zip(xs, ys)]
            d.line(pts, fill=255, width=max(int(k), int(r * rng.uniform(0.08, 0.2))), joint="curve")
        elif kind == "ring":
            d.ellipse([c - r, c - r, c + r, c + r], outline=255, width=max(int(k), int(r * rng.uniform(0.15, 0.3))))
        elif kind == "bar":  # rounded, 2.5:1 or longer
            q = r / rng.uniform(2.5, 5.0)
            box = [c - r, c - q, c + r, c + q] if rng.random() < 0.5 else [c - q, c - r, c + q, c + r]
            d.rounded_rectangle(box, radius=q * 0.6, fill=255)
        elif kind == "arc":
            start = rng.uniform(0, 360)
            d.arc(
                [c - r, c - r, c + r, c + r],
                start,
                start + rng.uniform(70, 200),
                fill=255,
                width=max(int(k), int(r * rng.uniform(0.15, 0.3))),
            )
        else:
            raise ValueError(f"unknown clutter kind {kind!r}")

    return _coverage(draw, size)


def _composite(
    img: np.ndarray, cov: np.ndarray, x: int, y: int, colour: np.ndarray
) -> tuple[int, int, int, int] | None:
    """Blend ``colour`` (H x W x 3 or 3) with coverage ``cov`` at top-left (x, y) into the float
    frame; returns the box of covered pixels inside the frame."""
    h, w = img.shape[:2]
    ph, pw = cov.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + pw), min(h, y + ph)
    if x0 >= x1 or y0 >= y1:
        return None
    a = cov[y0 - y : y1 - y, x0 - x : x1 - x]
    col = colour[y0 - y : y1 - y, x0 - x : x1 - x] if np.ndim(colour) == 3 else colour
    region = img[y0:y1, x0:x1]
    region += (col - region) * a[..., None]
    ys, xs = np.nonzero(a > 0)
    if len(xs) == 0:
        return None
    return (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)


def _target_colour(rng: np.random.Generator, word: str, cov: np.ndarray, look: str) -> np.ndarray:
    """The target's colour field: flat, with a darker rim, or shaded (lighter centre)."""
    base = np.asarray(EVAL_PALETTE[word], np.float32) * rng.uniform(0.94, 1.03)
    field_ = np.empty(cov.shape + (3,), np.float32)
    field_[:] = np.clip(base, 0, 255)
    if look == "rim":
        eroded = Image.fromarray((cov * 255).astype(np.uint8)).filter(ImageFilter.MinFilter(3))
        inner = np.asarray(eroded, np.float32) / 255
        edge = np.clip(cov - inner, 0, 1)[..., None]
        field_ = field_ * (1 - 0.25 * edge)
    elif look == "shaded":
        ph, pw = cov.shape
        ys, xs = np.mgrid[0:ph, 0:pw].astype(np.float32)
        r = np.hypot(xs - pw * rng.uniform(0.35, 0.5), ys - ph * rng.uniform(0.35, 0.5)) / (max(ph, pw) / 2)
        shade = (1.08 - 0.16 * np.clip(r, 0, 1))[..., None]
        field_ = np.clip(field_ * shade, 0, 255)
    return field_


# ----------------------------------------------------------------------------- layout
def _frame(rng: np.random.Generator, spec: SceneSpec) -> tuple[int, int]:
    short = 2 * int(rng.integers(spec.short_side[0] // 2, spec.short_side[1] // 2 + 1))
    long = 2 * int(round(short * float(spec.aspects[int(rng.integers(len(spec.aspects)))]) / 2))
    return (short, long) if rng.random() < spec.portrait_share else (long, short)


def _assign(rng: np.random.Generator, spec: SceneSpec) -> list[tuple[str, str, float]]:
    """(shape, colour word, size as a share of the short side) of each target: ``u`` colours of
    their own, one colour ``k`` times; one uniquely coloured target has a shape no other has."""
    words = list(COLORS)
    rng.shuffle(words)
    u = int(rng.integers(spec.unique_objects[0], spec.unique_objects[1] + 1))
    k = int(rng.integers(spec.count_repeats[0], spec.count_repeats[1] + 1))
    colours = words[:u] + [words[u]] * k
    lone = SHAPES[int(rng.integers(len(SHAPES)))]
    rest = [s for s in SHAPES if s != lone]
    j = int(rng.integers(u))
    out = []
    for i, c in enumerate(colours):
        shape = lone if i == j else rest[int(rng.integers(len(rest)))]
        lo, hi = spec.large_frac if rng.random() < spec.large_share else spec.small_frac
        out.append((shape, c, rng.uniform(lo, hi)))
    return out


def _spread(rng: np.random.Generator, sizes: Sequence[float], w: int, h: int) -> list[tuple[float, float]] | None:
    """Centres, biggest first: inside a 2 % margin, apart by at least the two half-sizes plus the larger size."""
    margin = 0.02 * min(w, h)
    placed: list[tuple[float, float, float]] = []
    for size in sizes:
        lo = margin + size / 2 + 3
        for _ in range(300):
            x, y = rng.uniform(lo, w - lo), rng.uniform(lo, h - lo)
            if all(max(abs(x - px), abs(y - py)) > (size + ps) / 2 + max(size, ps) for px, py, ps in placed):
                placed.append((x, y, size))
                break
        else:
            return None
    return [(x, y) for x, y, _ in placed]


# ----------------------------------------------------------------------------- the scene
def make_eval_scene(seed: int, index: int = 0, spec: EvalSpec = EvalSpec()) -> Scene:
    """Evaluation scene ``index`` of ``seed`` (deterministic): frame, targets, questions."""
    spec.validate()
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), EVAL_STREAM]))
    w, h = _frame(rng, spec.scene)
    short = min(w, h)
    kind = spec.backgrounds[int(rng.integers(len(spec.backgrounds)))]
    img = np.ascontiguousarray(BACKGROUNDS[kind](rng, w, h), np.float32)
    for _ in range(30):
        targets = _assign(rng, spec.scene)
        order = sorted(range(len(targets)), key=lambda i: -targets[i][2])
        sizes = [max(6.0, targets[i][2] * short) for i in order]
        centres = _spread(rng, sizes, w, h)
        if centres is not None:
            break
    else:
        raise RuntimeError(f"could not lay out evaluation scene {index} of seed {seed}")
    where = {i: (c, s) for i, c, s in zip(order, centres, sizes)}
    # clutter: anywhere but on or next to a target's place
    clear = [(x - s - 4, y - s - 4, x + s + 4, y + s + 4) for (x, y), s in where.values()]
    clutter: list[Clutter] = []
    lo, hi = math.log(spec.scene.small_frac[0] * short), math.log(spec.scene.large_frac[1] * short)
    for _ in range(int(rng.integers(spec.clutter[0], spec.clutter[1] + 1))):
        size = max(6.0, math.exp(rng.uniform(lo, hi)))
        ck = CLUTTER_KINDS[int(rng.integers(len(CLUTTER_KINDS)))]
        reach = size / 2 + 3
        for _ in range(10):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            if not any(x + reach > a and a2 > x - reach and y + reach > b and b2 > y - reach for a, b, a2, b2 in clear):
                break
        else:
            continue  # a crowded frame: one fewer
        name, colour = _clutter_colour(rng)
        cov = clutter_coverage(ck, size, rng)
        box = _composite(img, cov, int(round(x - cov.shape[1] / 2)), int(round(y - cov.shape[0] / 2)), colour)
        if box is not None:
            clutter.append(Clutter(ck, name, box))
    frame = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    keep_away(frame)
    img = frame.astype(np.float32)
    objects, looks = [], []
    for i, (shape, word, _) in enumerate(targets):
        (x, y), size = where[i]
        look = TARGET_LOOKS[int(rng.choice(3, p=[0.6, 0.2, 0.2]))]
        if look == "rim" and size < 14:  # a 1 px rim would be most of a small target
            look = "flat"
        cov = target_coverage(shape, size, rng)
        box = _composite(
            img,
            cov,
            int(round(x - cov.shape[1] / 2)),
            int(round(y - cov.shape[0] / 2)),
            _target_colour(rng, word, cov, look),
        )
        objects.append(SceneObject(shape, word, box))
        looks.append(look)
    # the camera: sensor noise, sometimes a slight defocus (the targets' boxes grow by at most a pixel's fringe)
    img += rng.normal(0, rng.uniform(0.5, 3.0), (h, w, 1)).astype(np.float32)
    out = Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.6)))
    return Scene(
        index, int(seed), w, h, objects, draw_questions(rng, objects), np.asarray(out).copy(), kind, looks, clutter
    )


def write_eval_scenes(
    out: str | Path, n: int, seed: int, spec: EvalSpec = EvalSpec(), fmt: str = "jpg", progress=None, workers: int = 1
) -> Path:
    """Write ``n`` evaluation scenes in ``focus-scenes``' format (see ``scenes.write_scenes``)."""
    spec.validate()
    return write_scenes(out, n, seed, spec, fmt, progress=progress, workers=workers, make=make_eval_scene)


__all__ = [
    "EVAL_PALETTE",
    "CLUTTER_COLORS",
    "EVAL_NATURAL",
    "EVAL_BACKGROUNDS",
    "CLUTTER_KINDS",
    "KEEP_AWAY",
    "EvalSpec",
    "Clutter",
    "CollageUnavailable",
    "make_eval_scene",
    "write_eval_scenes",
    "keep_away",
    "vocab_distance",
    "target_coverage",
    "clutter_coverage",
]
