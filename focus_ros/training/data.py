"""The embedded model's training examples: views of a scene (the full frame and crops at the scales
croppers propose) with per-patch labels, the questions each view answers unambiguously, and the token
sequences the LLaVA adapter builds for them at inference.

Everything is deterministic: item ``i`` of :class:`SceneSamples` is scene ``i // scene_reuse`` of the
stage's seed with views and questions drawn from a generator seeded by ``(seed, i)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from ..core.methods.zoom import GLOBAL_PROMPTS, LOCAL_PROMPTS, ZOOM_PROMPTS
from ..core.models.llava import expand_to_square
from ..core.targets import ANSWER_LEAD, extraction_prompt
from ..eval.scenes import COLORS, SHAPES, TEMPLATES, Scene, SceneObject, SceneSpec, make_scene
from .model import COLOR_CLASSES, DECOMPOSED_QUESTION, SHAPE_CLASSES, VICROP_INSTRUCTION, build_image_processor
from .recipe import StageConfig, TrainConfig

IGNORE = -100  # label of patches and tokens no loss reads


def _nearest_colors(n: int = 2) -> dict[str, tuple[str, ...]]:
    """Each vocabulary colour's ``n`` nearest others in RGB: the absent colours easiest to mistake
    for a present one (purple beside a red and a blue object)."""
    rgb = {c: np.array(v, dtype=float) for c, v in COLORS.items()}
    dist = {c: {o: float(np.linalg.norm(rgb[o] - rgb[c])) for o in rgb if o != c} for c in rgb}
    return {c: tuple(sorted(d, key=d.__getitem__)[:n]) for c, d in dist.items()}


NEAR_COLORS = _nearest_colors()
# the questions each stage asks (none: the per-patch stages; exist-symbolic makes its own)
STAGE_TASKS = {
    "vision-heads": (),
    "vision": (),
    "align": (),
    "tune-crops": ("exists", "shape", "extract"),
    "tune": ("exists", "shape", "color", "relation", "count", "extract"),
    "exist-crops": ("exists", "shape", "extract"),
    "tune-joint": ("exists", "shape", "color", "relation", "count", "extract"),
}


@dataclass
class ViewObject:
    obj: SceneObject
    box: tuple[float, float, float, float]  # in view pixels
    visible: float  # fraction of the object's box inside the view
    size: float  # longer side in view pixels


@dataclass
class View:
    region: tuple[int, int, int, int]  # source pixels, x1/y1 exclusive
    is_frame: bool
    objects: list[ViewObject]


def processor_fill(image_processor) -> tuple[int, int, int]:
    """The padding colour LlavaAdapter uses: the image processor's mean."""
    return tuple(int(round(255 * m)) for m in image_processor.image_mean[:3])


def render_view(
    image: np.ndarray, region: tuple[int, int, int, int], fill: tuple[int, int, int], max_side: int
) -> tuple[np.ndarray, float, int, int]:
    """The region padded to a square as LLaVA does, pre-shrunk (area) to at most ``max_side``.

    Returns (square image, square side before shrinking, pad x, pad y)."""
    x0, y0, x1, y1 = region
    sub = image[y0:y1, x0:x1]
    h, w = sub.shape[:2]
    side = max(h, w)
    px, py = (side - w) // 2, (side - h) // 2
    sq = np.ascontiguousarray(expand_to_square(sub, fill))  # the adapter's padding, exactly
    if side > max_side:
        sq = cv2.resize(sq, (max_side, max_side), interpolation=cv2.INTER_AREA)
    return sq, side, px, py


def view_objects(scene: Scene, region: tuple[int, int, int, int], image_size: int) -> list[ViewObject]:
    """Objects that intersect ``region``, in the coordinates of its ``image_size`` view."""
    x0, y0, x1, y1 = region
    w, h = x1 - x0, y1 - y0
    side = max(w, h)
    s = image_size / side
    px, py = (side - w) // 2, (side - h) // 2
    out = []
    for o in scene.objects:
        bx0, by0, bx1, by1 = o.box
        ix = max(0, min(bx1, x1) - max(bx0, x0))
        iy = max(0, min(by1, y1) - max(by0, y0))
        if ix <= 0 or iy <= 0:
            continue
        vis = ix * iy / max(1, (bx1 - bx0) * (by1 - by0))
        vb = ((bx0 - x0 + px) * s, (by0 - y0 + py) * s, (bx1 - x0 + px) * s, (by1 - y0 + py) * s)
        out.append(ViewObject(o, vb, vis, max(bx1 - bx0, by1 - by0) * s))
    return out


