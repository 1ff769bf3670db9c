"""focus_ros.core.projection: boxes to 3-D points, pan and tilt, against a scene of known geometry
(test/depth_scene.py: a distorted camera, a wall at 1.5 m, a card at 0.8 m, drawn with OpenCV's
forward model only)."""

import math

import cv2
import numpy as np
import pytest
from depth_scene import (
    CARD_CENTRE,
    CARD_SIDE,
    CX,
    CY,
    HEIGHT,
    WIDTH,
    D,
    K,
    card_box,
    depth_metres,
    depth_millimetres,
    project,
    truth_pan_tilt,
)

from focus_ros.core.projection import (
    NOTE_NO_CAMERA_INFO,
    NOTE_NO_DEPTH,
    NOTE_NO_REGION,
    NOTE_NO_VALID_DEPTH,
    CameraModel,
    depth_in_box,
    locate,
)

CAMERA = CameraModel.create(K.ravel(), D, "plumb_bob", WIDTH, HEIGHT)
HALF_DEGREE = math.radians(0.5)


def _assert_card(geo, tol=0.02):
    assert geo.has_point and geo.note == "", geo.note
    assert np.linalg.norm(np.array(geo.point) - CARD_CENTRE) < tol, geo.point
    pan, tilt = truth_pan_tilt()
    assert abs(geo.pan - pan) < HALF_DEGREE and abs(geo.tilt - tilt) < HALF_DEGREE


def test_the_point_of_a_tight_box_is_within_2_cm_of_the_card_and_pan_tilt_within_half_a_degree():
    geo = locate(card_box(), (WIDTH, HEIGHT), CAMERA, depth_metres())
    _assert_card(geo, tol=0.005)
    assert geo.point[2] == pytest.approx(0.8, abs=1e-6)  # the card's pixels, not the wall behind it
    assert geo.extent[0] == pytest.approx(CARD_SIDE, abs=0.005) and geo.extent[1] == pytest.approx(CARD_SIDE, abs=0.005)
    assert geo.extent[2] == pytest.approx(0.0, abs=1e-6)  # a flat card: no depth spread in its centre


def test_a_loose_box_that_also_holds_the_wall_still_finds_the_card():
    geo = locate(card_box(scale=1.8), (WIDTH, HEIGHT), CAMERA, depth_metres())
    _assert_card(geo)
    assert geo.extent[0] == pytest.approx(1.8 * CARD_SIDE, rel=0.05)  # the box's size at the card's depth


def test_depth_at_another_resolution_than_the_colour_frame_is_read_through_the_ratio_of_sizes():
    for w, h in ((640, 360), (960, 540)):
        _assert_card(locate(card_box(), (WIDTH, HEIGHT), CAMERA, depth_metres(w, h)))


def test_16_bit_millimetres_with_their_unit_give_the_same_point():
    geo = locate(card_box(), (WIDTH, HEIGHT), CAMERA, depth_millimetres(640, 360), depth_unit=0.001)
    _assert_card(geo)


def test_a_down_scaled_colour_frame_with_the_full_size_camera_info_is_scaled_consistently():
    # the node analyses a 960x540 frame while camera_info describes 1920x1080
    x0, y0, x1, y1 = card_box()
    geo = locate((x0 / 2, y0 / 2, x1 / 2, y1 / 2), (960, 540), CAMERA, depth_metres(640, 360))
    _assert_card(geo)


def test_scaled_intrinsics_keep_every_pixel_on_the_same_ray():
    half = CAMERA.scaled(960, 540)
    assert half.K[0, 0] == pytest.approx(450.0) and half.K[0, 2] == pytest.approx((CX + 0.5) / 2 - 0.5)
    assert half.K[1, 2] == pytest.approx((CY + 0.5) / 2 - 0.5) and (half.width, half.height) == (960, 540)
    for u, v in ((0.0, 0.0), (1500.3, 200.7), (1919.0, 1079.0)):
        a = CAMERA.ray(u, v)
        b = half.ray((u + 0.5) / 2 - 0.5, (v + 0.5) / 2 - 0.5)
        assert np.allclose(a, b, atol=1e-9)


