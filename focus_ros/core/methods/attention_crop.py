"""``attention``: ViCrop's relative-attention crop (Zhang et al., "MLLMs Know Where to Look:
Training-free Perception of Small Visual Details with Multimodal LLMs", ICLR 2025), methods
``rel_att`` and ``rel_att_high`` of the authors' public code (``run.py``, ``llava_methods.py``,
``utils.py``); the defaults are theirs (``AttentionCropConfig``).

This is the one module of the project that asks a model for attention weights, which is exactly
what FOCUS avoids: it needs eager attention (no sdpa / flash kernels) and ``output_attentions``.
Both are switched on only inside :func:`run_attention_crop` and restored afterwards.

1. Every prompt ends with ViCrop's instruction "Answer the question using a single word or
   phrase." The question (without options) after the image: the attention of its last token to
   the visual-grid tokens, averaged over heads, at layer ``attention.layer_start`` (ViCrop:
   ``attentions[14]`` of LLaVA-1.5-7B's 32 layers), is A_q.
2. The same for ViCrop's generic prompt ("Write a general description of the image."): A_g. It
   does not depend on the question, so it is kept per frame (same keys as the prefix cache).
3. Relative attention A_q / A_g: where the question looks more than a caption would.
4. ``attention.high_resolution`` (ViCrop's ``rel_att_high``): the frame is cut into blocks about
   ``attention.block_side`` (1024) px tall, steps 1-3 run on each block as its own image, and the
   block maps are stitched into one map over the frame (in source pixels).
5. ViCrop's adaptive box: for crop sides ``native_side x ratio`` (ratios 1.0..2.0, in source
   pixels; ``native_side``: the encoder's input side, 336 for LLaVA-1.5), slide a window of that
   many cells over the map, take the window with the largest sum, and keep the ratio whose best
   window stands out most from its four neighbouring windows (difference per cell). The crop is
   that window's centre with that side, shifted into the frame.
6. The answer, as ViCrop: the frame and then the crop, two images in one prompt ([original,
   crop]), the question and the instruction.

Costs: the frame prefix (cached per frame), one extension for the question, one for the generic
prompt (first question on a frame only); per block instead, in the high-resolution variant, one
prefill plus those extensions; then one extension with the crop and the question.
docs/benchmark.md lists where this differs from the authors' code.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..geometry import Box, GridMapping, crop, stitch_block_maps
from ..models import ImagePrefix, Meter, VLMAdapter
from ..relevance import layer_indices
from ..results import Region
from .zoom import model_input_side

if TYPE_CHECKING:  # pragma: no cover
    from ..pipeline import FocusPipeline
    from ..run_context import QuestionRun

_EPS = 1e-8  # deviation: ViCrop divides by the generic map unguarded


@contextlib.contextmanager
def attention_crop_eager(model: Any) -> Iterator[None]:
    """The language model in eager attention inside the block; its previous implementation after."""
    text_config = model.config.get_text_config()
    previous = text_config._attn_implementation
    if previous != "eager":
        model.set_attn_implementation({"text_config": "eager"})
    try:
        yield
    finally:
        if previous != "eager":
            model.set_attn_implementation({"text_config": previous})


def attention_crop_map(
    adapter: VLMAdapter, prefix: ImagePrefix, text: str, layers: Sequence[int], meter: Meter | None
) -> np.ndarray:
    """Attention of the last token of ``text`` (after the prefix) to the visual grid: mean over
    heads and ``layers``, shaped like the prefix's grid. Call inside ``attention_crop_eager``."""
    attentions = adapter.extend(prefix, text, meter, output_attentions=True).outputs.attentions
    if not attentions or attentions[0] is None:
        raise RuntimeError("the model returned no attention weights (is the language model in eager mode?)")
    cols = torch.as_tensor(prefix.grid_positions.reshape(-1), dtype=torch.long)
    rows = [attentions[i][0, :, -1, :].float().mean(dim=0)[cols.to(attentions[i].device)] for i in layers]
    return torch.stack(rows).mean(dim=0).cpu().numpy().astype(np.float64).reshape(prefix.grid_positions.shape)


