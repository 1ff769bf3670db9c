"""``random``: random windows of FOCUS's region sizes, verified exactly as FOCUS verifies.

The control that shows whether the relevance map matters. Everything but the source of the
windows is FOCUS's: the same targets, the same frame prefix (for the grid and the global view),
squares of ``search.s_min..s_max`` cells on the same (pooled) visual grid (the tiles' joined grid
with ``search.relevance_tiles``), at least half inside the frame, non-overlapping
(``search.nms_iou``), mapped to source pixels with the same margin and minimum side, checked with
the same existence prompt and the same step budget (``search.max_steps``, overrun included) by
FOCUS's own verification, answered by the shared answer step. It skips only FOCUS's relevance
passes (one per target and view; the tiles' prefills).

Windows are drawn from a generator seeded by ``search.seed``, the question, the target and the
frame size: the same question on the same frame gets the same windows.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np

from ..geometry import Box, CellRegion, GridMapping, tile_layout
from ..results import Region
from ..targets import TYPE_SINGLE

if TYPE_CHECKING:  # pragma: no cover
    from ..config import SearchConfig
    from ..pipeline import FocusPipeline
    from ..run_context import QuestionRun


def proposal_mapping(mapping: GridMapping, max_grid_side: int) -> GridMapping:
    """The grid FOCUS proposes regions on: the model's, pooled when longer than ``max_grid_side``."""
    gh, gw = mapping.grid_shape
    if max_grid_side and max(gh, gw) > max_grid_side:
        return mapping.downsample(-(-max(gh, gw) // max_grid_side))
    return mapping


def _mostly_in_frame(mapping: GridMapping, g: CellRegion) -> bool:
    """At least half of the window's pixels are in the frame (LLaVA's grid also covers its padding)."""
    full = Box(mapping.x_edges[g.c0], mapping.y_edges[g.r0], mapping.x_edges[g.c1], mapping.y_edges[g.r1])
    return full.area > 0 and mapping.cell_box(g.r0, g.c0, g.r1, g.c1).area >= 0.5 * full.area


def random_cells(rng: np.random.Generator, mapping: GridMapping, n: int, s: SearchConfig) -> list[CellRegion]:
    """Up to ``n`` random squares of ``s_min..s_max`` cells on the grid, at least half inside the
    frame, pairwise IoU <= ``nms_iou``."""
    gh, gw = mapping.grid_shape
    kept: list[CellRegion] = []
    for _ in range(50 * max(1, n)):
        if len(kept) >= n:
            break
        size = int(rng.integers(s.s_min, s.s_max + 1))
        sh, sw = min(size, gh), min(size, gw)
        r0, c0 = int(rng.integers(0, gh - sh + 1)), int(rng.integers(0, gw - sw + 1))
        cand = CellRegion(r0, c0, r0 + sh, c0 + sw, (r0 + sh // 2, c0 + sw // 2), 0.0, 0.0)
        if _mostly_in_frame(mapping, cand) and all(cand.iou(k) <= s.nms_iou for k in kept):
            kept.append(cand)
    return kept


def run_random_windows(pipe: FocusPipeline, ctx: QuestionRun) -> None:
    """The ``random`` method: FOCUS with random windows instead of the relevance map's."""
    s = pipe.search
    targets, prefix = pipe.targets_and_prefix(ctx)
    w, h = ctx.size
    if not targets:  # nothing to look for: the whole frame, as FOCUS does
        pipe.answer_from_frame(ctx, prefix)
        ctx.lap("answer")
        return
    mapping = prefix.mapping
    if s.relevance_tiles > 1:  # FOCUS's grid is then the tiles' joined one: its regions are cells of that
        mapping = tile_layout(w, h, s.relevance_tiles).mapping(prefix.grid_positions.shape[0])
    mapping = proposal_mapping(mapping, s.max_grid_side)
    candidates: dict[str, list[Region]] = {}
    for target in targets:
        limit = s.max_steps + (s.max_overrun_steps if s.overrun and target.kind == TYPE_SINGLE else 0)
        seed = zlib.crc32(f"{ctx.question}\n{target.phrase}".encode())
        rng = np.random.default_rng(np.random.SeedSequence([int(s.seed), seed, w, h]))
        candidates[target.phrase] = pipe.regions_from_cells(
            random_cells(rng, mapping, limit, s), mapping, target.phrase
        )
    ctx.lap("windows")
    pipe.verify_and_answer(ctx, prefix, targets, candidates)
