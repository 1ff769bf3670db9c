"""``zoom``: ZoomEye's tree search (Shen et al. 2024, "ZoomEye: Enhancing Multimodal LLMs with
Human-Like Zooming Capabilities through Tree-Based Image Exploration"), on our adapters.

Written after the authors' public code (om-ai-lab/ZoomEye: ``ZoomEye/zoom_eye.py``, ``tree.py``,
``zoom_model.py``, ``eval/perform_zoom_eye.py``); the defaults are theirs (``ZoomConfig``).

The tree: the frame is the root; a node whose long side is at least the encoder's input side is
split into four sub-patches (2 x 2, or four strips along a side twice as long as the other).
Every confidence is ZoomEye's ``c = 2 P(Yes) - 1`` in [-1, 1], P(Yes) from the Yes/No logits.

What the model sees for a node (ZoomEye per model, ``zoom.view``):

- ``local`` (LLaVA-1.5, single image): the root is the frame; any other node is the crop of its
  *patch* (the node's box grown to at least the input side around its centre).
- ``global`` (OneVision, Qwen2.5-VL): the root is the frame; any other node is two images, the
  frame with a red rectangle drawn around the patch (grown by 1.2), down-sized to the input side,
  then the zoomed-in crop of that rectangle, captioned as ZoomEye captions them.

Type-1 targets (one object): best-first search. Pop the node of highest priority; its answering
confidence ``c_a`` (the question, or "What is the appearance of the {target}?" when the question
has several targets) stops the search at ``c_a >= zoom.answer_threshold`` (0.6; Qwen2.5-VL:
0.95). After ``3 x depth`` pops without a stop the threshold relaxes (by 0.1, 0.1, then 0.2 per
step; Qwen2.5-VL: 0.05, 0.1, 0.2), two more pops are granted, and the best popped node that meets
the relaxed threshold is taken; below ``zoom.threshold_lower`` the search gives up. Children are
pushed unless the node is a leaf or at the depth limit; a child's priority is
``w c_e + (1 - w) c_l`` (existence, "found by zooming further"), ``w = b + (1 - b) (d / D)^2``
rising from ``b`` (0.2 LLaVA-1.5, 0.6 multi-image) at the root to 1 at depth ``D``.
With several targets each is searched on its own: LLaVA-1.5 may not answer from the root, the
search continues until it has popped a bottom node, and the deepest accepted node is kept; on the
multi-image models the root is asked first per target (on a down-sized frame) and, if any target
is answerable there, the whole frame answers.

Type-2 targets ("all X", counting): every node down to depth 2 gets ``c_e``; a node is kept when
``c_e >= 0.6`` and no node below it is more confident (a post-order walk).

The answer: from the frame when nothing (or the root) was kept; else from the kept nodes' view,
built as the node views are (one merged crop, or two far-apart crops side by side for LLaVA-1.5;
the frame with every box drawn plus the zoom of their union for multi-image models).

Costs, counted like every method: the root is the frame's cached prefix; a ``local`` node costs
one image prefill, a ``global`` node a prefill of the boxed frame plus one extension with the zoom;
every confidence is one extension of the node's view. A single kept node's view is reused for the
answer. docs/benchmark.md lists where this differs from the authors' code.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..geometry import Box, crop, union_all
from ..models import Extension, ImagePrefix, VLMAdapter
from ..models.llava import expand_to_square
from ..results import Region, TargetOutcome
from ..targets import TYPE_ALL, Target

if TYPE_CHECKING:  # pragma: no cover
    from ..pipeline import FocusPipeline
    from ..run_context import QuestionRun

LOG = logging.getLogger(__name__)

View = ImagePrefix | Extension

# ZoomEye's prompts, verbatim (its "the the" included: the model was probed with it).
_ANSWERING = (
    "Question: {}\nCould you answer the question based on the the available visual information? Answer Yes or No."
)
LOCAL_PROMPTS = {
    "existence": "Is there a {} in the image? Answer Yes or No.",
    "latent": (
        "According to your common sense knowledge and the content of the image, is it possible to find "
        "a {} in the image? Answer Yes or No and tell the reason."
    ),
    "answering": _ANSWERING,
}
GLOBAL_PROMPTS = {
    "existence": "Is there a {} in the image? Answer Yes or No.",
    "latent": (
        "According to your common sense knowledge and the content of image, is it possible to find a {} "
        "by further zooming in the image? Answer Yes or No and tell the reason."
    ),
    "answering": _ANSWERING,
}
ZOOM_PROMPTS = {
    "existence": "Is there a {} in the zoomed-in view? Answer Yes or No.",
    "latent": (
        "According to your common sense knowledge and the content of the zoomed-in view, along with its "
        "location in the image, is it possible to find a {} by further zooming in the current view? "
        "Answer Yes or No and tell the reason."
    ),
    "answering": _ANSWERING,
}
MAIN_CAPTION = "This is the main image, and the section enclosed by the red rectangle is the focus region.\n"
ZOOM_CAPTION = "This is the zoomed-in view of the focus region.\n"
BOX_RGB = (255, 0, 0)  # always red: ZoomEye's switch to blue sets a local variable, so its boxes stay red too
NEAR_PX = 50  # ZoomEye merges patches closer than this before cropping or drawing them
QWEN_INPUT_SIDE = 448  # ZoomEye fixes Qwen2.5-VL's "input size" (it has none of its own) to 448 px


# ----------------------------------------------------------------------------- the rules, as functions
def confidence(p_yes: float) -> float:
    """ZoomEye's confidence of a Yes/No prompt: ``2 P(Yes) - 1`` (0: undecided)."""
    return 2.0 * p_yes - 1.0


