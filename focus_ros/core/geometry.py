"""Pure geometry for FOCUS: boxes, visual-token grids, region proposals, crops and canvases.

Nothing here imports torch: these functions work on numpy arrays and plain numbers so they can
be tested exhaustively and reused by the ROS node without the model stack.

Conventions: pixel boxes are ``(x0, y0, x1, y1)`` with ``x1``/``y1`` exclusive, in source-image
pixels. Grid regions are ``(r0, c0, r1, c1)`` in visual-token cells, also half-open.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in pixels, half-open: ``[x0, x1) x [y0, y1)``."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return max(0.0, self.x1 - self.x0)

    @property
    def height(self) -> float:
        return max(0.0, self.y1 - self.y0)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)

    def union(self, other: Box) -> Box:
        """Smallest box containing both boxes."""
        return Box(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))

    def intersection(self, other: Box) -> float:
        """Area of the overlap of two boxes."""
        w = min(self.x1, other.x1) - max(self.x0, other.x0)
        h = min(self.y1, other.y1) - max(self.y0, other.y0)
        return max(0.0, w) * max(0.0, h)

    def iou(self, other: Box) -> float:
        """Intersection over union; 0 for two empty boxes."""
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def contains_point(self, x: float, y: float) -> bool:
        return self.x0 <= x < self.x1 and self.y0 <= y < self.y1

    def clip(self, width: int, height: int) -> Box:
        """Clip to an image of ``width`` x ``height`` pixels."""
        return Box(
            min(max(self.x0, 0.0), width),
            min(max(self.y0, 0.0), height),
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
        )

    def expand(self, margin: float, width: int, height: int) -> Box:
        """Grow by ``margin`` times the box size on every side, clipped to the image."""
        dx, dy = self.width * margin, self.height * margin
        return Box(self.x0 - dx, self.y0 - dy, self.x1 + dx, self.y1 + dy).clip(width, height)

    def to_int(self) -> tuple[int, int, int, int]:
        """Integer pixel box that covers this box (floor of the start, ceil of the end)."""
        return (int(math.floor(self.x0)), int(math.floor(self.y0)), int(math.ceil(self.x1)), int(math.ceil(self.y1)))

    def as_list(self) -> list[int]:
        return list(self.to_int())


def union_all(boxes: Iterable[Box]) -> Box:
    """Union of a non-empty collection of boxes."""
    it = iter(boxes)
    out = next(it)
    for b in it:
        out = out.union(b)
    return out


@dataclass(frozen=True)
class GridMapping:
    """Exact map from a visual-token grid to source-image pixels.

    ``x_edges[c]`` is the source x coordinate where grid column ``c`` starts (``x_edges[-1]`` is
    where the last column ends); likewise ``y_edges`` for rows. Edges may lie outside the image
    where the model's input was padded (LLaVA pad-to-square): boxes are clipped to the image.
    Any of the resize / pad / tile / unpad transforms the supported processors apply is a
    per-axis monotone affine map, so two edge arrays describe it exactly.
    """

    x_edges: tuple[float, ...]
    y_edges: tuple[float, ...]
    source_width: int
    source_height: int

    @property
    def grid_shape(self) -> tuple[int, int]:
        return (len(self.y_edges) - 1, len(self.x_edges) - 1)

    def cell_box(self, r0: int, c0: int, r1: int, c1: int) -> Box:
        """Source-pixel box of the cell range ``[r0, r1) x [c0, c1)``, clipped to the image."""
        return Box(self.x_edges[c0], self.y_edges[r0], self.x_edges[c1], self.y_edges[r1]).clip(
            self.source_width, self.source_height
        )

    def point_to_cell(self, x: float, y: float) -> tuple[int, int]:
        """Grid cell (row, col) that contains source pixel coordinate ``(x, y)``."""
        gh, gw = self.grid_shape
        c = int(np.searchsorted(np.asarray(self.x_edges), x, side="right")) - 1
        r = int(np.searchsorted(np.asarray(self.y_edges), y, side="right")) - 1
        return (min(max(r, 0), gh - 1), min(max(c, 0), gw - 1))

    def downsample(self, factor: int) -> GridMapping:
        """Mapping of the grid after ``block_reduce(..., factor)``."""
        return GridMapping(
            _reduce_edges(self.x_edges, factor),
            _reduce_edges(self.y_edges, factor),
            self.source_width,
            self.source_height,
        )


def _reduce_edges(edges: Sequence[float], factor: int) -> tuple[float, ...]:
    n = len(edges) - 1
    idx = list(range(0, n, factor)) + [n]
    return tuple(float(edges[i]) for i in idx)


def affine_edges(
    n_cells: int, canvas_extent: float, offset: float, source_len: float = 1.0, scaled_len: float = 1.0
) -> tuple[float, ...]:
    """Edges (in source pixels) of ``n_cells`` equal cells tiling a canvas of ``canvas_extent``.

    The source axis of ``source_len`` px was resized to ``scaled_len`` canvas px and placed at
    ``offset``. Used for every family: only the canvas, offset and scale differ. The scale is
    kept as a ratio so the last edge of an unpadded canvas is exactly the image border.
    """
    return tuple((i * canvas_extent / n_cells - offset) * source_len / scaled_len for i in range(n_cells + 1))


def pad_to_square_mapping(width: int, height: int, grid: int) -> GridMapping:
    """LLaVA-1.5 ``expand2square``: the image is centred on a square of side ``max(w, h)``."""
    side = max(width, height)
    ox, oy = (side - width) // 2, (side - height) // 2
    return GridMapping(affine_edges(grid, side, ox), affine_edges(grid, side, oy), width, height)


def resize_mapping(width: int, height: int, resized_w: int, resized_h: int, grid_h: int, grid_w: int) -> GridMapping:
    """Plain resize of the whole image to ``resized_w`` x ``resized_h`` (Qwen2.5-VL)."""
    return GridMapping(
        affine_edges(grid_w, resized_w, 0.0, width, resized_w),
        affine_edges(grid_h, resized_h, 0.0, height, resized_h),
        width,
        height,
    )


@dataclass(frozen=True)
class TileLayout:
    """Square tiles of ``side`` px covering a frame, ``rows`` x ``cols``, from its top-left corner.

    The last row and column reach past the frame's border where its size is not a multiple of
    ``side``; their tiles are padded there (:func:`tile_crop`), so every tile shows the same scale
    and the tiles' grids join into one uniform grid (:meth:`mapping`)."""

    side: int
    rows: int
    cols: int
    width: int
    height: int

    def box(self, r: int, c: int) -> Box:
        """Tile (r, c) in source pixels, unclipped (it may reach past the frame)."""
        return Box(c * self.side, r * self.side, (c + 1) * self.side, (r + 1) * self.side)

    def mapping(self, grid: int) -> GridMapping:
        """The joined grid of every tile's ``grid`` x ``grid`` cells: ``rows * grid`` x ``cols * grid``."""
        cell = self.side / grid
        return GridMapping(
            tuple(i * cell for i in range(self.cols * grid + 1)),
            tuple(i * cell for i in range(self.rows * grid + 1)),
            self.width,
            self.height,
        )


