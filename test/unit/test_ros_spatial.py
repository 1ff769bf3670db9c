"""Depth and camera_info messages without DDS: zero-copy depth views, calibrations with ROI and
binning, camera_info scaled to the relevance images, depth paired with colour frames by stamp
(bounded), TargetResult points and notes, the RViz markers and the RViz layout."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from depth_scene import CARD_CENTRE, HEIGHT, WIDTH, camera_info_msg, card_box, depth_millimetres, depth_msg
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from focus_ros.core.projection import NOTE_NO_CAMERA_INFO, NOTE_NO_DEPTH, NOTE_NO_REGION, NOTE_NO_VALID_DEPTH
from focus_ros.io.images import ImageError
from focus_ros.msg import FocusResult, TargetResult
from focus_ros.ros.frame_store import DepthImage, Frame, FrameStore
from focus_ros.ros.spatial import camera_model, depth_view, fill_points, markers, scaled_camera_info


def _frame(stamp, camera="front", width=WIDTH, height=HEIGHT, source="raw"):
    return Frame(
        camera, stamp, "optical", lambda: np.zeros((2, 2, 3), np.uint8), source=source, width=width, height=height
    )


def _depth(stamp, camera="front", array=None):
    array = depth_millimetres(640, 360) if array is None else array
    return DepthImage(camera, stamp, "optical", array, 0.001, "16UC1")


def _result(*rois, frame_id="optical"):
    msg = FocusResult(header=Header(frame_id=frame_id))
    msg.header.stamp.sec = 7
    for i, (x0, y0, x1, y1) in enumerate(rois):
        t = TargetResult(phrase=f"thing{i}", confidence=0.8, found=True)
        t.roi.x_offset, t.roi.y_offset, t.roi.width, t.roi.height = x0, y0, x1 - x0, y1 - y0
        msg.target_results.append(t)
    return msg


def _card_roi():
    x0, y0, x1, y1 = card_box()
    return int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1))


# ----------------------------------------------------------------------------- depth messages
@pytest.mark.parametrize("big_endian, pad", [(False, 0), (True, 0), (False, 6)])
def test_depth_messages_become_zero_copy_views_in_metres(big_endian, pad):
    mm = depth_millimetres(640, 360)
    view, unit = depth_view(depth_msg(mm, big_endian=big_endian, pad=pad))
    assert unit == 0.001 and view.shape == (360, 640) and np.array_equal(view, mm)
    metres = np.full((4, 6), 1.25, np.float32)
    view, unit = depth_view(depth_msg(metres, big_endian=big_endian))
    assert unit == 1.0 and np.array_equal(view, metres)


def test_unusable_depth_messages_raise_with_the_problem_kind():
    good = depth_msg(np.zeros((4, 6), np.uint16))
    for change, kind in (
        ({"encoding": "rgb8"}, "depth_encoding"),
        ({"width": 0}, "zero_size"),
        ({"step": 11}, "step"),
        ({"height": 40}, "data"),
    ):
        msg = depth_msg(np.zeros((4, 6), np.uint16))
        for k, v in change.items():
            setattr(msg, k, v)
        with pytest.raises(ImageError) as err:
            depth_view(msg)
        assert err.value.kind == kind
    assert depth_view(good)[0].shape == (4, 6)


# ----------------------------------------------------------------------------- camera_info
def test_camera_info_roi_and_binning_give_the_calibration_of_the_image_they_describe():
    info = camera_info_msg()
    full = camera_model(info)
    assert (full.width, full.height, full.distortion_model) == (WIDTH, HEIGHT, "plumb_bob")
    info.binning_x = info.binning_y = 2
    binned = camera_model(info)
    assert (binned.width, binned.height) == (960, 540) and binned.K[0, 0] == pytest.approx(full.K[0, 0] / 2)
    info = camera_info_msg()
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 100, 50, 800, 600
    crop = camera_model(info)
    assert (crop.width, crop.height) == (800, 600) and crop.K[0, 2] == pytest.approx(full.K[0, 2] - 100)
    info = camera_info_msg()
    info.k = [0.0] * 9  # an uncalibrated driver's camera_info
    with pytest.raises(ValueError, match="no intrinsics"):
        camera_model(info)


def test_camera_info_of_a_relevance_image_is_scaled_to_it_and_keeps_its_header():
    header = Header(frame_id="optical")
    header.stamp.sec = 3
    out = scaled_camera_info(camera_info_msg(), 480, 270, header)
    assert (out.width, out.height, out.header) == (480, 270, header)
    assert out.k[0] == pytest.approx(225.0) and out.k[4] == pytest.approx(225.0)
    assert (
        out.p[0] == pytest.approx(225.0)
        and out.p[2] == pytest.approx(out.k[2])
        and list(out.d) == list(camera_info_msg().d)
    )
    # every pixel of the small image looks along the same ray as the full-size pixel it shows
    small, full = camera_model(out), camera_model(camera_info_msg())
    for u, v in ((0.0, 0.0), (300.25, 100.5), (479.0, 269.0)):
        assert np.allclose(small.ray(u, v), full.ray((u + 0.5) * 4 - 0.5, (v + 0.5) * 4 - 0.5), atol=1e-9)
    assert scaled_camera_info(camera_info_msg(), 480, 480, header) is None  # another aspect ratio


# ----------------------------------------------------------------------------- pairing
def test_a_depth_image_pairs_with_the_nearest_frame_whichever_arrives_first():
    store = FrameStore(["front"], size=2)
    early = _frame(1_000_000)
    store.add(early, pair_within_ns=0)
    assert store.add_depth(_depth(1_000_000), pair_within_ns=0) and early.depth.stamp_ns == 1_000_000
    store.add_depth(_depth(2_000_000), pair_within_ns=0)  # depth first, colour second
    late = _frame(2_000_000)
    store.add(late, pair_within_ns=0)
    assert late.depth.stamp_ns == 2_000_000
    off = _frame(3_000_000)
    store.add(off, pair_within_ns=0)
    assert off.depth is None
    assert store.depth_for(off, 0) == (None, 1_000_000)  # the nearest is 1 ms away: the note says so
    near, offset = store.depth_for(off, 1_500_000)
    assert near.stamp_ns == 2_000_000 and offset == 1_000_000


def test_a_frame_keeps_its_depth_after_newer_depth_images_pushed_it_out_of_the_store():
    store = FrameStore(["front"], size=2)
    asked = _frame(10)
    store.add(asked, pair_within_ns=0)
    store.add_depth(_depth(10))
    for stamp in range(11, 40):  # a fast depth camera moves on while the question waits
        store.add_depth(_depth(stamp))
    assert len(store._depths["front"]) == 2 and asked.depth.stamp_ns == 10
    assert store.depth_for(asked, 0)[0].stamp_ns == 10
    store.add(_frame(20, source="compressed"))
    store.add_depth(_depth(20))
    store.add(_frame(20), pair_within_ns=None)  # the raw copy of a compressed frame takes over its depth
    assert store.latest("front").source == "raw" and store.latest("front").depth.stamp_ns == 20


def test_nearer_depth_replaces_a_farther_pairing_within_the_tolerance():
    store = FrameStore(["front"], size=4)
    frame = _frame(1000)
    store.add(frame, pair_within_ns=100)
    store.add_depth(_depth(1080), pair_within_ns=100)
    store.add_depth(_depth(1010), pair_within_ns=100)
    store.add_depth(_depth(1050), pair_within_ns=100)
    assert frame.depth.stamp_ns == 1010


# ----------------------------------------------------------------------------- points and markers
def test_fill_points_gives_each_target_its_own_point_from_its_own_roi_and_says_why_otherwise():
    store = FrameStore(["front"], size=2)
    frame = _frame(5)
    store.add(frame, pair_within_ns=0)
    msg = _result(_card_roi(), (0, 0, 200, 150), (0, 0, 0, 0))
    assert fill_points(msg, frame, store, True, 0) == 0  # nothing known yet
    assert [t.note for t in msg.target_results] == [NOTE_NO_CAMERA_INFO, NOTE_NO_CAMERA_INFO, NOTE_NO_REGION]
    store.set_camera_info("front", camera_info_msg())
    fill_points(msg, frame, store, True, 0)
    assert all(t.note.startswith(NOTE_NO_DEPTH) for t in msg.target_results[:2]) and msg.target_results[0].pan > 0.1
    store.add_depth(_depth(5))
    assert fill_points(msg, frame, store, True, 0) == 2
    card, wall, none = msg.target_results
    assert np.linalg.norm(np.array([card.point.point.x, card.point.point.y, card.point.point.z]) - CARD_CENTRE) < 0.02
    assert card.point.header == msg.header and card.note == "" and card.has_point
    assert wall.point.point.z == pytest.approx(1.5, abs=1e-3) and not none.has_point and none.note == NOTE_NO_REGION
    fill_points(msg, frame, store, False, 0)
    assert msg.target_results[0].note == f"{NOTE_NO_DEPTH}: depth.enabled is false"
    zeros = _frame(6)
    store.add(zeros, pair_within_ns=0)
    store.add_depth(_depth(6, array=np.zeros((360, 640), np.uint16)))
    fill_points(msg, zeros, store, True, 0)
    assert msg.target_results[0].note == NOTE_NO_VALID_DEPTH and not msg.target_results[0].has_point


def test_markers_clear_the_last_answer_then_draw_a_sphere_and_a_label_per_target_with_a_point():
    store = FrameStore(["front"], size=2)
    frame = _frame(5)
    store.add(frame, pair_within_ns=0)
    store.set_camera_info("front", camera_info_msg())
    store.add_depth(_depth(5))
    msg = _result(_card_roi(), (0, 0, 0, 0), (0, 0, 200, 150))
    msg.target_results[2].found = False
    fill_points(msg, frame, store, True, 0)
    out = markers(msg).markers
    assert out[0].action == Marker.DELETEALL
    spheres = [m for m in out if m.type == Marker.SPHERE]
    labels = [m for m in out if m.type == Marker.TEXT_VIEW_FACING]
    assert len(spheres) == 2 and len(labels) == 2  # the target without a region has no marker
    assert {m.ns for m in spheres} == {"0:thing0", "2:thing2"} and all(m.header == msg.header for m in out)
    card = spheres[0]
    assert card.pose.position == msg.target_results[0].point.point
    assert card.scale.x == pytest.approx(msg.target_results[0].extent.x) and card.scale.z == pytest.approx(0.02)
    assert labels[0].text == "thing0 0.80" and labels[1].text == "thing2 0.80 (not found)"
    assert labels[0].pose.position.y < card.pose.position.y  # above it (optical y points down)


def test_the_rviz_layout_shows_the_markers_and_the_overlay_camera_in_the_cameras_frame_without_tf():
    layout = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "focus.rviz").read_text())
    manager = layout["Visualization Manager"]
    topics = {d["Class"].split("/")[-1]: d.get("Topic", {}).get("Value") for d in manager["Displays"]}
    assert manager["Global Options"]["Fixed Frame"] == "camera_optical_frame"  # the demo bag's frame_id
    assert topics["MarkerArray"] == "/focus/markers" and topics["Camera"] == "/focus/relevance_overlay"
