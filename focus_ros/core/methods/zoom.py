"""``zoom``: a ZoomEye-like zoom tree (Shen et al. 2024, "ZoomEye: Enhancing Multimodal LLMs with
Human-Like Zooming Capabilities through Tree-Based Image Exploration"), on our adapters.

The frame is the root of a tree; a node's children are its four quadrants. Per target, a
best-first search (a heap) pops the most promising node:

- *answering confidence* ``c_a`` (single-target questions): P(Yes) of "Could you answer the
  question based on the available visual information?" on the popped view; the search stops when
  ``c_a >= zoom.answer_threshold`` (0.6). Multi-target questions use the target's existence
  confidence as the stop instead (each target is searched on its own); counting ("all X")
  questions never stop early and keep every popped leaf-most view whose existence > 0.6.
- a popped node that may still be zoomed (depth < ``zoom.max_depth`` and long side >
  ``zoom.native_side``: below the encoder's input size zooming adds no pixels) is expanded: each
  quadrant is encoded once and scored with the *existence* confidence ``c_e`` (FOCUS's existence
  prompt) and, if it may itself be zoomed, the *latent* confidence ``c_l`` ("is it possible to
  find the target by zooming in further?").
- priority of a child at depth d: ``w c_l + (1 - w) c_e`` with ``w = 1 - d / max_depth`` (shallow
  views rely on "would zooming help", deep ones on "is it here"), ``w = 0`` for a leaf.
- at most ``zoom.max_steps`` pops per target; without a stop, the popped view with the highest
  ``c_a`` (``c_e`` for multi-target) is chosen.

Costs, counted like every method: the root is the frame's cached prefix; every child costs one
image prefill plus one (leaf) or two prompt extensions; every pop one extension (``c_a``, or
``c_e`` of the root). Prefixes of nodes waiting in the heap are kept until popped (their ``c_a``
extends them); a popped node keeps its prefix only while it is the best so far.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Hashable

import numpy as np

from ..geometry import Box, crop
from ..models import ImagePrefix, Meter
from ..targets import TYPE_ALL, Target
from .answer import Choices

if TYPE_CHECKING:   # pragma: no cover
    from ..pipeline import FocusPipeline, FocusResult

ANSWERING_PROMPT = ("Question: {question}\nCould you answer the question based on the available visual "
                    "information? Answer Yes or No.")
LATENT_PROMPT = ("According to common sense and the content of the image, is it possible to find a {target} "
                 "by further zooming in the image? Answer Yes or No.")


@dataclass
class Node:
    """A view of the frame in the zoom tree."""

    box: Box
    depth: int
    existence: float = -1.0
    latent: float = -1.0
    answering: float = -1.0
    priority: float = 0.0
    prefix: ImagePrefix | None = None
    parent: "Node | None" = None

    def inside(self, other: "Node") -> bool:
        node = self.parent
        while node is not None:
            if node is other:
                return True
            node = node.parent
        return False


def quadrants(box: Box) -> list[Box]:
    """The four quadrants of a box (integer pixel edges), row-major."""
    x0, y0, x1, y1 = box.to_int()
    xm, ym = (x0 + x1) // 2, (y0 + y1) // 2
    return [Box(x0, y0, xm, ym), Box(xm, y0, x1, ym), Box(x0, ym, xm, y1), Box(xm, ym, x1, y1)]


class ZoomSearch:
    """One target's best-first search over the zoom tree of one frame."""

    def __init__(self, pipe: "FocusPipeline", image: np.ndarray, question: str, meter: Meter,
                 check: Callable[[], None], progress: Callable):
        self.pipe, self.image, self.question, self.meter = pipe, image, question, meter
        self.check, self.progress = check, progress
        self.cfg = pipe.zoom
        self.adapter = pipe.adapter

    def _yes(self, prefix: ImagePrefix, text: str) -> float:
        ext = self.adapter.extend(prefix, self.adapter.question_text(text), self.meter)
        return self.adapter.yes_probability(ext.logits)

    def expandable(self, node: Node) -> bool:
        return node.depth < self.cfg.max_depth and max(node.box.width, node.box.height) > self.cfg.native_side \
            and min(node.box.width, node.box.height) >= 2

    def _child(self, parent: Node, box: Box, target: Target) -> Node:
        node = Node(box, parent.depth + 1, parent=parent)
        node.prefix = self.adapter.prefill_image(crop(self.image, box), self.meter)
        node.existence = self.adapter.yes_probability(
            self.adapter.extend(node.prefix, self.adapter.existence_text(target.phrase), self.meter).logits)
        if self.expandable(node):
            node.latent = self._yes(node.prefix, LATENT_PROMPT.format(target=target.phrase))
            w = 1.0 - node.depth / max(1, self.cfg.max_depth)
        else:
            w = 0.0
        node.priority = w * max(node.latent, 0.0) + (1.0 - w) * node.existence
        return node

    def run(self, root: Node, target: Target, mode: str, on_node: Callable[[Node, Target], None]) -> list[Node]:
        """Search for ``target``; ``mode``: "answer" (stop on c_a), "exist" (stop on c_e) or "all"."""
        cfg = self.cfg
        order = itertools.count()
        heap: list[tuple[float, int, Node]] = [(-1.0, next(order), root)]
        popped: list[Node] = []
        best: Node | None = None

        def score(n: Node) -> float:
            return n.answering if mode == "answer" else n.existence

        for step in range(1, cfg.max_steps + 1):
            if not heap:
                break
            self.check()
            _, _, node = heapq.heappop(heap)
            if mode == "answer":
                node.answering = self._yes(node.prefix, ANSWERING_PROMPT.format(question=self.question))
            elif node.existence < 0:                       # the root: not scored when created
                node.existence = self.adapter.yes_probability(
                    self.adapter.extend(node.prefix, self.adapter.existence_text(target.phrase), self.meter).logits)
            popped.append(node)
            self.progress("search", step, cfg.max_steps, None)
            if mode != "all" and score(node) >= cfg.answer_threshold:
                return [node]
            if self.expandable(node):
                for box in quadrants(node.box):
                    self.check()
                    child = self._child(node, box, target)
                    on_node(child, target)
                    heapq.heappush(heap, (-child.priority, next(order), child))
            if best is None or score(node) > score(best):
                if best is not None and best is not root:
                    best.prefix = None
                best = node
            elif node is not root:
                node.prefix = None                         # popped, not the best: free its cache
        if mode == "all":
            kept = [n for n in popped if n.existence > self.pipe.search.type2_threshold]
            kept = [n for n in kept if not any(o is not n and o.inside(n) for o in kept)]
            if kept:
                return kept
        return [best] if best is not None else [root]