def vicrop_box(rel: np.ndarray, mapping: GridMapping, native_side: float, ratios: Sequence[float]) -> tuple[Box, float]:
    """ViCrop's adaptive crop on a grid map: see the module docstring, step 5. Returns the box in
    source pixels and the chosen crop side. Deviations: cells sit where ``mapping`` puts them (ViCrop
    spreads its map evenly over the image although its processor centre-crops); ties between windows
    go to the first row-major."""
    gh, gw = rel.shape
    w, h = mapping.source_width, mapping.source_height
    xe, ye = np.asarray(mapping.x_edges), np.asarray(mapping.y_edges)
    cell_w, cell_h = (xe[-1] - xe[0]) / gw, (ye[-1] - ye[0]) / gh
    integral = np.pad(np.cumsum(np.cumsum(rel, axis=0), axis=1), ((1, 0), (1, 0)))
    best: tuple[float, int, int, int, int, float] | None = None
    for ratio in ratios:
        side = native_side * ratio
        bw, bh = min(max(1, int(side / cell_w)), gw), min(max(1, int(side / cell_h)), gh)
        if bw >= gw and bh >= gh:
            if ratio == ratios[0]:
                return Box(0, 0, w, h), float(max(w, h))  # the frame is smaller than one crop
            continue
        sums = integral[bh:, bw:] - integral[:-bh, bw:] - integral[bh:, :-bw] + integral[:-bh, :-bw]
        r, c = np.unravel_index(int(np.argmax(sums)), sums.shape)
        neighbours = [
            sums[rr, cc]
            for rr, cc in ((r, c - 1), (r, c + 1), (r - 1, c), (r + 1, c))
            if 0 <= rr < sums.shape[0] and 0 <= cc < sums.shape[1]
        ]
        diff = (sums[r, c] - (np.mean(neighbours) if neighbours else 0.0)) / (bw * bh)
        if best is None or diff > best[0]:
            best = (float(diff), int(r), int(c), bw, bh, side)
    assert best is not None
    _, r, c, bw, bh, side = best
    cx, cy = float(xe[c] + xe[c + bw]) / 2.0, float(ye[r] + ye[r + bh]) / 2.0
    sw, sh = min(side, w), min(side, h)
    x0 = min(max(cx - sw / 2, 0.0), w - sw)
    y0 = min(max(cy - sh / 2, 0.0), h - sh)
    return Box(x0, y0, x0 + sw, y0 + sh), side


def with_instruction(text: str, instruction: str) -> str:
    """ViCrop's prompt: the text, then its answer instruction."""
    return f"{text.strip()} {instruction.strip()}".strip()


def vicrop_blocks(width: int, height: int, block_side: int) -> tuple[list[Box], int, int]:
    """ViCrop's high-resolution split: ``ceil(h / block_side)`` rows, as many columns as keep the
    blocks about square, equal blocks. Deviation: the last row / column is cut at the frame (ViCrop
    pads it with black). Row-major blocks, rows, columns."""
    rows = max(1, math.ceil(height / block_side))
    cols = max(1, int(rows * width / height))
    while cols > 1 and (cols - 1) * math.ceil(width / cols) >= width:
        cols -= 1  # a last column with no pixels (tiny frames only)
    while rows > 1 and (rows - 1) * math.ceil(height / rows) >= height:
        rows -= 1
    bw, bh = math.ceil(width / cols), math.ceil(height / rows)
    blocks = [
        Box(c * bw, r * bh, min((c + 1) * bw, width), min((r + 1) * bh, height))
        for r in range(rows)
        for c in range(cols)
    ]
    return blocks, rows, cols


