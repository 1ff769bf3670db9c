"""Synthetic high-resolution scenes with a fixed vocabulary, for benchmarks and tests.

Objects are filled shapes (:data:`SHAPES`) in vocabulary colours (:data:`COLORS`) on a textured,
cluttered background. **Colour identifies an object** (it survives down-scaling: a 3-pixel red dot
is still red); **shape is the fine detail** that needs a closer look. In a scene every object has
its own colour, except the colour a counting question asks about, which may repeat.

The background never looks like a vocabulary object: it is drawn only in *muted* colours (HSV
saturation <= 0.25, value in [0.3, 0.75]), so it is far from every vocabulary colour, white and
black included, and its clutter is thin strokes and large soft blobs, never small filled shapes.

Everything is pure numpy/OpenCV and deterministic: scene ``i`` of seed ``s`` is the same image
and the same questions on every machine. Boxes are ``[x0, y0, x1, y1]`` in source pixels, x1/y1
exclusive, and tight around the object's drawn pixels.

``SceneSpec(style="varied")`` draws training scenes with randomised backgrounds, distractors,
object looks, lighting and JPEG noise (:mod:`focus_ros.eval.scene_styles`); the default
``style="plain"`` draws the scenes described above, unchanged. :mod:`focus_ros.eval.scenes_eval`
is a second renderer with its own drawing code, for evaluation only.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .scene_draw import COLORS, SHAPES, draw_blobs, draw_strokes, draw_texture, muted_color, shape_mask

if TYPE_CHECKING:
    from .scene_styles import Distractor, StyleSpec

# The question templates; answers are one lower-case word.
TEMPLATES = {
    "shape": "What shape is the {color} object?",  # -> shape word
    "exists": "Is there a {color} object in the image?",  # -> yes / no
    "relation": "Is the {color} object to the left or right of the {other} object?",  # -> left / right
    "count": "How many {color} objects are there?",  # -> a digit
    "color": "What color is the {shape}?",  # -> colour word (hard)
}
QUESTION_TYPES = tuple(TEMPLATES)
# The words each question type's answer is drawn from (what answer matching looks for).
ANSWER_WORDS: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "exists": ("yes", "no"),
    "relation": ("left", "right"),
    "count": tuple(str(i) for i in range(10)),
    "color": tuple(COLORS),
}


@dataclass(frozen=True)
class SceneSpec:
    """How scenes are drawn; the defaults are the benchmark's."""

    short_side: tuple[int, int] = (1080, 3000)  # frame short side, px
    aspects: tuple[float, ...] = (1.0, 4 / 3, 3 / 2, 16 / 9)
    portrait_share: float = 0.15  # frames taller than wide
    small_frac: tuple[float, float] = (0.01, 0.04)  # target size / short side
    large_frac: tuple[float, float] = (0.05, 0.12)  # the share of larger objects
    large_share: float = 0.25
    unique_objects: tuple[int, int] = (2, 4)  # objects with a colour of their own
    count_repeats: tuple[int, int] = (1, 4)  # instances of the counted colour
    # "plain": the scenes above; "varied" (or a scene_styles.StyleSpec): randomised training scenes
    style: str | StyleSpec = "plain"

    def validate(self) -> None:
        lo, hi = self.short_side
        if not 32 <= lo <= hi:
            raise ValueError(f"short_side must satisfy 32 <= min <= max, got {self.short_side}")
        if not (self.unique_objects[0] >= 2 and self.unique_objects[1] + 1 <= len(COLORS) - 1):
            raise ValueError("unique_objects must be in [2, len(COLORS) - 2]")
        if not 1 <= self.count_repeats[0] <= self.count_repeats[1] <= 9:
            raise ValueError("count_repeats must be within [1, 9]")
        if self.style != "plain":
            from .scene_styles import resolve  # here: only varied scenes need it

            resolve(self.style).validate()


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    box: tuple[int, int, int, int]  # tight, source pixels, x1/y1 exclusive

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)


@dataclass
class SceneQuestion:
    question: str
    answer: str
    type: str
    boxes: list[list[int]] = field(default_factory=list)


@dataclass
class Scene:
    index: int
    seed: int
    width: int
    height: int
    objects: list[SceneObject]
    questions: list[SceneQuestion]
    image: np.ndarray = field(repr=False, default=None)  # H x W x 3 uint8 RGB
    # varied scenes only: the background's kind, each object's look (in objects' order), the distractors
    background: str = "plain"
    object_styles: list[str] = field(default_factory=list)
    distractors: list[Distractor] = field(default_factory=list)


