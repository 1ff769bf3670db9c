"""Relevance images: the heat-map is the model grid laid exactly over the frame; the overlay draws boxes and text."""

import numpy as np

from focus_ros.core.geometry import Box, GridMapping, pad_to_square_mapping
from focus_ros.ros import visualization as viz


def test_heat_map_cells_land_on_the_source_pixels_they_cover():
    # LLaVA pads a 200x100 frame to a 200x200 square: a 4x4 grid, rows 1 and 2 hold the image.
    mapping = pad_to_square_mapping(200, 100, 4)
    rel = np.zeros((4, 4), np.float32)
    rel[1, 3] = 1.0  # image rows 0..49, columns 150..199
    heat = viz.heat_on_frame([rel], mapping, 200, 100)
    assert heat.shape == (100, 200)
    assert heat[10:40, 160:195].min() == 1.0
    assert heat[60:95, :].max() == 0.0 and heat[:, :140].max() == 0.0


def test_heat_map_of_several_targets_is_their_maximum_and_scales_with_the_output():
    mapping = GridMapping(tuple(float(x) for x in range(0, 41, 10)), tuple(float(y) for y in range(0, 41, 10)), 40, 40)
    a = np.zeros((4, 4))
    a[0, 0] = 1
    b = np.zeros((4, 4))
    b[3, 3] = 2
    heat = viz.heat_on_frame([a, b], mapping, 8, 8)
    assert heat[0, 0] == 1.0 and heat[7, 7] == 1.0 and heat[4, 0] == 0.0


def test_downscale_keeps_the_aspect_ratio_and_never_upscales():
    small, scale = viz.downscale(np.zeros((3000, 4000, 3), np.uint8), 960)
    assert small.shape == (720, 960, 3) and abs(scale - 0.24) < 1e-9
    same, one = viz.downscale(np.zeros((30, 40, 3), np.uint8), 960)
    assert same.shape == (30, 40, 3) and one == 1.0


def test_overlay_draws_the_selected_box_in_scaled_coordinates_and_keeps_the_size():
    frame = np.zeros((400, 800, 3), np.uint8)
    small, scale = viz.downscale(frame, 400)
    out = viz.render_overlay(
        small,
        scale,
        np.zeros(small.shape[:2], np.float32),
        [Box(0, 0, 100, 100)],
        Box(400, 200, 600, 300),
        "where?",
        "here",
    )
    assert out.shape == small.shape and out.dtype == np.uint8
    green = (out[..., 1] > 200) & (out[..., 0] < 50)
    ys, xs = np.nonzero(green)
    assert 195 <= xs.min() <= 205 and 295 <= xs.max() <= 305 and 95 <= ys.min() <= 105 and 145 <= ys.max() <= 155


def test_colour_and_mono_heat_maps():
    heat = np.linspace(0, 1, 10, dtype=np.float32).reshape(2, 5)
    assert viz.colorize(heat).shape == (2, 5, 3)
    mono = viz.to_mono8(heat)
    assert mono.dtype == np.uint8 and mono[0, 0] == 0 and mono[1, 4] == 255