def tile_layout(width: int, height: int, tiles: int) -> TileLayout:
    """``tiles`` square tiles along the frame's long side, as many as cover the short side."""
    if tiles < 1 or width < 1 or height < 1:
        raise ValueError(f"need tiles >= 1 and a non-empty frame, got {tiles} tiles on {width}x{height}")
    side = math.ceil(max(width, height) / tiles)
    return TileLayout(side, math.ceil(height / side), math.ceil(width / side), width, height)


def tile_crop(image: np.ndarray, layout: TileLayout, r: int, c: int, fill: Sequence[int]) -> np.ndarray:
    """Tile (r, c) of ``image`` as a ``side`` x ``side`` array, padded with ``fill`` past the frame."""
    box = layout.box(r, c)
    x0, y0 = int(box.x0), int(box.y0)
    part = image[y0 : y0 + layout.side, x0 : x0 + layout.side]
    if part.shape[:2] == (layout.side, layout.side):
        return part
    out = np.empty((layout.side, layout.side) + image.shape[2:], dtype=image.dtype)
    out[...] = np.asarray(fill, dtype=image.dtype)[: image.shape[2]] if image.ndim == 3 else fill[0]
    out[: part.shape[0], : part.shape[1]] = part
    return out


def stitch_block_maps(
    maps: Sequence[np.ndarray],
    mappings: Sequence[GridMapping],
    blocks: Sequence[Box],
    rows: int,
    cols: int,
    width: int,
    height: int,
) -> tuple[np.ndarray, GridMapping]:
    """One map over the frame from per-block maps (ViCrop's high-resolution blocks, FOCUS's relevance
    tiles): each block gets the first block's grid shape in even cells over its own pixels, each cell
    the value of the block-map cell under its centre (so a block's padding never lands on its
    neighbour), placed as the blocks lie."""
    gh, gw = maps[0].shape
    out = np.zeros((rows * gh, cols * gw), dtype=np.float64)
    for i, (rel, mapping, b) in enumerate(zip(maps, mappings, blocks)):
        r, c = divmod(i, cols)
        xs = np.linspace(0.0, b.width, gw + 1)
        ys = np.linspace(0.0, b.height, gh + 1)
        bh, bw = rel.shape
        ci = np.clip(np.searchsorted(np.asarray(mapping.x_edges), (xs[:-1] + xs[1:]) / 2, side="right") - 1, 0, bw - 1)
        ri = np.clip(np.searchsorted(np.asarray(mapping.y_edges), (ys[:-1] + ys[1:]) / 2, side="right") - 1, 0, bh - 1)
        out[r * gh : (r + 1) * gh, c * gw : (c + 1) * gw] = rel[np.ix_(ri, ci)]
    x_edges = [0.0]
    for b in blocks[:cols]:
        x_edges.extend(np.linspace(b.x0, b.x1, gw + 1)[1:].tolist())
    y_edges = [0.0]
    for b in blocks[::cols]:
        y_edges.extend(np.linspace(b.y0, b.y1, gh + 1)[1:].tolist())
    return out, GridMapping(tuple(x_edges), tuple(y_edges), width, height)