@pytest.mark.parametrize("model", ["plumb_bob", "rational_polynomial", "equidistant", "none"])
def test_rays_undo_each_distortion_model_of_opencvs_forward_projection(model):
    pts = np.array([[0.3, -0.2, 1.0], [-0.9, 0.5, 1.0], [0.6, 0.45, 2.0], [0.0, 0.0, 1.0]])
    if model == "equidistant":
        d = np.array([0.08, -0.01, 0.002, -0.0005])
        uv = cv2.fisheye.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, d)[0].reshape(-1, 2)
    else:
        d = {"plumb_bob": D, "rational_polynomial": np.array([-0.1, 0.02, 1e-3, -1e-3, 0.0, 0.01, 0.0, 0.0])}.get(
            model, np.zeros(5)
        )
        uv = project(pts, K, d)
    cam = CameraModel.create(K.ravel(), d, model, WIDTH, HEIGHT)
    assert np.allclose(cam.normalised(uv), pts[:, :2] / pts[:, 2:], atol=1e-6)


def test_without_depth_there_is_no_point_but_pan_and_tilt_come_from_camera_info():
    geo = locate(card_box(), (WIDTH, HEIGHT), CAMERA, None)
    pan, tilt = truth_pan_tilt()
    assert not geo.has_point and geo.note == NOTE_NO_DEPTH and geo.point == (0.0, 0.0, 0.0)
    assert geo.has_direction and abs(geo.pan - pan) < HALF_DEGREE and abs(geo.tilt - tilt) < HALF_DEGREE


def test_all_zero_nan_or_infinite_depth_in_the_box_gives_no_point_with_the_reason():
    for fill in (0.0, np.nan, np.inf):
        depth = np.full((360, 640), fill, np.float32)
        geo = locate(card_box(), (WIDTH, HEIGHT), CAMERA, depth)
        assert not geo.has_point and geo.note == NOTE_NO_VALID_DEPTH and geo.has_direction
    zeros = np.zeros((360, 640), np.uint16)
    assert locate(card_box(), (WIDTH, HEIGHT), CAMERA, zeros, 0.001).note == NOTE_NO_VALID_DEPTH


def test_holes_in_the_centre_fall_back_to_the_valid_pixels_of_the_whole_box():
    depth = depth_metres(640, 360)
    x0, y0, x1, y1 = (v / 3 for v in card_box(scale=1.2))
    depth[int(y0) + 3 : int(y1) - 3, int(x0) + 3 : int(x1) - 3] = 0.0  # only a rim of readings left
    geo = locate(card_box(scale=1.2), (WIDTH, HEIGHT), CAMERA, depth)
    assert geo.has_point and 0.79 < geo.point[2] < 1.51 and geo.depth_pixels > 0


def test_missing_camera_info_no_region_and_another_aspect_ratio_are_said_in_the_note():
    assert locate(card_box(), (WIDTH, HEIGHT), None, depth_metres()).note == NOTE_NO_CAMERA_INFO
    assert locate(None, (WIDTH, HEIGHT), CAMERA, depth_metres()).note == NOTE_NO_REGION
    assert locate((5, 5, 5, 9), (WIDTH, HEIGHT), CAMERA, depth_metres()).note == NOTE_NO_REGION
    square_info = locate(card_box(), (WIDTH, HEIGHT), CameraModel.create(K.ravel(), D, "plumb_bob", 1000, 1000))
    assert not square_info.has_direction and square_info.note.startswith(NOTE_NO_CAMERA_INFO)
    geo = locate(card_box(), (WIDTH, HEIGHT), CAMERA, np.full((480, 640), 1.0, np.float32))
    assert not geo.has_point and geo.has_direction and geo.note.startswith(NOTE_NO_DEPTH) and "aspect" in geo.note


def test_the_low_percentile_takes_the_nearer_surface_and_ignores_a_few_nearer_outliers():
    depth = np.full((100, 100), 2.0, np.float32)
    depth[30:70, 30:70] = 1.0  # an object filling the box's centre
    depth[48:50, 48:50] = 0.1  # four flying pixels in front of it
    z, spread, n = depth_in_box(depth, (20, 20, 80, 80))
    assert z == pytest.approx(1.0) and n == 900 and spread == pytest.approx(0.0)


@pytest.mark.parametrize(
    "k, d, model, reason",
    [
        ([0.0] * 9, [], "plumb_bob", "no intrinsics"),
        (K.ravel(), [0.1, 0.2, 0.3], "plumb_bob", "coefficients"),
        (K.ravel(), [0.1], "equidistant", "4 coefficients"),
        (K.ravel(), D, "kannala_brandt_9", "unsupported distortion model"),
    ],
)
def test_an_unusable_calibration_is_refused_with_the_reason(k, d, model, reason):
    with pytest.raises(ValueError, match=reason):
        CameraModel.create(k, d, model, WIDTH, HEIGHT)