def run_zoom(pipe: "FocusPipeline", image: np.ndarray, choices: Choices, key: Hashable | None, meter: Meter,
             clock, result: "FocusResult", check: Callable[[], None], progress: Callable) -> None:
    """The ``zoom`` method: targets (as FOCUS), a zoom-tree search per target, the shared answer step."""
    from ..pipeline import Region

    adapter, question = pipe.adapter, choices.stem
    targets, prefix = pipe.targets_and_prefix(image, question, key, meter, clock, result, check, progress)
    w, h = result.image_size
    root_box = Box(0, 0, w, h)
    chosen: list[Node] = []
    if targets:
        if any(t.kind == TYPE_ALL for t in targets) or result.question_type == TYPE_ALL:
            mode = "all"
        else:
            mode = "answer" if len(targets) == 1 else "exist"
        search = ZoomSearch(pipe, image, question, meter, check, progress)

        def on_node(node: Node, target: Target) -> None:
            result.regions.append(Region(node.box, target.phrase, float(node.priority), float(node.existence)))

        for target in targets:
            chosen.extend(search.run(Node(root_box, 0, prefix=prefix), target, mode, on_node))
    clock.lap("search")
    check()
    progress("answer", 0, 0, None)
    if not chosen or all(n.depth == 0 for n in chosen):
        # the whole frame: answer from its cached prefix, as vanilla does
        ext = adapter.extend(prefix, adapter.question_text(question), meter)
        pipe.respond(ext, choices, meter, result)
        result.bbox = root_box
        confs = [n.answering if n.answering >= 0 else n.existence for n in chosen]
    else:
        crop_prefixes = {n.box: n.prefix for n in chosen if n.prefix is not None}
        pipe.answer_from_boxes(image, prefix, [n.box for n in chosen], choices, meter, result, crop_prefixes)
        confs = [n.answering if n.answering >= 0 else n.existence for n in chosen]
    result.confidence = float(np.mean(confs)) if confs else -1.0
    clock.lap("answer")