# ----------------------------------------------------------------------------- drawing
def draw_object(
    img: np.ndarray, shape: str, color: str, cx: float, cy: float, size: float
) -> tuple[int, int, int, int]:
    """Draw a filled, anti-aliased shape; returns its tight box (pixels with any coverage)."""
    mask, mx, my = shape_mask(shape, size)
    ox, oy = int(round(cx - mx)), int(round(cy - my))
    h, w = img.shape[:2]
    ys, xs = np.nonzero(mask > 0)
    x0, x1 = ox + int(xs.min()), ox + int(xs.max()) + 1
    y0, y1 = oy + int(ys.min()), oy + int(ys.max()) + 1
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        raise ValueError("object does not fit in the frame")
    sub = mask[y0 - oy : y1 - oy, x0 - ox : x1 - ox, None]
    region = img[y0:y1, x0:x1].astype(np.float32)
    img[y0:y1, x0:x1] = (region * (1 - sub) + np.asarray(COLORS[color], np.float32) * sub).astype(img.dtype)
    return (x0, y0, x1, y1)


# ----------------------------------------------------------------------------- layout
def _frame_size(rng: np.random.Generator, spec: SceneSpec) -> tuple[int, int]:
    short = int(rng.integers(spec.short_side[0], spec.short_side[1] + 1)) // 2 * 2
    aspect = float(rng.choice(spec.aspects))
    long = int(round(short * aspect)) // 2 * 2
    return (short, long) if rng.random() < spec.portrait_share else (long, short)


def _place(
    rng: np.random.Generator, sizes: Sequence[float], w: int, h: int, tries: int = 400
) -> list[tuple[float, float]] | None:
    """Centres for objects of the given sizes: inside the frame, never overlapping (gap >= a size)."""
    centres: list[tuple[float, float]] = []
    placed: list[float] = []
    margin = 0.03 * min(w, h)
    for size in sizes:
        half = size / 2 + 4
        for _ in range(tries):
            cx = rng.uniform(margin + half, w - margin - half)
            cy = rng.uniform(margin + half, h - margin - half)
            if all(
                max(abs(cx - px), abs(cy - py)) > (size + ps) / 2 + max(size, ps)
                for (px, py), ps in zip(centres, placed)
            ):
                centres.append((cx, cy))
                placed.append(size)
                break
        else:
            return None
    return centres


def _layout(rng: np.random.Generator, spec: SceneSpec, w: int, h: int) -> list[tuple[str, str, float, float, float]]:
    """(shape, colour, cx, cy, size) of every object. Colours: ``u`` unique ones plus one counted
    colour repeated ``k`` times; at least one shape appears exactly once (for the colour question)."""
    short = min(w, h)
    colors = [str(c) for c in rng.permutation(list(COLORS))]
    u = int(rng.integers(spec.unique_objects[0], spec.unique_objects[1] + 1))
    k = int(rng.integers(spec.count_repeats[0], spec.count_repeats[1] + 1))
    obj_colors = colors[:u] + [colors[u]] * k
    n = len(obj_colors)
    unique_shape = str(rng.choice(SHAPES))
    others = [s for s in SHAPES if s != unique_shape]
    shapes = [unique_shape] + [str(rng.choice(others)) for _ in range(n - 1)]
    # the uniquely shaped object is one of the uniquely coloured ones, at a random index
    j = int(rng.integers(0, u))
    shapes[0], shapes[j] = shapes[j], shapes[0]
    sizes = []
    for _ in range(n):
        frac = spec.large_frac if rng.random() < spec.large_share else spec.small_frac
        sizes.append(max(6.0, rng.uniform(*frac) * short))
    order = np.argsort(sizes)[::-1]  # place the large ones first
    centres = _place(rng, [sizes[i] for i in order], w, h)
    if centres is None:
        raise RuntimeError("could not place the objects")
    pos = {int(i): c for i, c in zip(order, centres)}
    return [(shapes[i], obj_colors[i], pos[i][0], pos[i][1], sizes[i]) for i in range(n)]


