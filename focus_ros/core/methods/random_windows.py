"""``random``: random windows of FOCUS's region sizes, verified exactly as FOCUS verifies.

The control that shows whether the relevance map matters. Everything but the source of the
windows is FOCUS's: the same targets, the same frame prefix (for the grid and the global view),
squares of ``search.s_min..s_max`` cells on the same (pooled) visual grid, at least half inside the
frame, non-overlapping (``search.nms_iou``), mapped to source pixels with the same margin and minimum side, checked with
the same existence prompt and the same step budget (``search.max_steps``, overrun included) by
FOCUS's own verification, answered by the shared answer step. It skips only FOCUS's relevance
extension (one per target).

Windows are drawn from a generator seeded by ``search.seed``, the question, the target and the
frame size: the same question on the same frame gets the same windows.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Callable, Hashable

import numpy as np

from ..geometry import Box, CellRegion, GridMapping
from ..models import ImagePrefix, Meter
from ..targets import TYPE_SINGLE
from .answer import Choices

if TYPE_CHECKING:   # pragma: no cover
    from ..config import SearchConfig
    from ..pipeline import FocusPipeline, FocusResult


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


def random_cells(rng: np.random.Generator, mapping: GridMapping, n: int, s: "SearchConfig") -> list[CellRegion]:
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


def run_random_windows(pipe: "FocusPipeline", image: np.ndarray, choices: Choices, key: Hashable | None,
                       meter: Meter, clock, result: "FocusResult", check: Callable[[], None],
                       progress: Callable) -> None:
    """The ``random`` method: FOCUS with random windows instead of the relevance map's."""
    from ..pipeline import Region

    s, adapter, question = pipe.search, pipe.adapter, choices.stem
    targets, prefix = pipe.targets_and_prefix(image, question, key, meter, clock, result, check, progress)
    w, h = result.image_size
    if not targets:                      # nothing to look for: the whole frame, as FOCUS does
        pipe.respond(adapter.extend(prefix, adapter.question_text(question), meter), choices, meter, result)
        result.bbox = Box(0, 0, w, h)
        clock.lap("answer")
        return
    mapping = proposal_mapping(prefix.mapping, s.max_grid_side)
    candidates: dict[str, list[Region]] = {}
    for target in targets:
        limit = s.max_steps + (s.max_overrun_steps if s.overrun and target.kind == TYPE_SINGLE else 0)
        seed = zlib.crc32(f"{question}\n{target.phrase}".encode())
        rng = np.random.default_rng(np.random.SeedSequence([int(s.seed), seed, w, h]))
        candidates[target.phrase] = pipe.regions_from_cells(random_cells(rng, mapping, limit, s),
                                                            mapping, target.phrase)
    clock.lap("windows")
    chosen: list[Region] = []
    crop_prefixes: dict[Box, ImagePrefix] = {}
    total = sum(min(len(c), s.max_steps) for c in candidates.values())
    done = [0]

    def on_step(region: Region) -> None:
        done[0] += 1
        progress("verify", done[0], max(total, done[0]), region)

    for target in targets:
        chosen.extend(pipe.verify_regions(image, target, candidates[target.phrase], meter, crop_prefixes, check, on_step))
        result.regions.extend(candidates[target.phrase])
    clock.lap("verify")
    check()
    progress("answer", 0, 0, None)
    if not chosen:
        chosen = [Region(Box(0, 0, w, h), targets[0].phrase, 0.0)]
    result.confidence = float(np.mean([r.confidence for r in chosen]))
    pipe.answer_from_boxes(image, prefix, [r.box for r in chosen], choices, meter, result, crop_prefixes)
    clock.lap("answer")
