"""Pure geometry: region proposals on hand-made maps and exact grid <-> source-pixel mapping."""

import numpy as np
import pytest

from focus_ros.core.geometry import (
    Box,
    GridMapping,
    affine_edges,
    block_reduce,
    crop,
    far_apart,
    gaussian_smooth,
    pad_to_square_mapping,
    paste_crops,
    paste_on_canvas,
    propose_regions,
    resize_mapping,
    select_anchors,
    square_box,
)


def peak_map(shape, peaks, width=1.0):
    """Sum of Gaussian bumps at (row, col, height)."""
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]]
    out = np.zeros(shape)
    for r, c, h in peaks:
        out += h * np.exp(-((rr - r) ** 2 + (cc - c) ** 2) / (2 * width**2))
    return out


def test_single_peak_gives_a_region_centred_on_it():
    rel = peak_map((24, 24), [(10, 15, 1.0)])
    regions = propose_regions(rel, top_k=5, s_min=3, s_max=7)
    best = regions[0]
    assert best.anchor == (10, 15)
    assert (best.r0, best.c0, best.r1, best.c1) == (9, 14, 12, 17)  # 3x3: the bump falls off fast


def test_regions_are_ranked_by_anchor_relevance_and_overlaps_suppressed():
    rel = peak_map((24, 24), [(4, 4, 0.6), (18, 20, 1.0), (12, 2, 0.8)])
    regions = propose_regions(rel, top_k=20, s_min=3, s_max=7, nms_iou=0.3)
    assert [g.anchor for g in regions[:3]] == [(18, 20), (12, 2), (4, 4)]
    scores = [g.score for g in regions]
    assert scores == sorted(scores, reverse=True)
    for i, a in enumerate(regions):
        for b in regions[i + 1 :]:
            assert a.iou(b) <= 0.3


def test_flat_plateau_grows_region_to_s_max():
    rel = np.full((24, 24), 0.1)
    rel[5:14, 5:14] = 1.0
    rel[9, 9] = 1.01
    g = propose_regions(rel, top_k=1, s_min=3, s_max=7)[0]
    assert (g.r1 - g.r0, g.c1 - g.c0) == (7, 7)
    assert g.r0 <= 9 < g.r1 and g.c0 <= 9 < g.c1


def test_region_at_border_is_shifted_inside_the_grid():
    rel = peak_map((24, 24), [(0, 23, 1.0)])
    g = propose_regions(rel, top_k=1, s_min=3, s_max=3)[0]
    assert (g.r0, g.c0, g.r1, g.c1) == (0, 21, 3, 24)


def test_anchors_keep_their_minimum_distance():
    rel = np.random.default_rng(0).random((24, 24))
    anchors = select_anchors(rel, top_k=30, min_distance=3)
    assert len(anchors) == 30
    for i, a in enumerate(anchors):
        for b in anchors[i + 1 :]:
            assert max(abs(a[0] - b[0]), abs(a[1] - b[1])) >= 3


def test_non_square_grid_smaller_than_s_max():
    rel = peak_map((2, 40), [(1, 30, 1.0)])
    g = propose_regions(rel, top_k=1, s_min=3, s_max=9)[0]
    assert g.r0 == 0 and g.r1 == 2 and g.c0 <= 30 < g.c1


def test_invalid_map_is_rejected():
    with pytest.raises(ValueError):
        propose_regions(np.zeros((0, 3)))