def existence_weight(depth: int, max_depth: int, bias: float) -> float:
    """Weight of the existence confidence in a node's priority: ``bias`` at the root, 1 at ``max_depth``,
    quadratic in between (ZoomEye's ``get_confidence_weight``); the latent one gets ``1 - w``."""
    if max_depth <= 0 or depth >= max_depth:
        return 1.0
    return bias + (1.0 - bias) * depth * depth / (max_depth * max_depth)


def relaxed_thresholds(upper: float, decrease: Sequence[float], lower: float) -> list[float]:
    """The answering threshold after each relaxation, the last one the first below ``lower`` (where
    ZoomEye gives up, after one last look at what was popped)."""
    steps, out, t = list(decrease), [], upper
    while True:
        t -= steps[0]
        if len(steps) > 1:
            steps.pop(0)
        out.append(t)
        if t < lower:
            return out


def split_counts(width: int, height: int) -> tuple[int, int]:
    """ZoomEye's split: four strips along a side at least twice the other, else 2 x 2. (columns, rows)"""
    ratio = height / width
    if ratio >= 2:
        return 1, 4
    if ratio <= 0.5:
        return 4, 1
    return 2, 2


def sub_boxes(box: Box) -> list[Box]:
    """The four sub-patches of an integer box, row-major; the last column / row takes the remainder.
    Empty when a sub-patch would have no pixels."""
    x0, y0, x1, y1 = box.to_int()
    w, h = x1 - x0, y1 - y0
    if w < 1 or h < 1:
        return []
    nw, nh = split_counts(w, h)
    sw, sh = w // nw, h // nh
    if sw < 1 or sh < 1:
        return []
    out = []
    for j in range(nh):
        for i in range(nw):
            cw = w - i * sw if i == nw - 1 else sw
            ch = h - j * sh if j == nh - 1 else sh
            out.append(Box(x0 + i * sw, y0 + j * sh, x0 + i * sw + cw, y0 + j * sh + ch))
    return out


def is_leaf(box: Box, side: int) -> bool:
    """A node is not split once its long side is below the encoder's input side."""
    return max(box.width, box.height) < side or not sub_boxes(box)


