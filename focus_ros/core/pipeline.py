"""FOCUS's model and shared steps: the frame prefix cache, targets, relevance, proposals,
verification and the answer step, on one adapter.

A frame's image prefix is prefilled once (:meth:`FocusPipeline.prefix`, a small LRU keyed by the
caller's frame key); every existence prompt and the final answer on that frame extend a fork of
its KV cache. Verification crops are prefilled once each (a target's first ``search.max_steps``
together, in one batched forward), and the chosen crop's prefix is reused for the answer.
What depends only on the model or the frame is not computed twice: the few-shot
target-extraction prompt's examples are prefilled once per model
(:meth:`FocusPipeline.extraction_extension`), and a target's relevance map is kept per cached
frame in :attr:`FocusPipeline.memo` (:mod:`.memo`); a result counts the passes such reuse saved in
``reused_passes``, never in ``forward_passes``.

:meth:`FocusPipeline.run` validates a question, builds its :class:`~.run_context.QuestionRun`
and hands it to the method's runner (:mod:`focus_ros.core.methods`: vanilla, FOCUS, and the
baselines zoom tree, attention crop and random windows), all on the same adapter with the same
cost accounting. FOCUS and random windows answer through :meth:`FocusPipeline.answer_from_boxes`;
the zoom tree and the attention crop build the views their authors show the model; every method
ends in :meth:`FocusPipeline.respond` (greedy text, or the likeliest option of a multiple-choice
question).
"""

from __future__ import annotations

import gc
import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import torch

from .config import MAX_VERIFY_BATCH, ModelConfig, SearchConfig, check_tiles
from .geometry import (
    Box,
    CellRegion,
    GridMapping,
    TileLayout,
    block_reduce,
    crop,
    far_apart,
    gaussian_smooth,
    paste_crops,
    propose_regions,
    square_box,
    stitch_block_maps,
    tile_crop,
    tile_layout,
    union_all,
)
from .memo import FrameMemo
from .methods import METHODS, AttentionCropConfig, ZoomConfig, run_method
from .methods.answer import respond
from .models import Extension, ImagePrefix, Meter, VLMAdapter, load_adapter
from .relevance import from_log, layer_indices, log_relevance
from .results import FocusResult, Progress, Region, TargetOutcome
from .run_context import QuestionRun
from .targets import (
    ANSWER_LEAD,
    TYPE_ALL,
    TYPE_SINGLE,
    Target,
    extraction_prompt_parts,
    for_question_type,
    parse_targets,
    question_type,
    targets_from_question,
)

LOG = logging.getLogger(__name__)

# What verifying one crop costs in model passes, batched or not: its image prefix, then its
# existence prompt (a batched forward of N crops counts 2N, the passes one at a time would run, so
# accuracy-vs-passes comparisons with the baselines do not depend on batching).
PASSES_PER_CROP = 2


def _box_key(box: Box) -> tuple[float, float, float, float]:
    """A crop box as the plain tuple the existence memo is keyed by."""
    return (box.x0, box.y0, box.x1, box.y1)