def block_reduce(grid: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` blocks; the last row/column block may be smaller."""
    if factor <= 1:
        return grid.astype(np.float64, copy=True)
    gh, gw = grid.shape
    rows = list(range(0, gh, factor)) + [gh]
    cols = list(range(0, gw, factor)) + [gw]
    out = np.empty((len(rows) - 1, len(cols) - 1), dtype=np.float64)
    for i in range(len(rows) - 1):
        for j in range(len(cols) - 1):
            out[i, j] = grid[rows[i] : rows[i + 1], cols[j] : cols[j + 1]].mean()
    return out


def gaussian_smooth(grid: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (reflect padding); identity for ``sigma <= 0``."""
    if sigma <= 0:
        return grid.astype(np.float64, copy=True)
    radius = max(1, int(math.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    out = grid.astype(np.float64)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="reflect" if out.shape[axis] > radius else "edge")
        out = np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), axis, padded)
    return out


@dataclass(frozen=True)
class CellRegion:
    """A proposed square-ish region on the visual grid, half-open cell ranges."""

    r0: int
    c0: int
    r1: int
    c1: int
    anchor: tuple[int, int]
    score: float  # relevance at the anchor cell (ranking key)
    mean: float  # mean relevance inside the region

    def iou(self, other: CellRegion) -> float:
        a = Box(self.c0, self.r0, self.c1, self.r1)
        b = Box(other.c0, other.r0, other.c1, other.r1)
        return a.iou(b)


def _span(start: int, size: int, limit: int) -> tuple[int, int]:
    """Half-open range of ``size`` cells from ``start``, shifted to stay inside ``[0, limit)``."""
    start = min(max(start, 0), limit - size)
    return start, start + size


def _window(center: int, size: int, limit: int) -> tuple[int, int]:
    """Half-open range of ``size`` cells around ``center``, shifted to stay inside ``[0, limit)``."""
    size = min(size, limit)
    return _span(center - (size - 1) // 2, size, limit)


def select_anchors(rel: np.ndarray, top_k: int, min_distance: int) -> list[tuple[int, int]]:
    """Up to ``top_k`` highest cells, each at least ``min_distance`` cells (Chebyshev) from the others.

    Cells are visited best-first from a heap; ties keep row-major order so results are stable.
    """
    gh, gw = rel.shape
    heap = [(-float(rel[r, c]), r, c) for r in range(gh) for c in range(gw)]
    heapq.heapify(heap)
    anchors: list[tuple[int, int]] = []
    while heap and len(anchors) < top_k:
        _, r, c = heapq.heappop(heap)
        if all(max(abs(r - ar), abs(c - ac)) >= min_distance for ar, ac in anchors):
            anchors.append((r, c))
    return anchors


def grow_region(rel: np.ndarray, anchor: tuple[int, int], s_min: int, s_max: int, threshold: float) -> CellRegion:
    """Square region around ``anchor``: start at ``s_min`` cells (centred on it), grow one cell at
    a time up to ``s_max`` while the cells a step adds have mean relevance >= ``threshold``.

    A step takes the ``size + 1`` square that contains the current one and adds the most relevance
    (four placements: one more row above or below, one more column left or right), so a region
    follows the object rather than staying centred on an anchor near the object's edge.

    Our reading of the paper's "grow while the relevance stays above 0.5 of the max": judged on the
    cells a step *adds*, growth stops at the object's edge on a map with contrast. Judged on the
    mean of the whole grown square, a 5-cell object would take two rings of background (25/49 is
    still above 0.5), both on one side where it touches the frame border.
    """
    gh, gw = rel.shape
    r, c = anchor

    r0, r1 = _window(r, max(1, s_min), gh)
    c0, c1 = _window(c, max(1, s_min), gw)
    grown = max(r1 - r0, c1 - c0)
    current = float(rel[r0:r1, c0:c1].sum())
    while grown < s_max and (r1 - r0 < gh or c1 - c0 < gw):
        best = None
        rows = {_span(r0 - d, r1 - r0 + 1, gh) for d in (1, 0)} if r1 - r0 < gh else {(r0, r1)}
        cols = {_span(c0 - d, c1 - c0 + 1, gw) for d in (1, 0)} if c1 - c0 < gw else {(c0, c1)}
        for nr0, nr1 in sorted(rows):
            for nc0, nc1 in sorted(cols):
                total = float(rel[nr0:nr1, nc0:nc1].sum())
                if best is None or total > best[0]:
                    best = (total, nr0, nc0, nr1, nc1)
        total, nr0, nc0, nr1, nc1 = best
        added = (nr1 - nr0) * (nc1 - nc0) - (r1 - r0) * (c1 - c0)
        if (total - current) / added < threshold:
            break
        r0, c0, r1, c1, current = nr0, nc0, nr1, nc1, total
        grown += 1
    return CellRegion(r0, c0, r1, c1, anchor, float(rel[r, c]), float(rel[r0:r1, c0:c1].mean()))


def propose_regions(
    rel: np.ndarray,
    top_k: int = 20,
    min_distance: int = 2,
    s_min: int = 3,
    s_max: int = 7,
    grow_threshold: float = 0.5,
    nms_iou: float = 0.3,
) -> list[CellRegion]:
    """FOCUS step 3: anchors -> grown squares -> ranked by anchor relevance -> non-maximum suppression.

    ``grow_threshold`` is relative to the map's maximum (the paper's "0.5 of the max"); it means
    something only on a map with contrast (background near 0: :func:`..relevance.with_contrast`).
    """
    rel = np.asarray(rel, dtype=np.float64)
    if rel.ndim != 2 or rel.size == 0:
        raise ValueError(f"relevance map must be a non-empty 2-D array, got shape {rel.shape}")
    peak = float(rel.max())
    thr = grow_threshold * peak if peak > 0 else -math.inf
    regions = [grow_region(rel, a, s_min, s_max, thr) for a in select_anchors(rel, top_k, min_distance)]
    regions.sort(key=lambda g: -g.score)  # anchors come best-first already; keep the sort explicit
    kept: list[CellRegion] = []
    for g in regions:
        if all(g.iou(k) <= nms_iou for k in kept):
            kept.append(g)
    return kept


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    """Pixels of ``box`` (clipped to the image); at least one pixel."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box.clip(w, h).to_int()
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    return image[y0:y1, x0:x1]


def square_box(box: Box, width: int, height: int, min_side: float = 0.0) -> Box:
    """The box grown to a square (and to ``min_side``) around its centre, shifted into the image."""
    side = min(max(box.width, box.height, min_side), float(max(width, height)))
    cx, cy = box.center
    sw, sh = min(side, width), min(side, height)
    x0 = min(max(cx - sw / 2, 0.0), width - sw)
    y0 = min(max(cy - sh / 2, 0.0), height - sh)
    return Box(x0, y0, x0 + sw, y0 + sh)


def far_apart(boxes: Sequence[Box], area_ratio: float) -> bool:
    """True when the union of the boxes is more than ``area_ratio`` times their summed area,
    i.e. one crop of the union would mostly show what lies between the targets."""
    if len(boxes) < 2:
        return False
    total = sum(b.area for b in boxes)
    return total > 0 and union_all(boxes).area > area_ratio * total


def paste_crops(
    image: np.ndarray, boxes: Sequence[Box], gap: int = 8, fill: tuple[int, int, int] = (127, 127, 127)
) -> np.ndarray:
    """The crops of ``boxes`` pasted side by side in the frame's left-to-right order (by centre), so
    that "is A left of B" reads the scene and not the order in which the targets were named."""
    ordered = sorted(boxes, key=lambda b: b.x0 + b.x1)
    return paste_on_canvas([crop(image, b) for b in ordered], gap, fill)


def paste_on_canvas(
    patches: Sequence[np.ndarray], gap: int = 8, fill: tuple[int, int, int] = (127, 127, 127)
) -> np.ndarray:
    """Paste crops side by side (each vertically centred) on one canvas, for far-apart targets."""
    if not patches:
        raise ValueError("no patches to paste")
    height = max(p.shape[0] for p in patches)
    width = sum(p.shape[1] for p in patches) + gap * (len(patches) - 1)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = np.asarray(fill, dtype=np.uint8)
    x = 0
    for p in patches:
        y = (height - p.shape[0]) // 2
        canvas[y : y + p.shape[0], x : x + p.shape[1]] = p[..., :3]
        x += p.shape[1] + gap
    return canvas
