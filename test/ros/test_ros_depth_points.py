"""3-D points from registered depth and camera_info, over real DDS with the embedded model.

The scene has known geometry (test/depth_scene.py): a distorted camera calibrated at 1920x1080, a
wall at 1.5 m and a red card at 0.8 m. The node sees the colour frame at 960x540 (its camera_info
is the full-size calibration: K is scaled), the registered depth at 640x360 (16UC1 millimetres
or 32FC1 metres) with the same stamp, and is asked about the red object. Whatever box the model
returns, the node promises the depth geometry at that box (same K, same distortion, same depth);
when the box is on the card the point is within 2 cm of the card's centre. Without depth, with
depth that holds no reading, or without camera_info, the target has no point and says why. Depth
pairs with a colour frame within ``depth.stamp_tolerance`` (default 20 ms) of its stamp.
"""

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from depth_scene import (
    CARD_CENTRE,
    CARD_SIDE,
    FX,
    K,
    camera_info_msg,
    card_box,
    colour_frame,
    depth_millimetres,
    depth_msg,
)
from rcl_interfaces.msg import Log
from rclpy.logging import LoggingSeverity
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import NodeHarness, wait_for
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from focus_ros.core.projection import NOTE_NO_CAMERA_INFO, NOTE_NO_DEPTH, NOTE_NO_VALID_DEPTH, CameraModel, locate
from focus_ros.msg import FocusResult

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUESTION = "What shape is the red object?"
COLOUR_W, COLOUR_H = 960, 540  # the analysed frame: half the calibrated size
DEPTH_W, DEPTH_H = 640, 360
SETTINGS = {
    "cameras": ["front", "rear"],
    "search.target_extraction": "rule",
    "search.max_steps": 2,
    "search.overrun": False,
    "max_frame_age": 0.0,  # frames are reused across a slow (shared, 2-core) run
    "future_stamp_tolerance": 0.0,  # _stamp runs up to 40 s ahead of the clock (distinct stamps per test)
    "overlay_max_side": 480,
}
CAMERA = CameraModel.create(K.ravel(), camera_info_msg().d, "plumb_bob", 1920, 1080)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope="module")
def ros():
    harness = NodeHarness(SETTINGS, namespace="focus_depth")  # empty model.path: the embedded model
    harness.node.get_logger().set_level(LoggingSeverity.WARN)
    yield harness
    harness.close()


def _stamp(ros, offset_s):
    now = ros.now()
    now.sec += offset_s  # distinct, increasing stamps per test
    return now


def _publish_depth(ros, camera, depth, stamp):
    key = f"{camera}/depth_received"
    before = ros.node.stats[key]
    ros.publisher(Image, ros.name(f"{camera}/depth/image")).publish(
        depth_msg(depth, Header(stamp=stamp, frame_id="optical"))
    )
    wait_for(lambda: ros.node.stats[key] > before, 20.0)


def _publish_camera_info(ros, camera):
    ros.publisher(CameraInfo, ros.name(f"{camera}/camera_info"), reliable=True).publish(camera_info_msg())
    wait_for(lambda: ros.node.frames.camera_info(camera) is not None, 20.0)


def _shifted(stamp, ms):
    """``stamp`` moved by ``ms`` milliseconds (a Time message; ``ms`` may be negative)."""
    ns = stamp.sec * 1_000_000_000 + stamp.nanosec + ms * 1_000_000
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _publish_colour(ros, camera, stamp):
    return ros.publish_frame(
        colour_frame(COLOUR_W, COLOUR_H), camera_topic=f"{camera}/image", stamp=stamp, frame_id="optical"
    )


def _box(roi):
    return (roi.x_offset, roi.y_offset, roi.x_offset + roi.width, roi.y_offset + roi.height)


def _xyz(p):
    return np.array([p.x, p.y, p.z])