@pytest.mark.parametrize(
    "w,h", [(1920, 1080), (1080, 1920), (4000, 3000), (3000, 4000), (8000, 200), (200, 8000), (336, 336), (4032, 3024)]
)
def test_pad_to_square_mapping_round_trips(w, h):
    m = pad_to_square_mapping(w, h, 24)
    side = max(w, h)
    ox, oy = (side - w) // 2, (side - h) // 2
    for r in range(24):
        for c in range(24):
            box = m.cell_box(r, c, r + 1, c + 1)
            if box.area == 0:
                # cells wholly in the padding map to nothing
                sx0, sy0 = c * side / 24 - ox, r * side / 24 - oy
                assert sx0 >= w or sy0 >= h or sx0 + side / 24 <= 0 or sy0 + side / 24 <= 0
                continue
            cx, cy = box.center
            assert m.point_to_cell(cx, cy) == (r, c)
    # the image's corners land in the cells expected from the padding
    assert m.point_to_cell(0, 0) == (int(oy // (side / 24)), int(ox // (side / 24)))
    assert m.point_to_cell(w - 1, h - 1) == (int((h - 1 + oy) // (side / 24)), int((w - 1 + ox) // (side / 24)))
    # the whole grid covers exactly the image
    assert m.cell_box(0, 0, 24, 24) == Box(0, 0, w, h)


def test_twelve_megapixel_cell_sizes_are_exact():
    m = pad_to_square_mapping(4000, 3000, 24)
    box = m.cell_box(12, 12, 15, 15)  # 3x3 cells of 4000/24 px
    assert box.width == pytest.approx(3 * 4000 / 24)
    assert box.height == pytest.approx(3 * 4000 / 24)
    assert box.x0 == pytest.approx(12 * 4000 / 24)
    assert box.y0 == pytest.approx(12 * 4000 / 24 - 500)


@pytest.mark.parametrize("w,h", [(1920, 1080), (1080, 1920), (4000, 3000), (6000, 500)])
def test_resize_mapping_round_trips(w, h):
    rw, rh = 28 * max(1, round(w / 100)), 28 * max(1, round(h / 100))
    gh, gw = rh // 28, rw // 28
    m = resize_mapping(w, h, rw, rh, gh, gw)
    assert m.grid_shape == (gh, gw)
    assert m.cell_box(0, 0, gh, gw) == Box(0, 0, w, h)
    for r in range(0, gh, max(1, gh // 5)):
        for c in range(0, gw, max(1, gw // 5)):
            cx, cy = m.cell_box(r, c, r + 1, c + 1).center
            assert m.point_to_cell(cx, cy) == (r, c)


def test_downsampled_mapping_matches_block_reduce():
    m = GridMapping(affine_edges(10, 100, 0), affine_edges(7, 70, 0), 100, 70)
    grid = np.arange(70, dtype=float).reshape(7, 10)
    red = block_reduce(grid, 3)
    dm = m.downsample(3)
    assert red.shape == dm.grid_shape == (3, 4)
    assert red[0, 0] == grid[0:3, 0:3].mean() and red[2, 3] == grid[6:7, 9:10].mean()
    assert dm.cell_box(2, 3, 3, 4) == Box(90, 60, 100, 70)


def test_gaussian_smoothing_keeps_mass_and_peak_position():
    rel = np.zeros((15, 15))
    rel[7, 7] = 1.0
    sm = gaussian_smooth(rel, 1.0)
    assert sm.sum() == pytest.approx(1.0, rel=1e-6)
    assert np.unravel_index(sm.argmax(), sm.shape) == (7, 7)


def test_far_apart_boxes_are_pasted_side_by_side():
    a, b = Box(0, 0, 10, 10), Box(900, 900, 910, 910)
    assert far_apart([a, b], 4.0)
    assert not far_apart([a, Box(10, 0, 20, 10)], 4.0)
    img = np.zeros((1000, 1000, 3), np.uint8)
    img[0:10, 0:10] = 255
    canvas = paste_on_canvas([crop(img, a), crop(img, b)], gap=4)
    assert canvas.shape == (10, 24, 3)
    assert (canvas[:, :10] == 255).all() and (canvas[:, 14:] == 0).all()


def test_far_apart_crops_keep_the_frames_left_to_right_order_whatever_order_the_targets_came_in():
    img = np.zeros((100, 1000, 3), np.uint8)
    left, right = Box(10, 10, 30, 30), Box(900, 50, 920, 70)
    img[10:30, 10:30] = (255, 0, 0)
    img[50:70, 900:920] = (0, 0, 255)
    for boxes in ([left, right], [right, left]):
        canvas = paste_crops(img, boxes, gap=4)
        assert canvas.shape == (20, 44, 3)
        assert (canvas[:, :20] == (255, 0, 0)).all() and (canvas[:, 24:] == (0, 0, 255)).all()


def test_square_box_stays_inside_the_image():
    b = square_box(Box(990, 10, 1000, 50), 1000, 800, min_side=100)
    assert b.width == b.height == 100
    assert b.x1 <= 1000 and b.y0 >= 0
