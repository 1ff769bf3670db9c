"""The tiles of ``search.relevance_tiles``: square tiles that cover the frame, padded past its
border, and whose grids join into one uniform grid mapped back to the frame's pixels."""

import numpy as np
import pytest

from focus_ros.core.geometry import tile_crop, tile_layout


@pytest.mark.parametrize(
    "w, h, n, rows, cols",
    [(2400, 1600, 3, 2, 3), (1920, 1080, 3, 2, 3), (1080, 1920, 2, 2, 2), (1000, 1000, 4, 4, 4), (640, 480, 1, 1, 1)],
)
def test_square_tiles_along_the_long_side_cover_the_whole_frame(w, h, n, rows, cols):
    layout = tile_layout(w, h, n)
    assert (layout.rows, layout.cols) == (rows, cols)
    assert layout.side * max(layout.rows, layout.cols) >= max(w, h)
    assert layout.side * layout.cols >= w and layout.side * layout.rows >= h
    # no tile lies wholly past the frame
    assert (layout.cols - 1) * layout.side < w and (layout.rows - 1) * layout.side < h
    for r in range(rows):
        for c in range(cols):
            b = layout.box(r, c)
            assert b.width == b.height == layout.side


def test_a_tile_past_the_border_is_padded_with_the_fill_and_keeps_the_frame_pixels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    layout = tile_layout(1920, 1080, 3)  # side 640: the second row reaches 200 px past the bottom
    inner = tile_crop(image, layout, 0, 1, (1, 2, 3))
    np.testing.assert_array_equal(inner, image[0:640, 640:1280])
    edge = tile_crop(image, layout, 1, 2, (1, 2, 3))
    assert edge.shape == (640, 640, 3)
    np.testing.assert_array_equal(edge[:440], image[640:1080, 1280:1920])
    assert (edge[440:] == np.array([1, 2, 3], np.uint8)).all()


def test_the_joined_grid_maps_each_tiles_cells_to_their_frame_pixels_clipped_to_the_frame():
    layout = tile_layout(1920, 1080, 3)
    mapping = layout.mapping(16)
    assert mapping.grid_shape == (32, 48)
    # the first cell of tile (1, 2) starts at that tile's corner
    box = mapping.cell_box(16, 32, 17, 33)
    assert (box.x0, box.y0, box.x1, box.y1) == (1280, 640, 1320, 680)
    # a whole region reaching into the padding is clipped to the frame
    last = mapping.cell_box(28, 44, 32, 48)
    assert (last.x1, last.y1) == (1920, 1080)
    assert mapping.point_to_cell(1919, 1079) == (26, 47)


def test_tiles_need_a_positive_count_and_a_frame():
    with pytest.raises(ValueError, match="tiles >= 1"):
        tile_layout(640, 480, 0)
    with pytest.raises(ValueError, match="tiles >= 1"):
        tile_layout(0, 480, 2)