def relative_attention(
    adapter: VLMAdapter,
    prefix: ImagePrefix,
    question: str,
    generic: str,
    layers: Sequence[int],
    meter: Meter,
    generic_map: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """ViCrop's ``rel_attention_llava`` on one image prefix: (A_q / A_g, A_g). ``generic_map``: A_g
    already known for this image (not asked again). Call inside ``attention_crop_eager``."""
    a_q = attention_crop_map(adapter, prefix, adapter.question_text(question), layers, meter)
    if generic_map is None:
        generic_map = attention_crop_map(adapter, prefix, adapter.question_text(generic), layers, meter)
    return a_q / (generic_map + _EPS), generic_map


def _remember(cache: OrderedDict, key: Hashable | None, value: Any, size: int) -> None:
    if key is None:
        return
    cache[key] = value
    while len(cache) > max(1, size):
        cache.popitem(last=False)


def run_attention_crop(pipe: FocusPipeline, ctx: QuestionRun) -> None:
    """The ``attention`` method (ViCrop): relative attention -> one adaptive crop -> [frame, crop] answer."""
    cfg, adapter, result, meter, image = pipe.attention, pipe.adapter, ctx.result, ctx.meter, ctx.image
    question = with_instruction(ctx.question, cfg.instruction)
    generic = with_instruction(cfg.generic_prompt, cfg.instruction)
    key = ctx.frame_key
    prefix, result.prefix_cached = pipe.prefix(image, key, meter)
    ctx.lap("prefill")
    ctx.check()
    h, w = image.shape[:2]
    layers = layer_indices(adapter.num_layers, cfg.layer_start, cfg.layer_end)
    cache: OrderedDict = pipe.method_cache.setdefault("attention_generic", OrderedDict())
    blocks, rows, cols = vicrop_blocks(w, h, cfg.block_side) if cfg.high_resolution else ([Box(0, 0, w, h)], 1, 1)
    cache_key = (key, generic, tuple(layers), cfg.high_resolution and cfg.block_side) if key is not None else None
    generic_maps: list | None = cache.get(cache_key) if cache_key is not None else None
    ctx.progress("attention", 0, len(blocks), None)
    maps, mappings, generics = [], [], []
    with attention_crop_eager(adapter.model):
        for i, block in enumerate(blocks):
            ctx.check()
            view = prefix if not cfg.high_resolution else adapter.prefill_image(crop(image, block), meter)
            rel, a_g = relative_attention(
                adapter, view, question, generic, layers, meter, generic_maps[i] if generic_maps is not None else None
            )
            maps.append(rel)
            mappings.append(view.mapping)
            generics.append(a_g)
            ctx.progress("attention", i + 1, len(blocks), None)
    if generic_maps is None:
        _remember(cache, cache_key, generics, pipe.prefix_cache_size)
    if cfg.high_resolution:
        rel, mapping = stitch_block_maps(maps, mappings, blocks, rows, cols, w, h)
    else:
        rel, mapping = maps[0], prefix.mapping
    rel = rel / rel.max() if rel.max() > 0 else rel
    # ViCrop's crop side is LLaVA-1.5's input side; other models get theirs (it defines none for them)
    box, _ = vicrop_box(rel, mapping, cfg.native_side or model_input_side(adapter), cfg.ratios)
    result.relevance_maps["attention"] = rel
    result.relevance_mapping = mapping
    result.targets = []
    result.regions = [Region(box, "attention", float(rel.max()))]
    ctx.progress("attention", len(blocks), len(blocks), result.regions[0])
    ctx.lap("attention")
    ctx.check()
    ctx.progress("answer", 0, 0, None)
    # ViCrop's answer: [original, crop] in one prompt, the instruction after the question. Deviation:
    # the images follow the adapter's "USER:" (ViCrop puts them before it), as in every method's prompts.
    ext = adapter.extend_with_image(prefix, crop(image, box), adapter.crop_question_text(question), meter)
    pipe.respond(ctx, ext)
    result.bbox = box
    ctx.lap("answer")