def _ask_one_target(ros, camera):
    response = ros.ask(QUESTION, camera=camera, timeout=300.0)
    assert response.success, response.message
    result = response.result
    assert result.status in (FocusResult.STATUS_OK, FocusResult.STATUS_NOT_FOUND)
    assert len(result.target_results) == 1
    (target,) = result.target_results
    assert target.roi.width > 0 and target.roi.height > 0, "the search kept no region"
    return result, target


def _on_the_card(roi):
    """The box is centred on the card (within 2 cm at its depth) and its central half lies on the card."""
    x0, y0, x1, y1 = (v * COLOUR_W / 1920 for v in card_box())
    bx0, by0, bx1, by1 = _box(roi)
    cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
    two_cm = 0.02 * FX * (COLOUR_W / 1920) / CARD_CENTRE[2]
    centred = math.hypot(cx - (x0 + x1) / 2, cy - (y0 + y1) / 2) < two_cm
    inner = (cx - (bx1 - bx0) / 4, cy - (by1 - by0) / 4, cx + (bx1 - bx0) / 4, cy + (by1 - by0) / 4)
    return centred and x0 <= inner[0] and inner[2] <= x1 and y0 <= inner[1] and inner[3] <= y1


def test_a_target_gets_the_depth_geometry_of_its_box_pan_tilt_a_marker_and_the_overlay_its_camera_info(ros):
    markers, overlays, infos = [], [], []
    subs = [
        ros.client.create_subscription(MarkerArray, ros.name("markers"), markers.append, RELIABLE),
        ros.client.create_subscription(Image, ros.name("relevance_overlay"), overlays.append, RELIABLE),
        ros.client.create_subscription(CameraInfo, ros.name("relevance_overlay/camera_info"), infos.append, RELIABLE),
    ]
    try:
        wait_for(
            lambda: ros.node.marker_pub.get_subscription_count() and ros.node.overlay_info_pub.get_subscription_count()
        )
        wait_for(lambda: ros.node.overlay_pub.get_subscription_count())
        _publish_camera_info(ros, "front")
        stamp = _stamp(ros, 10)
        depth = depth_millimetres(DEPTH_W, DEPTH_H)
        _publish_depth(ros, "front", depth, stamp)  # depth first, colour second: paired as the frame arrives
        header = _publish_colour(ros, "front", stamp)
        assert ros.node.frames.latest("front").depth is not None
        result, target = _ask_one_target(ros, "front")

        expected = locate(_box(target.roi), (COLOUR_W, COLOUR_H), CAMERA, depth, 0.001)
        assert target.has_point and target.note == "", target.note
        assert target.point.header == header == result.header
        assert np.allclose(_xyz(target.point.point), expected.point, atol=1e-4)
        assert np.allclose([target.extent.x, target.extent.y, target.extent.z], expected.extent, atol=1e-4)
        assert (target.pan, target.tilt) == pytest.approx((expected.pan, expected.tilt), abs=1e-5)
        if _on_the_card(target.roi):  # the embedded model's box is on the card (it is, on the CPU): the truth
            assert np.linalg.norm(_xyz(target.point.point) - CARD_CENTRE) < 0.02
            assert target.extent.x >= CARD_SIDE * 0.5

        wait_for(lambda: markers and overlays and infos, 30.0)
        shown = markers[-1].markers
        assert shown[0].action == Marker.DELETEALL
        (sphere,) = [m for m in shown if m.type == Marker.SPHERE]
        (label,) = [m for m in shown if m.type == Marker.TEXT_VIEW_FACING]
        assert sphere.header == header and sphere.pose.position == target.point.point
        assert label.text.startswith(target.phrase) and sphere.ns == label.ns
        overlay, info = overlays[-1], infos[-1]
        assert (overlay.width, overlay.height) == (480, 270) and info.header == overlay.header == header
        assert (info.width, info.height) == (480, 270) and info.k[0] == pytest.approx(FX / 4)
        assert info.distortion_model == "plumb_bob" and list(info.d) == list(camera_info_msg().d)
    finally:
        for sub in subs:
            ros.client.destroy_subscription(sub)