def object_masks(objects: Sequence[ViewObject], grid: int, patch: int) -> Iterator[tuple[ViewObject, np.ndarray]]:
    """Each object in view with its patches ([grid, grid] bool): those its box covers a quarter
    of, plus the one holding its centre; largest first, so a label written per object in this
    order lets small objects win overlaps."""
    edges = np.arange(grid + 1) * patch
    for vo in sorted(objects, key=lambda v: -v.size):
        x0, y0, x1, y1 = vo.box
        ox = np.clip(np.minimum(x1, edges[1:]) - np.maximum(x0, edges[:-1]), 0, None)
        oy = np.clip(np.minimum(y1, edges[1:]) - np.maximum(y0, edges[:-1]), 0, None)
        mask = np.outer(oy, ox) / float(patch * patch) >= 0.25
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        ci, cj = int(cy // patch), int(cx // patch)
        if 0 <= ci < grid and 0 <= cj < grid:
            mask[ci, cj] = True
        if mask.any():
            yield vo, mask


def patch_targets(
    objects: Sequence[ViewObject], grid: int, patch: int, legible_px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-patch colour class, shape class and object patch count ([grid, grid] int64 each) from
    one pass of :func:`object_masks` (small objects win overlaps). Shape is labelled only for
    objects fully in view and at least ``legible_px`` big; elsewhere on objects it is ignored
    (IGNORE), on background it is ``none``. The count is how many patches the object labelled
    there covers (0 on background): what :func:`vision_loss` needs to weigh each object rather
    than each patch."""
    color = np.zeros((grid, grid), np.int64)
    shape = np.zeros((grid, grid), np.int64)
    cells = np.zeros((grid, grid), np.int64)
    for vo, mask in object_masks(objects, grid, patch):
        color[mask] = COLOR_CLASSES.index(vo.obj.color)
        legible = vo.visible >= 0.999 and vo.size >= legible_px
        shape[mask] = SHAPE_CLASSES.index(vo.obj.shape) if legible else IGNORE
        cells[mask] = int(mask.sum())
    return color, shape, cells


def _object_crop(
    rng: np.random.Generator, scene: Scene, obj: SceneObject, scale: float, aspect: float
) -> tuple[int, int, int, int]:
    """A window ``scale`` times the object's size containing it at a random offset."""
    W, H = scene.width, scene.height
    bx0, by0, bx1, by1 = obj.box
    size = max(bx1 - bx0, by1 - by0)
    cw = int(min(W, max(bx1 - bx0 + 2, size * scale * math.sqrt(aspect))))
    ch = int(min(H, max(by1 - by0 + 2, size * scale / math.sqrt(aspect))))
    lo_x, hi_x = max(0, bx1 - cw), min(bx0, W - cw)
    lo_y, hi_y = max(0, by1 - ch), min(by0, H - ch)
    x0 = int(rng.integers(lo_x, hi_x + 1)) if hi_x >= lo_x else max(0, min(W - cw, bx0))
    y0 = int(rng.integers(lo_y, hi_y + 1)) if hi_y >= lo_y else max(0, min(H - ch, by0))
    return (x0, y0, x0 + cw, y0 + ch)


def _random_crop(rng: np.random.Generator, scene: Scene) -> tuple[int, int, int, int]:
    W, H = scene.width, scene.height
    short = min(W, H)
    side = int(short * float(np.exp(rng.uniform(math.log(0.04), math.log(0.6)))))
    aspect = float(np.exp(rng.uniform(-0.5, 0.5)))
    cw, ch = min(W, max(8, int(side * math.sqrt(aspect)))), min(H, max(8, int(side / math.sqrt(aspect))))
    x0, y0 = int(rng.integers(0, W - cw + 1)), int(rng.integers(0, H - ch + 1))
    return (x0, y0, x0 + cw, y0 + ch)


def sample_views(rng: np.random.Generator, scene: Scene, n_crops: int, frames: bool, cfg: TrainConfig) -> list[View]:
    """The full frame (optionally) plus crops: mostly around an object at 2-10x its size and a
    random offset (the windows cropping methods propose), some anywhere (negatives)."""
    size = cfg.shape.image_size
    regions: list[tuple[tuple[int, int, int, int], bool]] = []
    if frames:
        regions.append(((0, 0, scene.width, scene.height), True))
    lo, hi = cfg.crop_scale
    for _ in range(n_crops):
        if rng.random() < 0.75:
            obj = scene.objects[int(rng.integers(len(scene.objects)))]
            scale = float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
            aspect = 1.0 if rng.random() < 0.7 else float(np.exp(rng.uniform(-0.6, 0.6)))
            regions.append((_object_crop(rng, scene, obj, scale, aspect), False))
        else:
            regions.append((_random_crop(rng, scene), False))
    return [View(r, f, view_objects(scene, r, size)) for r, f in regions]


def _counts(scene: Scene) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in scene.objects:
        out[o.color] = out.get(o.color, 0) + 1
    return out


def existence_prompt(phrase: str) -> str:
    """The existence question FOCUS asks (LlavaAdapter.existence_text without the assistant tag)."""
    return f"Is there a {phrase} in the image? Answer the question using a single word."


def existence_phrasing(rng: np.random.Generator):
    """How a colour's existence is asked: FOCUS's own prompt 3 times in 4, else the benchmark's
    question (one ``rng`` draw); returns ``colour -> question``."""
    if rng.random() < 0.75:
        return lambda c: existence_prompt(f"{c} object")
    return lambda c: TEMPLATES["exists"].format(color=c)


def _pick(rng: np.random.Generator, seq):
    """One element of ``seq``, one ``rng`` draw."""
    return seq[int(rng.integers(len(seq)))]


def _seen(v: ViewObject, cfg: TrainConfig) -> bool:
    """The view shows the object well enough to ask whether its colour is there."""
    return v.size >= cfg.visible_px and v.visible >= 0.5


def _legible(v: ViewObject, cfg: TrainConfig) -> bool:
    """The view shows the whole object large enough to read its shape."""
    return v.visible >= 0.999 and v.size >= cfg.legible_px


def view_questions(
    rng: np.random.Generator,
    scene: Scene,
    view: View,
    cfg: TrainConfig,
    tasks: Sequence[str],
    near_negatives: float = 0.0,
) -> list[tuple[str, str, str]]:
    """(kind, question, answer) pairs the view answers unambiguously. ``near_negatives``: the share
    of existence negatives asking a colour nearest to one the view shows (StageConfig)."""
    counts = _counts(scene)
    seen = [v for v in view.objects if _seen(v, cfg)]
    faint = {v.obj.color for v in view.objects if not _seen(v, cfg)}
    present = sorted({v.obj.color for v in seen} - faint)
    absent = [c for c in COLORS if c not in {v.obj.color for v in view.objects}]
    elsewhere = [c for c in absent if c in counts]  # in the scene, not in this view: hard negatives
    legible = [v for v in seen if _legible(v, cfg)]
    all_legible = bool(view.objects) and all(_legible(v, cfg) for v in view.objects)
    out: list[tuple[str, str, str]] = []

    def pick(seq):
        return _pick(rng, seq)

    if "exists" in tasks:
        phrase_q = existence_phrasing(rng)
        if present:
            out.append(("exists", phrase_q(pick(present)), "Yes"))
        if absent:
            # no draw without near_negatives: the recipes before it keep their data
            near = sorted({n for c in present for n in NEAR_COLORS.get(c, ())} & set(absent))
            near = near if near_negatives > 0 else []
            if near and rng.random() < near_negatives:
                neg = pick(near)
            else:
                neg = pick(elsewhere) if elsewhere and rng.random() < 0.6 else pick(absent)
            out.append(("exists", phrase_q(neg), "No"))
        if all_legible or not view.objects:
            shapes_in = {v.obj.shape for v in view.objects}
            if shapes_in:
                out.append(("exists_shape", existence_prompt(pick(sorted(shapes_in))), "Yes"))
            out.append(("exists_shape", existence_prompt(pick([s for s in SHAPES if s not in shapes_in])), "No"))
    unique = [v for v in legible if counts[v.obj.color] == 1]
    if "shape" in tasks and unique:
        v = pick(unique)
        out.append(("shape", TEMPLATES["shape"].format(color=v.obj.color), v.obj.shape))
    if "color" in tasks and all_legible:
        shape_n: dict[str, int] = {}
        for v in view.objects:
            shape_n[v.obj.shape] = shape_n.get(v.obj.shape, 0) + 1
        once = [v for v in view.objects if shape_n[v.obj.shape] == 1]
        if once:
            v = pick(once)
            out.append(("color", TEMPLATES["color"].format(shape=v.obj.shape), v.obj.color))
    if "relation" in tasks:
        uniq_seen = [v for v in seen if counts[v.obj.color] == 1 and v.visible >= 0.999]
        pairs = [
            (a, b)
            for a in uniq_seen
            for b in uniq_seen
            if a is not b and (a.box[2] <= b.box[0] or b.box[2] <= a.box[0])
        ]
        if pairs:
            a, b = pick(pairs)
            side = "left" if a.box[0] < b.box[0] else "right"
            out.append(("relation", TEMPLATES["relation"].format(color=a.obj.color, other=b.obj.color), side))
    if cfg.method_prompts:
        out += method_questions(rng, view, present, absent, unique, legible, tasks)
    if "count" in tasks:
        for c in present:
            inst = [v for v in view.objects if v.obj.color == c]
            if counts[c] > 1 or rng.random() < 0.3:
                if all(v.visible >= 0.999 and v.size >= cfg.visible_px for v in inst) and len(inst) == counts[c]:
                    out.append(("count", TEMPLATES["count"].format(color=c), str(len(inst))))
                    break
    return out


def paired_questions(
    rng: np.random.Generator, scene: Scene, views: Sequence[View], cfg: TrainConfig, share: float
) -> list[tuple[int, int, str, str]]:
    """ViCrop's answer prompt on ``share`` of the crops: the frame and then the crop in one sequence
    and a question with ViCrop's instruction: the shape of an object unique in the scene, legible
    in the crop where the crop has one (else anywhere in the frame: then only the frame can show
    it), or (one time in two) whether a colour is there: Yes when the crop shows it, No when the
    scene has none (a colour elsewhere in the frame only is not asked). Returns (frame view, crop
    view, question, answer)."""
    if share <= 0 or not views or not views[0].is_frame:
        return []
    counts = _counts(scene)
    out: list[tuple[int, int, str, str]] = []
    for k, view in enumerate(views[1:], 1):
        if rng.random() >= share:
            continue
        seen = [v for v in view.objects if _seen(v, cfg)]
        legible = [v for v in seen if _legible(v, cfg) and counts[v.obj.color] == 1]
        if rng.random() < 0.5:
            # an object the crop misses is asked about too (its shape as the frame shows it, or a
            # guess): asked only where the crop showed it, the model answered "No" to crops that miss
            unique = legible or [o for o in scene.objects if counts[o.color] == 1]
            if unique:
                o = _pick(rng, unique)
                o = o.obj if legible else o
                out.append((0, k, f"{TEMPLATES['shape'].format(color=o.color)} {VICROP_INSTRUCTION}", o.shape))
            continue
        none = [c for c in COLORS if c not in counts]
        shown = sorted({v.obj.color for v in seen})
        if shown and (not none or rng.random() < 0.5):
            c, a = _pick(rng, shown), "Yes"
        elif none:
            c, a = _pick(rng, none), "No"
        else:
            continue
        out.append((0, k, f"{TEMPLATES['exists'].format(color=c)} {VICROP_INSTRUCTION}", a))
    return out


def method_questions(
    rng: np.random.Generator,
    view: View,
    present: Sequence[str],
    absent: Sequence[str],
    unique: Sequence[ViewObject],
    legible: Sequence[ViewObject],
    tasks: Sequence[str],
) -> list[tuple[str, str, str]]:
    """The baselines' prompts about a view, answered from what it shows: ZoomEye's existence
    ("Is there a {c} object ...?", in its image / zoomed-in-view phrasings), latent ("is it
    possible to find it by zooming further": Yes while any {c} object is in the view, however
    small), answering ("Could you answer {shape question}?": Yes when the object is legible here,
    No when it is absent or too small to read) and per-target ("What is the appearance of the
    {c} object?" -> its shape); and the shape question with ViCrop's answer instruction."""
    out: list[tuple[str, str, str]] = []

    def pick(seq):
        return _pick(rng, seq)

    phrasing = pick((LOCAL_PROMPTS, GLOBAL_PROMPTS, ZOOM_PROMPTS))
    in_view = sorted({v.obj.color for v in view.objects})
    if "exists" in tasks:
        if present:
            out.append(("zoom_exists", phrasing["existence"].format(f"{pick(present)} object"), "Yes"))
        if absent:
            out.append(("zoom_exists", phrasing["existence"].format(f"{pick(absent)} object"), "No"))
        if in_view and rng.random() < 0.5:
            out.append(("zoom_latent", phrasing["latent"].format(f"{pick(in_view)} object"), "Yes"))
        elif absent:
            out.append(("zoom_latent", phrasing["latent"].format(f"{pick(absent)} object"), "No"))
    if "shape" in tasks:
        readable = sorted({v.obj.color for v in unique})
        # absent here, or here but too small to read (a colour with a legible instance is neither)
        unreadable = sorted(set(absent) | (set(in_view) - {v.obj.color for v in legible}))
        if readable and rng.random() < 0.5:
            c = pick(readable)
            out.append(("zoom_answer", phrasing["answering"].format(TEMPLATES["shape"].format(color=c)), "Yes"))
        elif unreadable:
            c = pick(unreadable)
            out.append(("zoom_answer", phrasing["answering"].format(TEMPLATES["shape"].format(color=c)), "No"))
        if unique:
            v = pick(unique)
            if rng.random() < 0.5:
                out.append(("shape", DECOMPOSED_QUESTION.format(f"{v.obj.color} object"), v.obj.shape))
            else:
                q = f"{TEMPLATES['shape'].format(color=v.obj.color)} {VICROP_INSTRUCTION}"
                out.append(("shape", q, v.obj.shape))
    return out


def extraction_sample(rng: np.random.Generator) -> tuple[str, str]:
    """(prompt text, continuation) of the target-extraction task for a random scene question."""
    colors, shapes = list(COLORS), list(SHAPES)
    c, o = rng.choice(colors, 2, replace=False)
    s = str(rng.choice(shapes))
    kind = str(rng.choice(list(TEMPLATES)))
    q = TEMPLATES[kind].format(color=c, other=o, shape=s)
    target = {
        "shape": f"{c} object",
        "exists": f"{c} object",
        "relation": f"{c} object and {o} object",
        "count": f"all {c} objects",
        "color": s,
    }[kind]
    user = extraction_prompt(q).rsplit(f"\n{ANSWER_LEAD}", 1)[0]
    return f"USER: {user.strip()} ASSISTANT:{ANSWER_LEAD}", f" {target}"


def scene_style(style: str, k: int) -> str:
    """The style scene ``k`` of a stage is drawn in: ``"mixed"`` alternates plain and varied scenes,
    so the generator's own scenes stay half of the data (reading them must not get worse) while
    the other half teaches what a colourful background is not."""
    if style == "mixed":
        return "varied" if k % 2 else "plain"
    return style


class SceneSamples(torch.utils.data.Dataset):
    """Item ``i``: scene ``i`` of ``seed`` turned into views (pixels + patch labels) and questions."""

    def __init__(self, cfg: TrainConfig, stage: StageConfig, seed: int, length: int, tasks: Sequence[str]):
        # a stage may draw other scenes or ask other prompts than the recipe's
        method = cfg.method_prompts if stage.method_prompts is None else stage.method_prompts
        cfg = replace(cfg, scene_style=stage.scene_style or cfg.scene_style, method_prompts=method)
        self.cfg, self.stage, self.seed, self.length, self.tasks = cfg, stage, seed, length, tuple(tasks)
        self._processor = None
        self._last: Scene | None = None
        self._frame_square: np.ndarray | None = None  # the last scene's full-frame view, once rendered

    def __len__(self) -> int:
        return self.length

    def image_processor(self):
        # only the image processor: loader processes need no tokenizer (training one costs seconds)
        if self._processor is None:
            self._processor = build_image_processor(self.cfg.shape)
        return self._processor

    def scene(self, i: int) -> Scene:
        """The scene item ``i`` draws from (scene ``i // scene_reuse``); the last one is kept, since
        the batch sampler asks for consecutive items."""
        k = i // max(1, self.stage.scene_reuse)
        if self._last is None or self._last.index != k:
            self._last = make_scene(
                self.seed,
                k,
                SceneSpec(short_side=self.cfg.train_short_side, style=scene_style(self.cfg.scene_style, k)),
            )
            self._frame_square = None
        return self._last

    def _square(self, scene: Scene, region: tuple[int, int, int, int], fill: tuple[int, int, int]) -> np.ndarray:
        # items sharing a scene share its full-frame view, the costliest one to render
        full = tuple(region) == (0, 0, scene.width, scene.height)
        if full and self._frame_square is not None:
            return self._frame_square
        sq = render_view(scene.image, region, fill, 2 * self.cfg.shape.image_size)[0]
        if full:
            self._frame_square = sq
        return sq

    def __getitem__(self, i: int) -> dict:
        cfg = self.cfg
        scene = self.scene(i)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, i, 7]))
        views = sample_views(rng, scene, self.stage.crops_per_scene, self.stage.frames, cfg)
        proc = self.image_processor()
        fill = processor_fill(proc)
        squares = [self._square(scene, v.region, fill) for v in views]
        pixels = proc(images=squares, return_tensors="pt")["pixel_values"]
        targets = [patch_targets(v.objects, cfg.shape.grid, cfg.shape.patch_size, cfg.legible_px) for v in views]
        questions = []
        if self.tasks:
            for k, v in enumerate(views):
                for kind, q, a in view_questions(rng, scene, v, cfg, self.tasks, self.stage.near_negatives):
                    questions.append((k, kind, q, a))
        text = [extraction_sample(rng) for _ in range(3)] if "extract" in self.tasks else []
        paired = paired_questions(rng, scene, views, cfg, self.stage.paired) if self.tasks else []
        return {
            "pixels": pixels,
            "color": torch.from_numpy(np.stack([t[0] for t in targets])),
            "shape": torch.from_numpy(np.stack([t[1] for t in targets])),
            "cells": torch.from_numpy(np.stack([t[2] for t in targets])),
            "questions": questions,
            "paired": paired,
            "text": text,
        }