# torch.OutOfMemoryError (torch >= 2.5; older: torch.cuda.OutOfMemoryError) is what CUDA raises.
_TORCH_OOM = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", MemoryError)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA out-of-memory, Python's MemoryError (numpy) and torch's CPU allocator failure."""
    if isinstance(exc, (MemoryError, _TORCH_OOM)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def free_memory() -> None:
    """Collect unreachable objects and hand the CUDA allocator's cached blocks back, so memory
    freed by dropping a model or its caches shows up as free to the next allocation (and to nvidia-smi)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class FocusPipeline:
    """FOCUS on one model adapter. Not thread-safe: give each worker thread its own calls in turn."""

    def __init__(
        self,
        adapter: VLMAdapter,
        search: SearchConfig,
        prefix_cache_size: int = 2,
        zoom: ZoomConfig | None = None,
        attention: AttentionCropConfig | None = None,
        memo_bytes: int = 64 * 1024 * 1024,
    ):
        search.validate()
        check_tiles(search, adapter.family)
        self.adapter = adapter
        self.search = search
        self.zoom = zoom or ZoomConfig()  # the baselines' settings (methods/settings.py)
        self.attention = attention or AttentionCropConfig()
        self.zoom.validate()
        self.attention.validate()
        self.method_cache: dict[str, OrderedDict] = {}  # baselines' per-frame state, keyed like prefixes
        self._prefixes: OrderedDict[Hashable, ImagePrefix] = OrderedDict()
        self.prefix_cache_size = max(0, prefix_cache_size)
        # relevance maps and existence confidences per cached frame (core/memo.py); 64 MiB holds
        # thousands of 24x24 maps and confidences, a small share of one frame prefix's KV cache
        self.memo = FrameMemo(memo_bytes)
        # the extraction prompt's in-context examples, prefilled once per model (extraction_extension)
        self._extraction_head: Extension | None = None

    @classmethod
    def from_configs(cls, model: ModelConfig, search: SearchConfig, **kwargs: Any) -> FocusPipeline:
        """Load the model of ``model`` and wrap it."""
        return cls(load_adapter(model), search, **kwargs)

    # ----------------------------------------------------------------- frame prefix cache
    def prefix(
        self, image: np.ndarray, key: Hashable | None = None, meter: Meter | None = None
    ) -> tuple[ImagePrefix, bool]:
        """The frame's prefilled image prefix, from the LRU when ``key`` was seen; (prefix, was_cached)."""
        if key is not None and key in self._prefixes:
            self._prefixes.move_to_end(key)
            return self._prefixes[key], True
        prefix = self.adapter.prefill_image(image, meter)
        if key is not None and self.prefix_cache_size:
            self._prefixes[key] = prefix
            while len(self._prefixes) > self.prefix_cache_size:
                self._prefixes.popitem(last=False)
            self.memo.keep_frames(list(self._prefixes))  # a frame's memo lives as long as its prefix
        return prefix, False

    def cached_keys(self) -> list[Hashable]:
        """The frame keys whose prefixes are cached now, least recently used first."""
        return list(self._prefixes)

    def memo_frame(self, frame_key: Hashable | None) -> Hashable | None:
        """The key under which :attr:`memo` keeps results of this frame: the frame key while its
        prefix is cached, else None (never memoised: an anonymous frame, or one the prefix cache
        does not hold, whose memo entries would outlive it)."""
        return frame_key if frame_key is not None and frame_key in self._prefixes else None

    def clear_cache(self) -> None:
        """Forget every cached frame prefix, the frame memo and the baselines' per-frame state.
        The extraction prompt's prefix stays: it depends on the model only."""
        self._prefixes.clear()
        self.method_cache.clear()
        self.memo.clear()

    def release_memory(self) -> None:
        """After running out of memory: drop the cached prefixes (the extraction prompt's too) and
        give freed memory back (the caller must already have let go of the failed question's
        tensors, its traceback included)."""
        self.clear_cache()
        self._extraction_head = None
        free_memory()

    def release(self) -> None:
        """Drop the cached prefixes and the model, and give their memory back (lifecycle cleanup)."""
        self.clear_cache()
        self._extraction_head = None
        self.adapter.release()
        free_memory()

    # ----------------------------------------------------------------- public entry
    def run(
        self,
        image: np.ndarray,
        question: str,
        method: str = "focus",
        frame_key: Hashable | None = None,
        cancel: Callable[[], bool] | None = None,
        progress: Progress | None = None,
    ) -> FocusResult:
        """Answer ``question`` about ``image`` (H x W x 3 uint8 RGB) with ``method`` (one of METHODS).

        A multiple-choice question (options in its text, "(A) red (B) blue") is asked without its
        options and answered with the likeliest option; ``result.choice`` is its letter. ``cancel``
        is polled between stages (:class:`~.results.Cancelled` is raised when it says so);
        ``progress`` hears (stage, done, total, region) as the method goes."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError("question is empty")
        if method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError("image must be an HxWx3 uint8 RGB array")
        if min(image.shape[:2]) < 2:
            raise ValueError(f"image too small: {image.shape[1]}x{image.shape[0]}")
        ctx = QuestionRun.start(image, question.strip(), method, self.adapter.name, frame_key, cancel, progress)
        run_method(method, self, ctx)
        return ctx.finish()

    # ----------------------------------------------------------------- the answer step of every method
    def respond(self, ctx: QuestionRun, ext: Extension) -> None:
        """Fill ``ctx.result.answer`` (and ``.choice``) from an answer prompt: greedy text, or
        the likeliest option of a multiple-choice question."""
        ctx.result.answer, ctx.result.choice = respond(
            self.adapter, ext, ctx.choices, self.search.max_new_tokens, ctx.meter
        )

    def answer_from_frame(self, ctx: QuestionRun, prefix: ImagePrefix) -> None:
        """Answer from the whole frame (its cached prefix), as vanilla does. Sets answer and bbox."""
        self.respond(ctx, self.adapter.extend(prefix, self.adapter.question_text(ctx.question), ctx.meter))
        ctx.result.bbox = Box(0, 0, *ctx.size)

    def answer_from_boxes(
        self,
        ctx: QuestionRun,
        prefix: ImagePrefix | None,
        boxes: list[Box],
        crop_prefixes: dict[Box, ImagePrefix] | None = None,
    ) -> None:
        """Answer from the chosen boxes (FOCUS and random windows): one crop of their
        union (or, when they are far apart, their crops pasted on one canvas), shown alone
        (``search.answer_view: crop``) or after the cached frame prefix (``global+crop``). A crop
        whose prefix is in ``crop_prefixes`` is not encoded again. Sets answer and bbox."""
        s, adapter, meter = self.search, self.adapter, ctx.meter
        question, image = ctx.question, ctx.image
        if far_apart(boxes, s.far_apart_area_ratio):
            view = paste_crops(image, boxes)
            view_prefix = None
        else:
            union = union_all(boxes)
            view = crop(image, union)
            view_prefix = (crop_prefixes or {}).get(union) if len(boxes) == 1 else None
        ctx.result.bbox = union_all(boxes)
        if s.answer_view == "global+crop":
            if prefix is None:
                raise ValueError("search.answer_view 'global+crop' needs the frame prefix")
            ext = adapter.extend_with_image(prefix, view, adapter.crop_question_text(question), meter)
        else:
            if view_prefix is None:
                view_prefix = adapter.prefill_image(view, meter)
            ext = adapter.extend(view_prefix, adapter.question_text(question), meter)
        self.respond(ctx, ext)

    # ----------------------------------------------------------------- step 1 and the frame
    def extract_targets(self, question: str, meter: Meter | None = None) -> tuple[list[Target], str]:
        """Step 1: the question's targets, from the model (few-shot) or the rule parser; and the source."""
        if self.search.target_extraction == "model":
            ext = self.extraction_extension(question, meter)
            reply = self.adapter.decode(ext, self.search.max_target_tokens, meter)
            targets = parse_targets(reply)
            if targets:
                return targets, "model"
            LOG.debug("model listed no targets (%r); using the question's", reply)
        return targets_from_question(question), "question"

    def extraction_split(self, question: str) -> tuple[str, str]:
        """The model's whole extraction prompt for ``question`` in two: the head, the same for every
        question (the family's prompt up to and including the in-context examples), and the tail,
        the question's own part; head + tail is the prompt. The head is empty when the family's
        prompt does not hold the examples verbatim."""
        shared, own = extraction_prompt_parts(question)
        user = (shared + own).rsplit(f"\n{ANSWER_LEAD}", 1)[0]
        text = self.adapter.text_prompt(user) + ANSWER_LEAD
        at = text.find(shared)
        cut = at + len(shared) if at >= 0 else 0
        return text[:cut], text[cut:]

    def extraction_extension(self, question: str, meter: Meter | None = None) -> Extension:
        """The extraction prompt prefilled, ready to decode. Its head is prefilled once per model and
        kept (a pass it saves a later question counts in ``meter.reused_passes``); each question
        prefills only its tail after a fork of the head's cache. When the tokenizer would give the
        head and tail apart other ids than the whole (a merge across the split), the whole prompt
        is prefilled at once instead: the logits are always those of a fresh prefill."""
        adapter = self.adapter
        head, tail = self.extraction_split(question)
        if not head or not self._tokenizes_apart(head, tail):
            LOG.debug("extraction prompt not split at its examples: prefilling it whole")
            return adapter.extend(None, head + tail, meter)
        kept = self._extraction_head
        if kept is not None and kept.text == head:
            if meter:
                meter.reused_passes += 1
        else:
            kept = self._extraction_head = adapter.extend(None, head, meter)
        return adapter.extend(kept, tail, meter)

    def _tokenizes_apart(self, head: str, tail: str) -> bool:
        """True when ids(head) + ids(tail) == ids(head + tail) (no token spans the split)."""
        tokenizer = self.adapter.tokenizer

        def ids(text: str) -> list[int]:
            return list(tokenizer(text, add_special_tokens=False)["input_ids"])

        return ids(head) + ids(tail) == ids(head + tail)

    def targets_and_prefix(self, ctx: QuestionRun) -> tuple[list[Target], ImagePrefix]:
        """The first two stages every search method shares: the question's targets (recorded in
        ``ctx.result``) and the frame's cached prefix."""
        result = ctx.result
        ctx.progress("targets", 0, 0, None)
        targets, result.target_source = self.extract_targets(ctx.question, ctx.meter)
        result.question_type = question_type(ctx.question, targets)
        targets = for_question_type(targets, result.question_type)
        result.targets = [t.phrase for t in targets]
        targets = self.bounded_targets(targets, result)
        ctx.lap("targets")
        ctx.check()
        prefix, result.prefix_cached = self.prefix(ctx.image, ctx.frame_key, ctx.meter)
        ctx.lap("prefill")
        return targets, prefix

    def bounded_targets(self, targets: list[Target], result: FocusResult) -> list[Target]:
        """The first ``search.max_targets`` of ``targets``: each costs a relevance pass and up to
        ``max_steps + max_overrun_steps`` crops. When some are left out, ``result.notes`` says which
        (``result.targets`` keeps every one the question names)."""
        limit = self.search.max_targets
        if len(targets) <= limit:
            return targets
        dropped = ", ".join(t.phrase for t in targets[limit:])
        result.notes.append(
            f"the question names {len(targets)} targets; searched the first {limit} (search.max_targets {limit}), "
            f"not: {dropped}"
        )
        return targets[:limit]

    # ----------------------------------------------------------------- steps 2-4
    def relevance(
        self,
        prefix: ImagePrefix,
        target: str,
        meter: Meter | None = None,
        frame_key: Hashable | None = None,
        image: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, GridMapping]:
        """Step 2: the target's relevance on the model grid, the map used for proposals, its mapping.

        With ``search.relevance_tiles`` > 1 the map is read over tiles of ``image`` (the frame)
        instead of the frame's own prefix (:meth:`_tiled_log_map`). With the frame's key
        (``ctx.frame_key``; its prefix cached) the maps are kept in :attr:`memo`, per target phrase
        and the settings that shape them: a later question about the same target on the same frame
        gets them without a model pass (counted in ``meter.reused_passes``). The caller owns the
        arrays it gets (copies of the memo's)."""
        s = self.search
        frame = self.memo_frame(frame_key)
        key = (
            target,
            s.layer_start,
            s.layer_end,
            s.contrast_quantile,
            s.smooth_sigma,
            s.max_grid_side,
            s.relevance_tiles,
        )
        kept = self.memo.get(frame, "relevance", key)
        if kept is not None:
            rel_map, grid_map, mapping, views = kept
            if meter:
                meter.reused_passes += views
            return rel_map.copy(), grid_map.copy(), self._pooled_mapping(mapping, rel_map.shape)
        layers = layer_indices(self.adapter.num_layers, s.layer_start, s.layer_end)
        if s.relevance_tiles > 1:
            check_tiles(s, self.adapter.family)  # settings may change after construction (ros2 param set)
            if image is None:
                raise ValueError("search.relevance_tiles > 1 reads tiles of the frame: pass its image")
            log_map, mapping, views = self._tiled_log_map(image, frame, target, layers, meter)
        else:
            log_map, mapping, views = self._view_log_map(prefix, target, layers, meter), prefix.mapping, 1
        q = s.contrast_quantile
        rel_map = from_log(log_map, q if q >= 0 else None)
        grid_map = gaussian_smooth(rel_map, s.smooth_sigma) if s.smooth_sigma > 0 else rel_map
        factor = self._pool_factor(grid_map.shape)
        if factor > 1:
            grid_map = block_reduce(grid_map, factor)
        if frame is not None:
            # the views' count: the passes a later question reuses (one existence prompt a view)
            self.memo.put(frame, "relevance", key, (rel_map.copy(), grid_map.copy(), mapping, views))
        return rel_map, grid_map, self._pooled_mapping(mapping, rel_map.shape)

    def _view_log_map(self, view: ImagePrefix, target: str, layers: list[int], meter: Meter | None) -> np.ndarray:
        """The target's log relevance on one view's grid: its prefix extended by the existence prompt."""
        ext = self.adapter.extend(view, self.adapter.existence_text(target), meter)
        image_pos = torch.as_tensor(view.grid_positions.reshape(-1), dtype=torch.long)
        log_map = log_relevance(self.adapter.values(ext.cache, layers), self.adapter.token_span(ext, target), image_pos)
        return log_map.reshape(view.grid_positions.shape)

    def _tiled_log_map(
        self, image: np.ndarray, frame: Hashable | None, target: str, layers: list[int], meter: Meter | None
    ) -> tuple[np.ndarray, GridMapping, int]:
        """The target's log relevance over ``search.relevance_tiles`` square tiles along the frame's
        long side (:func:`~.geometry.tile_layout`): every tile's prefix (prefilled once per cached
        frame) extended by the existence prompt, its map read as on a frame, the maps joined into
        one grid and mapped to source pixels. Maps of equally many image tokens share one scale
        (:func:`~.relevance.log_relevance`), so the contrast is taken over the joined map. Cells
        wholly past the frame (the last tiles' padding) are set to the median: never an anchor."""
        h, w = image.shape[:2]
        layout = tile_layout(w, h, self.search.relevance_tiles)
        tiles = self._tile_prefixes(image, layout, frame, meter)
        joined, mapping = stitch_block_maps(
            [self._view_log_map(tile, target, layers, meter) for tile in tiles],
            [tile.mapping for tile in tiles],
            [layout.box(r, c) for r in range(layout.rows) for c in range(layout.cols)],
            layout.rows,
            layout.cols,
            w,
            h,
        )
        inside = (np.asarray(mapping.y_edges[:-1])[:, None] < h) & (np.asarray(mapping.x_edges[:-1])[None, :] < w)
        joined[~inside] = np.median(joined[inside])
        return joined, mapping, len(tiles)

    def _tile_prefixes(
        self, image: np.ndarray, layout: TileLayout, frame: Hashable | None, meter: Meter | None
    ) -> list[ImagePrefix]:
        """The tiles' image prefixes, row by row: prefilled once per cached frame and kept beside its
        prefix (at most ``prefix_cache_size`` frames' tiles)."""
        cache: OrderedDict = self.method_cache.setdefault("focus_tiles", OrderedDict())
        key = (frame, layout) if frame is not None else None
        if key is not None and key in cache:
            cache.move_to_end(key)
            if meter:
                meter.reused_passes += len(cache[key])
            return cache[key]
        fill = self.adapter.pad_fill()
        tiles = []
        for r in range(layout.rows):
            for c in range(layout.cols):
                tile = np.ascontiguousarray(tile_crop(image, layout, r, c, fill))
                tiles.append(self.adapter.prefill_image(tile, meter))
        if key is not None and self.prefix_cache_size:
            cache[key] = tiles
            while len(cache) > self.prefix_cache_size:
                cache.popitem(last=False)
        return tiles

    def _pool_factor(self, shape: tuple[int, ...]) -> int:
        """How many cells of a grid of ``shape`` pool into one proposal cell (``search.max_grid_side``)."""
        side = self.search.max_grid_side
        return -(-max(shape) // side) if side and max(shape) > side else 1

    def _pooled_mapping(self, mapping: GridMapping, shape: tuple[int, ...]) -> GridMapping:
        """The mapping of the proposal grid made from a relevance map of ``shape`` on ``mapping``."""
        factor = self._pool_factor(shape)
        return mapping.downsample(factor) if factor > 1 else mapping

    def proposals(self, grid_map: np.ndarray, mapping: GridMapping, target: str) -> list[Region]:
        """Step 3: proposals on the grid, mapped to source pixels (with margin / minimum size)."""
        s = self.search
        return self.regions_from_cells(
            propose_regions(
                grid_map, s.top_k_anchors, s.min_anchor_distance, s.s_min, s.s_max, s.grow_threshold, s.nms_iou
            ),
            mapping,
            target,
        )

    def regions_from_cells(self, cells: list[CellRegion], mapping: GridMapping, target: str) -> list[Region]:
        """Grid regions -> Regions in source pixels, with FOCUS's margin and minimum crop side."""
        s = self.search
        w, h = mapping.source_width, mapping.source_height
        out = []
        for g in cells:
            box = mapping.cell_box(g.r0, g.c0, g.r1, g.c1)
            if s.crop_margin > 0:
                box = box.expand(s.crop_margin, w, h)
            if s.min_crop_side and min(box.width, box.height) < s.min_crop_side:
                box = square_box(box, w, h, s.min_crop_side)
            if box.width >= 1 and box.height >= 1:
                out.append(Region(box, target, float(g.score), cells=(g.r0, g.c0, g.r1, g.c1)))
        return out

    def verify_targets(
        self, ctx: QuestionRun, targets: list[Target], candidates: dict[str, list[Region]]
    ) -> tuple[list[Region], dict[Box, ImagePrefix]]:
        """Step 4 for every target (FOCUS and random windows): each target's candidates verified
        (:meth:`verify_regions`) and recorded in ``ctx.result.regions``, with "verify" progress.
        The chosen regions of all targets, and the crop prefixes kept for the answer."""
        chosen: list[Region] = []
        crop_prefixes: dict[Box, ImagePrefix] = {}
        total = sum(min(len(c), self.search.max_steps) for c in candidates.values())  # overrun may add more
        done = [0]

        def on_step(region: Region) -> None:
            done[0] += 1
            ctx.progress("verify", done[0], max(total, done[0]), region)

        for target in targets:
            chosen.extend(self.verify_regions(ctx, target, candidates[target.phrase], crop_prefixes, on_step))
            ctx.result.regions.extend(candidates[target.phrase])
        return chosen, crop_prefixes

    def verify_regions(
        self,
        ctx: QuestionRun,
        target: Target,
        regions: list[Region],
        crop_prefixes: dict[Box, ImagePrefix],
        on_step: Callable[[Region], None],
    ) -> list[Region]:
        """Step 4a: existence confidence on the crops, best first; "overrun" until a Yes (type 1).
        A type-2 target (every instance: "all X", or any target of a counting question) keeps
        every verified crop above ``search.type2_threshold``. The best crop's prefix is left in
        ``crop_prefixes`` for the answer (none when its confidence came from the memo: the answer
        step encodes that crop itself).

        The first ``search.max_steps`` crops always run, so they are verified ``search.verify_batch``
        at a time in one batched forward (:meth:`~.models.base.VLMAdapter.existence_batch`: the same
        confidences as one at a time, and the best crop's prefix sliced from the batch's cache with
        no extra pass); the overrun, which stops at the first Yes, goes one crop at a time. A crop's
        confidence is kept per cached frame in :attr:`memo` (by box and existence phrase): a hit
        runs no pass and adds the two a crop costs (its prefix, its prompt) to
        ``meter.reused_passes``; only misses are batched. ``on_step`` hears every crop, in order."""
        s, adapter, image = self.search, self.adapter, ctx.image
        limit = s.max_steps + (s.max_overrun_steps if s.overrun and target.kind == TYPE_SINGLE else 0)
        phrase = target.existence_phrase
        text = adapter.existence_text(phrase)
        frame = self.memo_frame(ctx.frame_key)
        best: Region | None = None

        def remembered(region: Region) -> float | None:
            confidence = self.memo.get(frame, "exist", (_box_key(region.box), phrase))
            if confidence is not None:
                ctx.meter.reused_passes += PASSES_PER_CROP
            return confidence

        def settle(region: Region, confidence: float, crop_prefix: Callable[[], ImagePrefix] | None) -> None:
            nonlocal best
            region.confidence = confidence
            on_step(region)
            if best is None or confidence > best.confidence:
                if best is not None:
                    crop_prefixes.pop(best.box, None)
                best = region
                if crop_prefix is not None:
                    crop_prefixes[region.box] = crop_prefix()  # kept for the answer: no re-encode

        def one(region: Region) -> tuple[float, ImagePrefix]:
            crop_prefix = adapter.prefill_image(crop(image, region.box), ctx.meter)
            confidence = adapter.yes_probability(adapter.extend(crop_prefix, text, ctx.meter).logits)
            self.memo.put(frame, "exist", (_box_key(region.box), phrase), confidence)
            return confidence, crop_prefix

        def flush(waiting: list[tuple[Region, float | None]]) -> None:
            """Verify the waiting misses (one forward), then settle every waiting crop in order."""
            ctx.check()
            misses = [r for r, c in waiting if c is None]
            found: dict[int, tuple[float, Callable[[], ImagePrefix]]] = {}
            if len(misses) == 1:
                confidence, crop_prefix = one(misses[0])
                found[id(misses[0])] = (confidence, lambda: crop_prefix)
            elif misses:
                batch = adapter.existence_batch([crop(image, r.box) for r in misses], text, ctx.meter)
                for i, (region, confidence) in enumerate(zip(misses, batch.confidences)):
                    self.memo.put(frame, "exist", (_box_key(region.box), phrase), confidence)
                    found[id(region)] = (confidence, lambda i=i: adapter.batch_prefix(batch, i))
            for region, confidence in waiting:
                if confidence is None:
                    settle(region, *found[id(region)])
                else:
                    settle(region, confidence, None)

        head = regions[: min(s.max_steps, limit)]
        size = min(s.verify_batch or s.max_steps, MAX_VERIFY_BATCH)  # a batch holds every crop's cache
        waiting: list[tuple[Region, float | None]] = []
        for region in head:
            waiting.append((region, remembered(region)))
            if sum(c is None for _, c in waiting) == size:
                flush(waiting)
                waiting = []
        if waiting:
            flush(waiting)
        for region in regions[len(head) : limit]:
            if best is not None and best.confidence >= s.exist_threshold:
                break  # overrun only continues while no candidate said Yes
            flush([(region, remembered(region))])
        if target.kind == TYPE_ALL:
            kept = [r for r in regions if r.confidence > s.type2_threshold]
            if kept:
                return kept
        return [best] if best is not None else []

    def answer_from_regions(
        self,
        ctx: QuestionRun,
        prefix: ImagePrefix,
        targets: list[Target],
        chosen: list[Region],
        crop_prefixes: dict[Box, ImagePrefix],
    ) -> None:
        """Step 5 (FOCUS and random windows): the answer from the chosen regions, their mean
        confidence recorded; from the whole frame when none was chosen (e.g. a degenerate map)."""
        ctx.result.target_results = [self.target_outcome(t.phrase, chosen) for t in targets]
        if not chosen:
            chosen = [Region(Box(0, 0, *ctx.size), targets[0].phrase, 0.0)]
        ctx.result.confidence = float(np.mean([r.confidence for r in chosen]))
        self.answer_from_boxes(ctx, prefix, [r.box for r in chosen], crop_prefixes)

    def target_outcome(self, phrase: str, chosen: list[Region]) -> TargetOutcome:
        """One target's own box (its chosen crops' union) and best confidence, found when that
        reaches ``search.exist_threshold``."""
        own = [r for r in chosen if r.target == phrase]
        if not own:
            return TargetOutcome(phrase)
        confidence = max(r.confidence for r in own)
        found = confidence >= self.search.exist_threshold
        return TargetOutcome(phrase, union_all([r.box for r in own]), float(confidence), found)

    def verify_and_answer(
        self, ctx: QuestionRun, prefix: ImagePrefix, targets: list[Target], candidates: dict[str, list[Region]]
    ) -> None:
        """Steps 4 and 5 (FOCUS and random windows): verify each target's candidates, then answer
        from the chosen regions; each stage timed on ``ctx``."""
        chosen, crop_prefixes = self.verify_targets(ctx, targets, candidates)
        ctx.lap("verify")
        ctx.check()
        ctx.progress("answer", 0, 0, None)
        self.answer_from_regions(ctx, prefix, targets, chosen, crop_prefixes)
        ctx.lap("answer")


__all__ = ["FocusPipeline", "free_memory", "is_out_of_memory"]