def draw_questions(rng: np.random.Generator, objects: list[SceneObject]) -> list[SceneQuestion]:
    """One question of each type (when the scene allows it), answers from the drawn objects."""
    by_color: dict[str, list[SceneObject]] = {}
    for o in objects:
        by_color.setdefault(o.color, []).append(o)
    unique = [o for o in objects if len(by_color[o.color]) == 1]
    shape_count = {s: sum(o.shape == s for o in objects) for s in SHAPES}
    out: list[SceneQuestion] = []

    o = unique[int(rng.integers(len(unique)))]
    out.append(SceneQuestion(TEMPLATES["shape"].format(color=o.color), o.shape, "shape", [list(o.box)]))

    absent = [c for c in COLORS if c not in by_color]
    if absent and rng.random() < 0.5:
        c = str(rng.choice(absent))
        out.append(SceneQuestion(TEMPLATES["exists"].format(color=c), "no", "exists", []))
    else:
        o = unique[int(rng.integers(len(unique)))]
        out.append(SceneQuestion(TEMPLATES["exists"].format(color=o.color), "yes", "exists", [list(o.box)]))

    pairs = [(a, b) for a in unique for b in unique if a is not b and (a.box[2] <= b.box[0] or b.box[2] <= a.box[0])]
    if pairs:
        a, b = pairs[int(rng.integers(len(pairs)))]
        side = "left" if a.center[0] < b.center[0] else "right"
        out.append(
            SceneQuestion(
                TEMPLATES["relation"].format(color=a.color, other=b.color), side, "relation", [list(a.box), list(b.box)]
            )
        )

    counted = max(by_color, key=lambda c: (len(by_color[c]), c))
    out.append(
        SceneQuestion(
            TEMPLATES["count"].format(color=counted),
            str(len(by_color[counted])),
            "count",
            [list(x.box) for x in by_color[counted]],
        )
    )

    once = [o for o in unique if shape_count[o.shape] == 1]
    if once:
        o = once[int(rng.integers(len(once)))]
        out.append(SceneQuestion(TEMPLATES["color"].format(shape=o.shape), o.color, "color", [list(o.box)]))
    return out


def _layout_retrying(
    rng: np.random.Generator, spec: SceneSpec, w: int, h: int, seed: int, index: int
) -> list[tuple[str, str, float, float, float]]:
    for _ in range(20):
        try:
            return _layout(rng, spec, w, h)
        except RuntimeError:
            continue
    raise RuntimeError(f"could not lay out scene {index} of seed {seed}")


def make_scene(seed: int, index: int = 0, spec: SceneSpec = SceneSpec()) -> Scene:
    """Scene ``index`` of ``seed``: the frame, its objects and its questions (deterministic)."""
    spec.validate()
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    w, h = _frame_size(rng, spec)
    if spec.style != "plain":
        return _make_varied(rng, seed, index, spec, w, h)
    short = min(w, h)
    img = draw_texture(rng, w, h)
    draw_blobs(img, rng, short)
    draw_strokes(img, rng, short)
    img = np.clip(img, 0, 255).astype(np.uint8)
    layout = _layout_retrying(rng, spec, w, h, seed, index)
    objects = [
        SceneObject(shape, color, draw_object(img, shape, color, cx, cy, size)) for shape, color, cx, cy, size in layout
    ]
    return Scene(index, int(seed), w, h, objects, draw_questions(rng, objects), img)


def _make_varied(rng: np.random.Generator, seed: int, index: int, spec: SceneSpec, w: int, h: int) -> Scene:
    """A varied scene: background, then the layout, distractors clear of the objects' places, the
    background pushed out of the vocabulary colours, the objects, and the frame-wide steps."""
    from . import scene_styles as st

    style = st.resolve(spec.style)
    kind, img = st.background(rng, w, h, style)
    layout = _layout_retrying(rng, spec, w, h, seed, index)
    # an object's place and a gap of half its size (at least 4 px) around it stay free of distractors
    clear = [
        (
            cx - size / 2 - max(4.0, size / 2),
            cy - size / 2 - max(4.0, size / 2),
            cx + size / 2 + max(4.0, size / 2),
            cy + size / 2 + max(4.0, size / 2),
        )
        for _, _, cx, cy, size in layout
    ]
    distractors = st.add_distractors(img, rng, style, clear)
    st.keep_out_of_vocabulary(img)
    objects, looks = [], []
    for shape, color, cx, cy, size in layout:
        box, look = st.draw_styled_object(img, rng, style, shape, color, cx, cy, size)
        objects.append(SceneObject(shape, color, box))
        looks.append(look)
    img = st.photometric(img, rng, style)
    return Scene(index, int(seed), w, h, objects, draw_questions(rng, objects), img, kind, looks, distractors)