def collate(items: list[dict]) -> dict:
    offsets = np.cumsum([0] + [len(it["pixels"]) for it in items])
    return {
        "pixels": torch.cat([it["pixels"] for it in items]),
        "color": torch.cat([it["color"] for it in items]),
        "shape": torch.cat([it["shape"] for it in items]),
        "cells": torch.cat([it["cells"] for it in items]),
        "questions": [
            (int(offsets[n] + k), kind, q, a) for n, it in enumerate(items) for k, kind, q, a in it["questions"]
        ],
        "paired": [
            (int(offsets[n] + f), int(offsets[n] + c), q, a)
            for n, it in enumerate(items)
            for f, c, q, a in it.get("paired", ())
        ],
        "text": [t for it in items for t in it["text"]],
    }


# ----------------------------------------------------------------------------- sequences
class Sequencer:
    """Token ids exactly as the LLaVA adapter builds them at inference: the image prefix
    ``<s>USER: <image>x256\\n`` (one processor call), the question ``{q} ASSISTANT:`` tokenised on its
    own, then the answer tokens and ``</s>``."""

    def __init__(self, tokenizer, n_image_tokens: int):
        self.tok = tokenizer
        self.n_image = n_image_tokens
        self.image_id = tokenizer.convert_tokens_to_ids("<image>")
        prefix = tokenizer("USER: <image>\n", add_special_tokens=True)["input_ids"]
        at = prefix.index(self.image_id)
        self.prefix = prefix[:at] + [self.image_id] * n_image_tokens + prefix[at + 1 :]
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id

    def ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def image_qa(self, question: str, answer: str) -> tuple[list[int], int]:
        """(ids, index of the first answer token) for a question about an image."""
        body = self.prefix + self.ids(f"{question.strip()} ASSISTANT:")
        return body + self.ids(" " + answer) + [self.eos], len(body)

    def paired_qa(self, question: str, answer: str) -> tuple[list[int], int]:
        """(ids, index of the first answer token) for a question about the frame and then a crop
        (ViCrop's [original, crop]): the frame's prefix, then ``<image>x256\\n{q} ASSISTANT:`` in one
        tokenizer call, as the processor tokenises what ``extend_with_image`` adds."""
        second = self.ids(f"<image>\n{question.strip()} ASSISTANT:")
        at = second.index(self.image_id)
        body = self.prefix + second[:at] + [self.image_id] * self.n_image + second[at + 1 :]
        return body + self.ids(" " + answer) + [self.eos], len(body)

    def text_qa(self, prompt: str, answer: str) -> tuple[list[int], int]:
        body = self.ids(prompt)
        return body + self.ids(answer) + [self.eos], len(body)

    def pad_batch(self, seqs: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, attention mask), [len(seqs), longest]: right-padded with the pad token."""
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for n, s in enumerate(seqs):
            ids[n, : len(s)] = torch.tensor(s)
            mask[n, : len(s)] = 1
        return ids, mask


def symbolic_label_map(rng: np.random.Generator, grid: int) -> np.ndarray:
    """A [grid, grid] colour-class map like a view's patch labels: 0-5 square objects of 1-4 cells
    in random vocabulary colours on background (0)."""
    m = np.zeros((grid, grid), np.int64)
    for _ in range(int(rng.integers(0, 6))):
        side = int(rng.integers(1, 5))
        y, x = rng.integers(0, grid - side + 1, size=2)
        m[y : y + side, x : x + side] = int(rng.integers(1, len(COLOR_CLASSES)))
    return m


def symbolic_questions(rng: np.random.Generator, seq: Sequencer, n: int, grid: int, per_map: int = 1):
    """``n`` existence questions (balanced, each drawn on its own) about random symbolic label maps,
    ``per_map`` per map: (maps [M, grid, grid], map index per question, token ids of each question up
    to and including its Yes/No answer token, index of that token)."""
    colors = list(COLOR_CLASSES[1:])
    maps, group_of, seqs, starts = [], [], [], []
    for i in range(n):
        if i % per_map == 0:
            m = symbolic_label_map(rng, grid)
            maps.append(m)
            present = sorted(set(int(c) for c in m.flatten()) - {0})
            absent = [k for k in range(1, len(COLOR_CLASSES)) if k not in present]
        yes = bool(present) and (not absent or rng.random() < 0.5)
        c = colors[(present if yes else absent)[int(rng.integers(len(present if yes else absent)))] - 1]
        ids, st = seq.image_qa(existence_phrasing(rng)(c), "Yes" if yes else "No")
        group_of.append(len(maps) - 1), seqs.append(ids[: st + 1]), starts.append(st)
    return np.stack(maps), group_of, seqs, starts


__all__ = [
    "IGNORE",
    "STAGE_TASKS",
    "ViewObject",
    "View",
    "render_view",
    "view_objects",
    "object_masks",
    "patch_targets",
    "sample_views",
    "existence_prompt",
    "existence_phrasing",
    "view_questions",
    "method_questions",
    "extraction_sample",
    "SceneSamples",
    "collate",
    "Sequencer",
    "symbolic_label_map",
    "symbolic_questions",
]
