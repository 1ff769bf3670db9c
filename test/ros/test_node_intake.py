"""Camera intake of the real node over DDS: every encoding, JPEG, a 12 MP frame, several cameras, bad frames.

One node (LLaVA miniature, two cameras ``front`` and ``rear``) serves the whole module.
"""

import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from ros_helpers import (
    NodeHarness,
    encode_rgb,
    expected_rgb,
    roi_inside,
    sample_rgb,
    stamp_ns,
    two_camera_params,
    wait_for,
)
from sensor_msgs.msg import Image

from focus_ros.msg import FocusResult
from focus_ros.ros.image_msgs import numpy_to_image

QUESTION = "What colour is the red cup?"


@pytest.fixture(scope="module")
def ros(miniature_root):
    harness = NodeHarness(two_camera_params(miniature_root))
    yield harness
    harness.close()


def test_a_question_for_a_camera_without_frames_gets_a_clear_no_frame_error(ros):
    res = ros.ask(QUESTION, camera="rear")
    assert not res.success and res.result.status == FocusResult.STATUS_ERROR
    assert "no frame yet from camera 'rear'" in res.message and "/focus/rear/image" in res.message


def test_a_question_for_an_unknown_camera_names_the_known_ones(ros):
    res = ros.ask(QUESTION, camera="side")
    assert not res.success and "unknown camera 'side'" in res.message and "front" in res.message


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "yuv422", "yuv422_yuy2"])
def test_raw_frames_in_each_encoding_are_stored_decoded_and_answered_with_their_header(ros, encoding):
    rgb = sample_rgb(320, 240, seed=5, block=2)
    header = ros.publish_frame(rgb, encoding, camera_topic="front/image", frame_id=f"cam_{encoding}")
    frame = ros.node.frames.latest("front")
    assert frame.stamp_ns == stamp_ns(header) and frame.encoding == encoding and not frame.decoded
    res = ros.ask(QUESTION)
    assert res.success, res.message
    assert res.result.header == header and res.result.camera == "front"
    want, tol = expected_rgb(rgb, encoding)
    assert int(np.abs(frame.rgb().astype(int) - want.astype(int)).max()) <= tol
    assert roi_inside(res.result.selected_roi, 320, 240)
    assert res.result.regions and all(roi_inside(r.roi, 320, 240) for r in res.result.regions)


def test_a_jpeg_frame_is_kept_compressed_until_a_question_decodes_it(ros):
    rgb = sample_rgb(320, 240, seed=6, block=16)
    header = ros.publish_frame(rgb, camera_topic="front/image", compressed="jpeg", frame_id="cam_jpeg")
    frame = ros.node.frames.latest("front")
    assert frame.source == "compressed" and not frame.decoded
    res = ros.ask(QUESTION)
    assert res.success, res.message
    assert res.result.header == header and frame.decoded and frame.rgb().shape == (240, 320, 3)
    assert roi_inside(res.result.selected_roi, 320, 240)


def test_a_12_megapixel_frame_arrives_and_boxes_are_in_its_full_resolution_pixels(ros):
    rgb = np.zeros((3000, 4000, 3), np.uint8)
    rgb[1200:1800, 2600:3400] = (220, 30, 30)
    header = ros.publish_frame(rgb, "bgr8", camera_topic="front/image", frame_id="cam_12mp")
    assert ros.node.frames.latest("front").width == 4000
    res = ros.ask(QUESTION)
    assert res.success, res.message
    assert res.result.header == header
    roi = res.result.selected_roi
    assert roi_inside(roi, 4000, 3000) and max(roi.x_offset + roi.width, roi.y_offset + roi.height) > 1000
    assert all(roi_inside(r.roi, 4000, 3000) for r in res.result.regions)


def test_a_question_naming_a_stamp_analyses_that_frame_and_an_unknown_stamp_is_refused(ros):
    first = ros.publish_frame(sample_rgb(64, 48, seed=7), camera_topic="front/image", frame_id="first")
    ros.publish_frame(sample_rgb(64, 48, seed=8), camera_topic="front/image", frame_id="second")
    res = ros.ask(QUESTION, stamp=first.stamp)
    assert res.success and res.result.header == first
    res = ros.ask(QUESTION, stamp=Time(sec=12, nanosec=5))
    assert not res.success and "no frame with stamp 12.000000005 from camera 'front'" in res.message


def test_a_stale_latest_frame_is_refused_with_its_age(ros):
    old = ros.node.get_clock().now().to_msg()
    old.sec -= 100
    ros.publish_frame(sample_rgb(64, 48), camera_topic="front/image", stamp=old)
    res = ros.ask(QUESTION)
    assert not res.success and res.result.status == FocusResult.STATUS_ERROR
    assert "s old (max_frame_age 30 s)" in res.message
    assert res.result.header.stamp == old  # the error still names the frame it refused


def test_a_malformed_frame_is_dropped_at_intake_and_the_previous_one_stays(ros):
    good = ros.publish_frame(sample_rgb(64, 48), camera_topic="front/image", frame_id="good")
    bad = numpy_to_image(encode_rgb(sample_rgb(64, 48), "rgb8"), "rgb8")
    bad.step = 10  # smaller than one row
    bad.header.stamp = ros.now()
    before = ros.node.stats["frames_malformed"]
    ros.publisher(Image, "/focus/front/image").publish(bad)
    wait_for(lambda: ros.node.stats["frames_malformed"] > before)
    assert ros.node.frames.latest("front").frame_id == "good"
    assert ros.ask(QUESTION).result.header == good


def test_a_corrupt_jpeg_is_dropped_at_intake_and_the_previous_frame_answers(ros):
    # (truncated JPEG / PNG bodies behind a valid header: test_reliability_images.py)
    from sensor_msgs.msg import CompressedImage

    good = ros.publish_frame(sample_rgb(64, 48), camera_topic="front/image", frame_id="good_before_jpeg")
    msg = CompressedImage(format="jpeg")
    msg.header.stamp = ros.now()
    msg.data = b"\xff\xd8 not really a jpeg"
    before = ros.node.stats["frames_rejected_decode"]
    ros.publisher(CompressedImage, "/focus/front/image/compressed").publish(msg)
    wait_for(lambda: ros.node.stats["frames_rejected_decode"] > before)
    res = ros.ask(QUESTION)
    assert res.success and res.result.header == good


def test_each_camera_has_its_own_topic_and_latest_frame(ros):
    front = ros.publish_frame(sample_rgb(64, 48, seed=9), camera_topic="front/image", frame_id="front_cam")
    rear = ros.publish_frame(sample_rgb(80, 60, seed=10), camera_topic="rear/image", frame_id="rear_cam")
    res_rear = ros.ask(QUESTION, camera="rear")
    res_front = ros.ask(QUESTION)
    assert res_rear.success and res_rear.result.header == rear and res_rear.result.camera == "rear"
    assert res_front.success and res_front.result.header == front and res_front.result.camera == "front"
    time.sleep(0.05)