def iter_scenes(n: int, seed: int, spec: SceneSpec = SceneSpec()) -> Iterator[Scene]:
    for i in range(n):
        yield make_scene(seed, i, spec)


def _write_frame(out: Path, seed: int, index: int, spec, fmt: str, make: Callable[..., Scene]) -> Scene:
    """Draw scene ``index`` of ``seed``, write its frame under ``out`` and return it without the
    image (what crosses a process boundary stays small)."""
    scene = make(seed, index, spec)
    name = out / _frame_name(seed, index, fmt)
    bgr = np.ascontiguousarray(scene.image[..., ::-1])
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
        if fmt == "jpg"
        else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    )
    if not cv2.imwrite(str(name), bgr, params):
        raise OSError(f"cannot write {name}")
    scene.image = None
    return scene


def _frame_name(seed: int, index: int, fmt: str) -> str:
    return f"frames/scene_{seed}_{index:05d}.{fmt}"


def write_scenes(
    out: str | Path,
    n: int,
    seed: int,
    spec=SceneSpec(),
    fmt: str = "jpg",
    progress=None,
    workers: int = 1,
    make: Callable[..., Scene] | None = None,
) -> Path:
    """Write ``n`` scenes: ``frames/scene_SSSS_IIIII.EXT``, ``questions.jsonl`` (one
    ``{"image", "question", "answer", "type", "boxes"}`` a line, image relative to ``out``) and
    ``scenes.json`` (every object of every frame). ``workers`` > 1 draws and encodes frames in that
    many processes (a 3000 px frame takes about a second); the files are the same whatever the
    count, since scene ``i`` depends only on ``(seed, i)``. Returns the path of questions.jsonl.

    ``make(seed, index, spec)`` draws a scene (default :func:`make_scene`; a module-level function,
    so that worker processes can find it): another renderer writes the same format, and
    scenes.json then names it under ``"renderer"``."""
    if fmt not in ("jpg", "png"):
        raise ValueError("fmt must be 'jpg' or 'png'")
    if workers < 1:
        raise ValueError("workers must be >= 1")
    out = Path(out)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    lines, meta = [], []
    draw = partial(_write_frame, out, seed, spec=spec, fmt=fmt, make=make or make_scene)
    with contextlib.ExitStack() as stack:
        if workers > 1:
            scenes = stack.enter_context(ProcessPoolExecutor(workers)).map(draw, range(n))
        else:
            scenes = map(draw, range(n))
        for scene in scenes:
            name = _frame_name(seed, scene.index, fmt)
            for q in scene.questions:
                lines.append(json.dumps({"image": name, **asdict(q)}))
            objects = [asdict(o) for o in scene.objects]
            for o, look in zip(objects, scene.object_styles):  # varied scenes: each object's look
                o["style"] = look
            meta.append(
                {
                    "image": name,
                    "index": scene.index,
                    "seed": scene.seed,
                    "width": scene.width,
                    "height": scene.height,
                    "objects": objects,
                }
            )
            if scene.object_styles:
                meta[-1].update(background=scene.background, distractors=len(scene.distractors))
            if progress:
                progress(scene)
    path = out / "questions.jsonl"
    path.write_text("\n".join(lines) + "\n")
    spec_d = asdict(spec)
    if spec_d.get("style") == "plain":
        del spec_d["style"]  # plain scenes' scenes.json stays as it was before styles
    head = {"seed": seed, "n": n, "spec": spec_d}
    if make is not None and make is not make_scene:
        head["renderer"] = f"{make.__module__}.{make.__name__}"
    (out / "scenes.json").write_text(json.dumps({**head, "scenes": meta}, indent=1) + "\n")
    return path


__all__ = [
    "SHAPES",
    "COLORS",
    "TEMPLATES",
    "QUESTION_TYPES",
    "ANSWER_WORDS",
    "SceneSpec",
    "SceneObject",
    "SceneQuestion",
    "Scene",
    "make_scene",
    "iter_scenes",
    "write_scenes",
    "draw_object",
    "muted_color",
]