@functools.lru_cache(maxsize=4096)
def tree_depth(width: int, height: int, side: int, cap: int) -> int:
    """Depth of the deepest node of the tree over a ``width`` x ``height`` box (at most ``cap``)."""
    box = Box(0, 0, width, height)
    if cap <= 0 or is_leaf(box, side):
        return 0
    return 1 + max(tree_depth(int(b.width), int(b.height), side, cap - 1) for b in sub_boxes(box))


def count_nodes(width: int, height: int, side: int, depth: int) -> int:
    """Nodes of the tree over a ``width`` x ``height`` box down to ``depth`` (root included)."""
    box = Box(0, 0, width, height)
    if depth <= 0 or is_leaf(box, side):
        return 1
    return 1 + sum(count_nodes(int(b.width), int(b.height), side, depth - 1) for b in sub_boxes(box))


def patch_box(box: Box, width: int, height: int, side: int, scale: float) -> Box:
    """What ZoomEye crops for a node: its box grown to at least ``side`` around its centre, times
    ``scale``, then cut at the frame's far edges (ZoomEye's ``get_patch``)."""
    w, h = box.width, box.height
    cx, cy = int(box.x0 + w / 2), int(box.y0 + h / 2)
    pw, ph = max(math.ceil(w), side), max(math.ceil(h), side)
    if scale != 1.0:
        pw, ph = int(pw * scale), int(ph * scale)
    left, top = max(0, cx - pw // 2), max(0, cy - ph // 2)
    return Box(left, top, min(left + pw, width), min(top + ph, height))


def _near(a: Box, b: Box, gap: float) -> bool:
    return (min(a.x1, b.x1) + gap > max(a.x0, b.x0) - gap) and (min(a.y1, b.y1) + gap > max(a.y0, b.y0) - gap)


def merge_near(boxes: Sequence[Box], gap: float = NEAR_PX) -> list[Box]:
    """Replace any two boxes closer than ``gap`` px by their union, until none are. (Deviation: our
    loop; with three or more chained boxes its groups can differ from ZoomEye's passes, the union
    cannot.)"""
    out = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                if _near(out[i], out[j], gap):
                    joined = out[i].union(out[j])
                    out = [b for k, b in enumerate(out) if k not in (i, j)]
                    out.insert(i, joined)
                    merged = True
                    break
            if merged:
                break
    return out


# ----------------------------------------------------------------------------- images the model sees
def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.array(Image.fromarray(np.ascontiguousarray(image)).resize((max(1, width), max(1, height))))


def fit_long_side(image: np.ndarray, side: int) -> np.ndarray:
    """Resized so that its long side is ``side`` (ZoomEye's ``resize_image`` for Qwen2.5-VL)."""
    h, w = image.shape[:2]
    return _resize(image, side, int(h * side / w)) if w > h else _resize(image, int(w * side / h), side)


def pad_square(image: np.ndarray, fill: tuple[int, int, int]) -> tuple[np.ndarray, int, int]:
    """The image centred on a square of ``fill`` (ZoomEye's ``expand2square``, LLaVA's own
    :func:`expand_to_square`), always a new array (rectangles are drawn on it); and its offset."""
    h, w = image.shape[:2]
    side = max(h, w)
    square = expand_to_square(image, fill)
    return (square.copy() if square is image else square), (side - w) // 2, (side - h) // 2


def draw_rectangle(
    canvas: np.ndarray, box: tuple[int, int, int, int], thickness: int, rgb: tuple[int, int, int] = BOX_RGB
) -> None:
    """An outline ``thickness`` px wide inside ``box`` (inclusive corners, like PIL's rectangle)."""
    if thickness <= 0:
        return
    h, w = canvas.shape[:2]
    x0, y0, x1, y1 = box[0], box[1], min(box[2], w - 1), min(box[3], h - 1)
    colour = np.asarray(rgb, dtype=np.uint8)
    canvas[y0 : min(y0 + thickness, y1 + 1), x0 : x1 + 1] = colour
    canvas[max(y0, y1 - thickness + 1) : y1 + 1, x0 : x1 + 1] = colour
    canvas[y0 : y1 + 1, x0 : min(x0 + thickness, x1 + 1)] = colour
    canvas[y0 : y1 + 1, max(x0, x1 - thickness + 1) : x1 + 1] = colour


def boxed_views(
    image: np.ndarray, patches: Sequence[Box], fill: tuple[int, int, int], input_side: int, keep_aspect: bool
) -> tuple[np.ndarray, np.ndarray, Box]:
    """ZoomEye's two images for multi-image models: the frame (padded square, or the frame itself
    when ``keep_aspect``, Qwen) with a rectangle around each merged patch, down-sized to
    ``input_side``; the zoomed-in crop of the rectangles' union (outline included). And that union
    in source pixels."""
    square, left, top = pad_square(image, fill)
    side = square.shape[0]
    thickness = side // 120
    outlined = []
    for b in merge_near(patches):
        x0, y0, x1, y1 = (int(v) for v in (b.x0 + left, b.y0 + top, b.x1 + left, b.y1 + top))
        drawn = (max(0, x0 - thickness), max(0, y0 - thickness), min(side, x1 + thickness), min(side, y1 + thickness))
        draw_rectangle(square, drawn, thickness)
        outlined.append(Box(*drawn))
    u = union_all(outlined)
    zoom = square[int(u.y0) : int(u.y1), int(u.x0) : int(u.x1)]
    if keep_aspect:
        h, w = image.shape[:2]
        main = fit_long_side(square[top : top + h, left : left + w], input_side)
    else:
        main = _resize(square, input_side, input_side)
    return main, zoom, Box(u.x0 - left, u.y0 - top, u.x1 - left, u.y1 - top).clip(*image.shape[1::-1])


def paste_pair(image: np.ndarray, a: Box, b: Box, side: int, fill: tuple[int, int, int]) -> np.ndarray:
    """Two far-apart crops, each resized to ``side`` x ``side``, left and right on a 2-side square,
    shifted vertically by half their centres' offset (ZoomEye's ``union_blocks_independent``)."""
    if a.x0 > b.x0:
        a, b = b, a
    canvas = np.empty((2 * side, 2 * side, 3), dtype=np.uint8)
    canvas[:] = np.asarray(fill, dtype=np.uint8)
    offset = int(np.clip(int(b.center[1]) - int(a.center[1]), -side, side))
    for k, (box, y) in enumerate(((a, side // 2 - offset // 2), (b, side // 2 + offset // 2))):
        y = min(max(y, 0), side)  # PIL's paste clips what falls off the canvas
        canvas[y : y + side, k * side : (k + 1) * side] = _resize(crop(image, box), side, side)
    return canvas


def model_input_side(adapter: VLMAdapter) -> int:
    """The side (px) of one encoder input: what ZoomEye splits down to and ViCrop crops at."""
    if adapter.family == "qwen2_5_vl":
        return QWEN_INPUT_SIDE
    return int(adapter.model.config.vision_config.image_size)


def background_fill(adapter: VLMAdapter) -> tuple[int, int, int]:
    """The processor's mean colour: what ZoomEye pads squares with."""
    mean = getattr(adapter.processor.image_processor, "image_mean", None) or (0.5, 0.5, 0.5)
    return tuple(int(255 * m) for m in mean[:3])


# ----------------------------------------------------------------------------- the search
@dataclass(eq=False)
class Node:
    """A node of the zoom tree; confidences are ``2 P(Yes) - 1``, None until asked."""

    box: Box
    depth: int
    existence: float | None = None
    latent: float | None = None
    answering: float | None = None
    priority: float | None = None
    view: View | None = None


class ZoomEye:
    """ZoomEye's searches on one frame for one question."""

    def __init__(
        self, pipe: FocusPipeline, ctx: QuestionRun, prefix: ImagePrefix, on_node: Callable[[Node, str], None]
    ):
        self.cfg, self.adapter = pipe.zoom, pipe.adapter
        self.image, self.prefix, self.meter = ctx.image, prefix, ctx.meter
        self.check, self.progress, self.on_node = ctx.check, ctx.progress, on_node
        self.height, self.width = ctx.image.shape[:2]
        view = self.cfg.view if self.cfg.view != "auto" else ("local" if self.adapter.family == "llava" else "global")
        self.local = view == "local"
        self.input_side = model_input_side(self.adapter)
        self.side = self.cfg.native_side or self.input_side
        self.bias = self.cfg.bias_local if self.local else self.cfg.bias_global
        self.scale = self.cfg.patch_scale_local if self.local else self.cfg.patch_scale_global
        self.fill = background_fill(self.adapter)
        qwen = self.adapter.family == "qwen2_5_vl"  # ZoomEye tuned its thresholds for Qwen2.5-VL apart
        self.upper = self.cfg.answer_threshold_qwen if qwen else self.cfg.answer_threshold
        self.decrease = self.cfg.threshold_decrease_qwen if qwen else self.cfg.threshold_decrease

    # ------------------------------------------------------------- views and confidences
    def root(self) -> Node:
        # Deviation: the frame prefix every method shares (OneVision: the processor's any-res grid;
        # ZoomEye caps it at 12 tiles).
        return Node(Box(0, 0, self.width, self.height), 0, view=self.prefix)

    def patch(self, node: Node) -> Box:
        return patch_box(node.box, self.width, self.height, self.side, self.scale)

    def build_view(self, patches: Sequence[Box]) -> tuple[View, Box]:
        """The model's view of these patches (see the module docstring) and the box it shows."""
        a, m = self.adapter, self.meter
        if self.local:
            merged = merge_near(patches)
            shown = union_all(merged)
            if len(merged) == 2 and max(shown.width, shown.height) > self.cfg.paste_side:
                pair = paste_pair(self.image, merged[0], merged[1], self.input_side, self.fill)
                return a.prefill_image(pair, m), shown
            return a.prefill_image(crop(self.image, shown), m), shown
        main, zoom, shown = boxed_views(
            self.image, patches, self.fill, self.input_side, keep_aspect=a.family == "qwen2_5_vl"
        )
        captions = MAIN_CAPTION + a.image_placeholder() + ZOOM_CAPTION
        return a.extend_with_image(a.prefill_image(main, m), zoom, captions, m), shown

    def view_of(self, node: Node) -> View:
        if node.view is None:
            node.view = self.build_view([self.patch(node)])[0]
        return node.view

    def ask(self, view: View, prompt: str) -> float:
        # Deviations: each view is encoded once and every prompt extends its cache (ZoomEye encodes
        # again per prompt: same outputs); P(Yes) is the shared Yes/No score of every method.
        ext = self.adapter.extend(view, self.adapter.question_text(prompt), self.meter)
        return confidence(self.adapter.yes_probability(ext.logits))

    def conf(self, node: Node, kind: str, arg: str) -> float:
        prompts = (
            (LOCAL_PROMPTS if self.local else GLOBAL_PROMPTS)
            if node.depth == 0
            else (LOCAL_PROMPTS if self.local else ZOOM_PROMPTS)
        )
        return self.ask(self.view_of(node), prompts[kind].format(arg))

    def children(self, node: Node) -> list[Node]:
        return [Node(b, node.depth + 1) for b in sub_boxes(node.box)] if not is_leaf(node.box, self.side) else []

    def score(self, node: Node, max_depth: int, phrase: str) -> float:
        """A queued node's priority (asked once): ``w c_e + (1 - w) c_l``. Deviation: c_l is not asked
        where w = 1 (ZoomEye asks it; it cannot change the priority there)."""
        if node.priority is None:
            self.check()
            w = existence_weight(node.depth, max_depth, self.bias)
            node.existence = self.conf(node, "existence", phrase)
            node.latent = self.conf(node, "latent", phrase) if w < 1.0 else None
            node.priority = w * node.existence + (1.0 - w) * (node.latent or 0.0)
            self.on_node(node, phrase)
        return node.priority

    # ------------------------------------------------------------- type 1
    def search(self, target: Target, question: str, force_no_root: bool, visit_bottom_first: bool) -> list[Node]:
        """ZoomEye's ``zoom_eye_search_type1``: the accepted nodes (empty: none was)."""
        cfg = self.cfg
        root = self.root()
        max_depth = tree_depth(self.width, self.height, self.side, cfg.max_depth)
        limit = cfg.pops_per_level * max_depth
        schedule = relaxed_thresholds(self.upper, self.decrease, cfg.threshold_lower)
        threshold, relaxations = self.upper, iter(schedule)
        queue, trace, accepted = [root], [], []
        bottom_seen = False
        best: Node | None = None  # highest c_a popped: what a relaxation would accept

        def relax_to(t: float) -> None:
            for n in trace:
                if n.answering is not None and n.answering >= t and n not in accepted:
                    accepted.append(n)
            if len(accepted) > 1:
                accepted.sort(key=lambda n: -n.answering)
                del accepted[1:]

        while queue:
            if cfg.max_steps and len(trace) >= cfg.max_steps:
                relax_to(schedule[-1])
                break  # our cap: accept what ZoomEye's last relaxation would
            self.check()
            node = queue.pop(0)
            trace.append(node)
            self.progress("search", len(trace), max(limit, len(trace)), None)
            stop = False
            if not (force_no_root and node.depth == 0):
                node.answering = self.conf(node, "answering", question)
                stop = node.answering >= threshold
                if best is None or node.answering > best.answering:
                    best = node
            if stop:
                accepted.append(node)
                if not visit_bottom_first or bottom_seen:
                    break
            elif len(trace) >= limit:
                threshold = next(relaxations)
                limit += cfg.pops_per_relaxation
                relax_to(threshold)
                if accepted or threshold < cfg.threshold_lower:
                    break
            kids = self.children(node) if node.depth < max_depth else []
            if not kids:
                bottom_seen = True
                if visit_bottom_first and accepted:
                    break
            queue.extend(kids)
            for n in queue:
                self.score(n, max_depth, target.existence_phrase)
            queue.sort(key=lambda n: -n.priority)  # stable: ties keep their order, as ZoomEye's sort
            if node is not root and node not in accepted and node is not best:
                node.view = None  # popped and no longer a candidate: free its cache
        for n in trace + queue:
            if n not in accepted and n is not root:
                n.view = None
        return accepted

    # ------------------------------------------------------------- type 2
    def search_all(self, target: Target) -> list[Node]:
        """ZoomEye's ``zoom_eye_search_type2``: every node down to ``zoom.type2_depth`` is asked
        whether the target is there; kept: confident ones that no node below them beats."""
        cfg, phrase = self.cfg, target.existence_phrase
        kept: list[Node] = []
        visited = [0]
        total = count_nodes(self.width, self.height, self.side, cfg.type2_depth)

        def walk(node: Node) -> float:
            best_below = -1.0
            if node.depth < cfg.type2_depth:
                for child in self.children(node):
                    best_below = max(best_below, walk(child))
            self.check()
            node.existence = self.conf(node, "existence", phrase)
            node.priority = node.existence
            visited[0] += 1
            self.progress("search", visited[0], total, None)
            if node.depth > 0:
                self.on_node(node, phrase)
            if node.existence >= max(best_below, cfg.type2_threshold):
                kept.append(node)
            elif node.depth > 0:
                node.view = None
            return max(best_below, node.existence)

        walk(self.root())
        return kept

    # ------------------------------------------------------------- several targets, multi-image models
    def answerable_at_root(self, targets: Sequence[Target]) -> bool:
        """ZoomEye's ``filter_visual_cues``: is any single-object target answerable on the down-sized
        frame already? (Then ZoomEye answers from the whole frame.)"""
        single = [t for t in targets if t.kind != TYPE_ALL]
        if not single:
            return False
        if self.adapter.family == "qwen2_5_vl":
            small = fit_long_side(self.image, self.input_side)
        else:
            small = _resize(pad_square(self.image, self.fill)[0], self.input_side, self.input_side)
        view = self.adapter.prefill_image(small, self.meter)
        for t in single:
            self.check()
            question = self.cfg.decomposed_question.format(t.phrase)
            if self.ask(view, GLOBAL_PROMPTS["answering"].format(question)) >= self.upper:
                return True
        return False


def zoom_outcome(eye: ZoomEye, phrase: str, nodes: list[Node]) -> TargetOutcome:
    """A target's own result: the patches ZoomEye accepted for it (found: its own stopping rule said
    so), with the mean of their confidences mapped to 0..1."""
    if not nodes:
        return TargetOutcome(phrase)
    confs = [n.answering if n.answering is not None else n.existence for n in nodes]
    confidence = float(np.mean([(c + 1.0) / 2.0 for c in confs if c is not None] or [0.0]))
    return TargetOutcome(phrase, union_all([eye.patch(n) for n in nodes]), confidence, True)


def run_zoom(pipe: FocusPipeline, ctx: QuestionRun) -> None:
    """The ``zoom`` method: targets (shared extraction), ZoomEye's search per target, its answer view."""
    adapter, question, result = pipe.adapter, ctx.question, ctx.result
    # Deviation: the shared target extraction (every method searches the same targets), not
    # ZoomEye's in-context prompt; "all X" targets are those of a counting question.
    targets, prefix = pipe.targets_and_prefix(ctx)
    w, h = ctx.size

    def on_node(node: Node, phrase: str) -> None:
        result.regions.append(Region(node.box, phrase, float(node.priority), (float(node.existence) + 1.0) / 2.0))

    eye = ZoomEye(pipe, ctx, prefix, on_node)
    if len(targets) > 1 and not eye.local and eye.answerable_at_root(targets):
        LOG.debug("a target is answerable on the whole frame: no search")
        targets = []
    one_target = len(targets) == 1 and targets[0].kind != TYPE_ALL
    searched: list[Node] = []
    for target in targets:
        if target.kind == TYPE_ALL:
            found = eye.search_all(target)
        else:
            q = question if one_target else pipe.zoom.decomposed_question.format(target.phrase)
            accepted = eye.search(
                target, q, force_no_root=eye.local and not one_target, visit_bottom_first=not one_target
            )
            found = [max(accepted, key=lambda n: n.depth)] if accepted else []  # the first of the deepest, as ZoomEye
        searched.extend(found)
        result.target_results.append(zoom_outcome(eye, target.phrase, found))
    ctx.lap("search")
    ctx.check()
    ctx.progress("answer", 0, 0, None)
    if not searched or any(n.depth == 0 for n in searched):
        view, result.bbox = prefix, Box(0, 0, w, h)  # the frame alone, from its cached prefix
    elif len(searched) == 1 and searched[0].view is not None:
        view, result.bbox = searched[0].view, eye.patch(searched[0])
    else:
        view, result.bbox = eye.build_view([eye.patch(n) for n in searched])
    # the shared answer step: greedy text up to search.max_new_tokens (ZoomEye: 256), or option likelihood
    pipe.respond(ctx, adapter.extend(view, adapter.question_text(question), ctx.meter))
    confs = [n.answering if n.answering is not None else n.existence for n in searched]
    result.confidence = float(np.mean([(c + 1.0) / 2.0 for c in confs])) if confs else -1.0
    ctx.lap("answer")
