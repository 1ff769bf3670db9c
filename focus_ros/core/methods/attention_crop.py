"""``attention``: a ViCrop-like relative-attention crop (Zhang et al., "MLLMs Know Where to Look:
Training-free Perception of Small Visual Details with Multimodal LLMs", ICLR 2025).

This is the one module of the project that asks a model for attention weights, which is exactly
what FOCUS avoids: it needs eager attention (no sdpa / flash kernels) and ``output_attentions``.
Both are switched on only inside :func:`run_attention_crop` and restored afterwards.

1. The question (without options) extends the frame's cached prefix; the attention of its last
   token (where the answer starts) to the visual-grid tokens, averaged over heads and over the
   layers ``attention.layer_start..layer_end`` (ViCrop: layer 14 of LLaVA-1.5-7B's 32), is A_q.
2. The same for a generic prompt ("Write a general description of the image."): A_g. It does
   not depend on the question, so it is kept per frame (same keys as the prefix cache).
3. Relative attention A_q / A_g: where the question looks more than a caption would.
4. ViCrop's adaptive box: for crop sides ``native_side x ratio`` (ratios 1.0..2.0, in source
   pixels), slide a window of that many grid cells over the map, take the window with the largest
   sum, and keep the ratio whose best window stands out most from its four neighbouring windows
   (difference per cell). The crop is that window's centre with that side, shifted into the frame.
5. The shared answer step (crop, or global view + crop), as for every cropping method.

Costs: the frame prefix (cached per frame), one extension for the question, one for the generic
prompt (first question on a frame only), then the answer view.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Hashable, Iterator, Sequence

import numpy as np
import torch

from ..geometry import Box, GridMapping
from ..models import ImagePrefix, Meter, VLMAdapter
from ..relevance import layer_indices
from .answer import Choices

if TYPE_CHECKING:   # pragma: no cover
    from ..pipeline import FocusPipeline, FocusResult

_EPS = 1e-8


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


def attention_crop_map(adapter: VLMAdapter, prefix: ImagePrefix, text: str, layers: Sequence[int],
                       meter: Meter | None) -> np.ndarray:
    """Attention of the last token of ``text`` (after the prefix) to the visual grid: mean over
    heads and ``layers``, shaped like the prefix's grid. Call inside ``attention_crop_eager``."""
    attentions = adapter.extend(prefix, text, meter, output_attentions=True).outputs.attentions
    if not attentions or attentions[0] is None:
        raise RuntimeError("the model returned no attention weights (is the language model in eager mode?)")
    cols = torch.as_tensor(prefix.grid_positions.reshape(-1), dtype=torch.long)
    rows = [attentions[i][0, :, -1, :].float().mean(dim=0)[cols.to(attentions[i].device)] for i in layers]
    return torch.stack(rows).mean(dim=0).cpu().numpy().astype(np.float64).reshape(prefix.grid_positions.shape)


def vicrop_box(rel: np.ndarray, mapping: GridMapping, native_side: float,
               ratios: Sequence[float]) -> tuple[Box, float]:
    """ViCrop's adaptive crop on a grid map: see the module docstring, step 4. Returns the box in
    source pixels and the chosen crop side."""
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
                return Box(0, 0, w, h), float(max(w, h))     # the frame is smaller than one crop
            continue
        sums = integral[bh:, bw:] - integral[:-bh, bw:] - integral[bh:, :-bw] + integral[:-bh, :-bw]
        r, c = np.unravel_index(int(np.argmax(sums)), sums.shape)
        neighbours = [sums[rr, cc] for rr, cc in ((r, c - 1), (r, c + 1), (r - 1, c), (r + 1, c))
                      if 0 <= rr < sums.shape[0] and 0 <= cc < sums.shape[1]]
        diff = (sums[r, c] - (np.mean(neighbours) if neighbours else 0.0)) / (bw * bh)
        if best is None or diff > best[0]:
            best = (float(diff), int(r), int(c), bw, bh, side)
    assert best is not None
    _, r, c, bw, bh, side = best
    cx, cy = (xe[c] + xe[c + bw]) / 2.0, (ye[r] + ye[r + bh]) / 2.0
    sw, sh = min(side, w), min(side, h)
    x0 = min(max(cx - sw / 2, 0.0), w - sw)
    y0 = min(max(cy - sh / 2, 0.0), h - sh)
    return Box(x0, y0, x0 + sw, y0 + sh), side


def run_attention_crop(pipe: "FocusPipeline", image: np.ndarray, choices: Choices, key: Hashable | None,
                       meter: Meter, clock, result: "FocusResult", check: Callable[[], None],
                       progress: Callable) -> None:
    """The ``attention`` method (ViCrop-like): relative attention -> one adaptive crop -> answer."""
    from ..pipeline import Region

    cfg, adapter, question = pipe.attention, pipe.adapter, choices.stem
    prefix, result.prefix_cached = pipe.prefix(image, key, meter)
    clock.lap("prefill")
    check()
    progress("attention", 0, 2, None)
    layers = layer_indices(adapter.num_layers, cfg.layer_start, cfg.layer_end)
    generic_cache: OrderedDict = pipe.method_cache.setdefault("attention_generic", OrderedDict())
    generic_key = (key, cfg.generic_prompt, tuple(layers)) if key is not None else None
    with attention_crop_eager(adapter.model):
        a_q = attention_crop_map(adapter, prefix, adapter.question_text(question), layers, meter)
        progress("attention", 1, 2, None)
        a_g = generic_cache.get(generic_key) if generic_key is not None else None
        if a_g is None:
            a_g = attention_crop_map(adapter, prefix, adapter.question_text(cfg.generic_prompt), layers, meter)
            if generic_key is not None:
                generic_cache[generic_key] = a_g
                while len(generic_cache) > max(1, pipe.prefix_cache_size):
                    generic_cache.popitem(last=False)
    rel = a_q / (a_g + _EPS)
    rel = rel / rel.max() if rel.max() > 0 else rel
    box, side = vicrop_box(rel, prefix.mapping, cfg.native_side, cfg.ratios)
    result.relevance_maps["attention"] = rel
    result.relevance_mapping = prefix.mapping
    result.targets = []
    result.regions = [Region(box, "attention", float(rel.max()))]
    progress("attention", 2, 2, result.regions[0])
    clock.lap("attention")
    check()
    progress("answer", 0, 0, None)
    pipe.answer_from_boxes(image, prefix, [box], choices, meter, result)
    clock.lap("answer")