def test_a_depth_image_10_ms_off_the_colour_stamp_pairs_within_the_default_depth_stamp_tolerance(ros):
    # A driver may stamp registered depth with its own capture time, a few ms from the colour
    # frame's: within depth.stamp_tolerance (20 ms) it still belongs to that frame.
    stamp = _stamp(ros, 15)
    _publish_depth(ros, "front", depth_millimetres(DEPTH_W, DEPTH_H), _shifted(stamp, 10))
    _publish_colour(ros, "front", stamp)
    paired = ros.node.frames.latest("front").depth
    assert paired is not None and paired.stamp_ns == stamp.sec * 1_000_000_000 + stamp.nanosec + 10_000_000


def test_a_depth_image_100_ms_off_gives_no_point_with_the_reason_but_pan_and_tilt_come_from_camera_info(ros):
    # 100 ms is three frames at 30 Hz: that depth shows another moment, so the frame gets none.
    _publish_camera_info(ros, "front")
    stamp = _stamp(ros, 20)
    _publish_depth(ros, "front", depth_millimetres(DEPTH_W, DEPTH_H), _shifted(stamp, -100))
    _publish_colour(ros, "front", stamp)
    assert ros.node.frames.latest("front").depth is None
    _, target = _ask_one_target(ros, "front")
    expected = locate(_box(target.roi), (COLOUR_W, COLOUR_H), CAMERA, None)
    assert not target.has_point and target.note.startswith(NOTE_NO_DEPTH), target.note
    # the note names how far the nearest depth image is, and the tolerance it missed
    assert "0.100 s from the frame (depth.stamp_tolerance 0.020 s)" in target.note, target.note
    assert (target.pan, target.tilt) == pytest.approx((expected.pan, expected.tilt), abs=1e-5)
    assert target.pan != 0.0


def test_a_depth_image_without_a_valid_reading_in_the_box_gives_no_point_with_the_reason(ros):
    _publish_camera_info(ros, "front")
    stamp = _stamp(ros, 30)
    _publish_colour(ros, "front", stamp)  # colour first: the depth is paired as it arrives
    _publish_depth(ros, "front", np.zeros((DEPTH_H, DEPTH_W), np.float32), stamp)  # 32FC1, all zero
    assert ros.node.frames.latest("front").depth is not None
    _, target = _ask_one_target(ros, "front")
    assert not target.has_point and target.note == NOTE_NO_VALID_DEPTH
    assert target.pan != 0.0


def test_a_camera_without_camera_info_has_no_point_and_no_pan_tilt(ros):
    stamp = _stamp(ros, 40)
    _publish_depth(ros, "rear", depth_millimetres(DEPTH_W, DEPTH_H), stamp)
    _publish_colour(ros, "rear", stamp)
    _, target = _ask_one_target(ros, "rear")
    assert not target.has_point and target.note == NOTE_NO_CAMERA_INFO
    assert (target.pan, target.tilt) == (0.0, 0.0)


def test_bad_depth_messages_are_dropped_at_intake_with_a_throttled_warning(ros, rosout):
    before = ros.node.stats["rear/depth_dropped"]
    bad = depth_msg(np.zeros((4, 6), np.uint16), Header(stamp=ros.now(), frame_id="optical"))
    bad.encoding = "rgb8"
    pub = ros.publisher(Image, ros.name("rear/depth/image"))
    for n in range(1, 4):
        pub.publish(bad)  # one at a time: a best-effort sender may overwrite a sample not yet taken
        wait_for(lambda n=n: ros.node.stats["rear/depth_dropped"] >= before + n, 20.0)
    rosout.wait("depth/image", "depth image dropped: unsupported depth encoding 'rgb8'", level=Log.WARN)
    assert len(rosout.matching("unsupported depth encoding")) == 1  # throttled: one line for the three
