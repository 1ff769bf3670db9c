"""Reliability, intake bounds: oversized messages, endless JPEG headers and future stamps, over real DDS.

Same rule as test_reliability_images.py: an unusable frame is dropped at intake with one throttled
WARN naming the topic and the problem, and the camera's last good frame stays the one answered.
Here the frames are unusable because of their size in bytes (``max_frame_bytes``), a JPEG whose
frame header (SOF) is not within the first ``JPEG_HEADER_LIMIT`` bytes, or a stamp further ahead
of the node's clock than ``future_stamp_tolerance``.

One node (LLaVA miniature, cameras ``front`` and ``rear``) serves the whole module, in a namespace
of its own (see ros_helpers.RosoutLog).
"""

import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from depth_scene import depth_msg
from rcl_interfaces.msg import Log
from rclpy.logging import LoggingSeverity
from ros_helpers import NodeHarness, sample_rgb, stamp_ns, two_camera_params, wait_for
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from focus_ros.io.images import JPEG_HEADER_LIMIT
from focus_ros.msg import FocusResult
from focus_ros.ros.image_msgs import byte_array, numpy_to_image, rgb_to_compressed

QUESTION = "What colour is the red cup?"
NS = "focus_bounds"
FRONT = f"/{NS}/front/image"
MIB = 2**20


@pytest.fixture(scope="module")
def ros(miniature_root):
    harness = NodeHarness(two_camera_params(miniature_root), namespace=NS)
    harness.node.get_logger().set_level(LoggingSeverity.INFO)  # the intake warnings reach /rosout
    yield harness
    harness.close()


def _good(ros, frame_id, seed=0):
    return ros.publish_frame(sample_rgb(64, 48, seed=seed), camera_topic="front/image", frame_id=frame_id)


def _publish_rejected(ros, msg, kind, timeout=30.0):
    """Publish a raw or compressed message on ``front`` and wait until the node has dropped it as ``kind``."""
    counter = f"frames_rejected_{kind}"
    before = ros.node.stats[counter]
    compressed = isinstance(msg, CompressedImage)
    topic = FRONT + ("/compressed" if compressed else "")
    ros.publisher(CompressedImage if compressed else Image, topic).publish(msg)
    wait_for(lambda: ros.node.stats[counter] > before, timeout)


def _answers_about(ros, header):
    res = ros.ask(QUESTION, camera="front")
    assert res.success, res.message
    assert res.result.header == header, "the last good frame should be the one answered about"


def _stamp_in(ros, seconds):
    """The node's clock now plus ``seconds``, as a message stamp."""
    return _stamp(ros.node.get_clock().now().nanoseconds + int(seconds * 1e9))


def _stamp(ns):
    return Time(sec=ns // 10**9, nanosec=ns % 10**9)


def _frame_msg(transport, header, seed=9):
    rgb = sample_rgb(64, 48, seed=seed)
    return rgb_to_compressed(rgb, "jpeg", header) if transport == "compressed" else numpy_to_image(rgb, "rgb8", header)


# ----------------------------------------------------------------------------- max_frame_bytes
@pytest.mark.parametrize("transport", ["compressed", "raw"])
def test_a_frame_message_above_max_frame_bytes_is_dropped_naming_its_size_and_the_previous_frame_answers(
    ros, rosout, transport
):
    """Expected: with max_frame_bytes 1 MiB, a 2 MiB compressed message (a valid JPEG padded to 2 MiB) or a
    1024x1024 rgb8 frame (3 MiB) is dropped from its length alone; a WARN names the topic and both sizes;
    nothing of it is stored; the previous good frame answers."""
    assert ros.set_params({"max_frame_bytes": MIB})[0].successful
    try:
        good = _good(ros, f"good_before_{transport}_bytes")
        header = Header(stamp=ros.now(), frame_id=f"too_many_bytes_{transport}")
        if transport == "compressed":
            msg = rgb_to_compressed(sample_rgb(64, 48), "jpeg", header)
            msg.data = byte_array(np.frombuffer(bytes(msg.data) + bytes(2 * MIB - len(msg.data)), np.uint8))
            size, topic = 2 * MIB, FRONT + "/compressed"
        else:
            msg = numpy_to_image(sample_rgb(1024, 1024), "rgb8", header)
            size, topic = 3 * MIB, FRONT
        stored = ros.node.frames.stamps("front")
        _publish_rejected(ros, msg, "too_many_bytes")
        assert ros.node.frames.stamps("front") == stored  # nothing of it entered the store
        rosout.wait(
            f"{topic}: frame dropped: message is too large: {size} bytes",
            f"at most {MIB} (1.0 MiB, parameter max_frame_bytes)",
            "camera 'front' keeps its last good frame",
            level=Log.WARN,
        )
        _answers_about(ros, good)
    finally:
        ros.set_params({"max_frame_bytes": 64 * MIB})


def test_a_depth_image_above_max_frame_bytes_is_dropped_naming_its_size(ros, rosout):
    """Expected: with max_frame_bytes 1 MiB, a 1024x1024 16UC1 depth image (2 MiB) is dropped from its length
    with a WARN naming the depth topic and both sizes."""
    assert ros.set_params({"max_frame_bytes": MIB})[0].successful
    try:
        msg = depth_msg(np.full((1024, 1024), 1000, np.uint16), Header(stamp=ros.now(), frame_id="depth"))
        before = ros.node.stats["depth_rejected_too_many_bytes"]
        ros.publisher(Image, f"/{NS}/front/depth/image").publish(msg)
        wait_for(lambda: ros.node.stats["depth_rejected_too_many_bytes"] > before, 30.0)
        rosout.wait(
            f"/{NS}/front/depth/image: depth image dropped: message is too large: {2 * MIB} bytes",
            "parameter max_frame_bytes",
            level=Log.WARN,
        )
    finally:
        ros.set_params({"max_frame_bytes": 64 * MIB})


# ----------------------------------------------------------------------------- bounded JPEG header walk
def test_a_jpeg_whose_header_is_followed_by_50_mib_of_fill_bytes_is_refused_and_the_node_keeps_answering(ros, rosout):
    """Expected: a valid JPEG with 50 MiB of 0xFF fill bytes before its frame header (SOF), under
    max_frame_bytes (64 MiB), is dropped with 'no frame header (SOF) in the first 4 MiB': the header walk
    stops there and skips fill bytes in native code (the old per-byte walk took 0.2-0.5 s per MiB on the
    intake thread, and then stored it). The node drops it and answers the next question about the good
    frame, each within 30 s."""
    good = _good(ros, "good_before_fill")
    jpeg = bytes(rgb_to_compressed(sample_rgb(64, 48, seed=2), "jpeg").data)
    msg = CompressedImage(format="jpeg", header=Header(stamp=ros.now(), frame_id="fill"))
    msg.data = byte_array(np.frombuffer(jpeg[:2] + b"\xff" * (50 * MIB) + jpeg[2:], np.uint8))
    del jpeg
    _publish_rejected(ros, msg, "decode", timeout=30.0)
    assert ros.node.frames.latest("front").frame_id == "good_before_fill"
    res = ros.ask(QUESTION, camera="front", timeout=30.0)
    assert res.success and res.result.header == good, res.message
    rosout.wait(
        f"{FRONT}/compressed: frame dropped: corrupt JPEG: no frame header (SOF) in the first "
        f"{JPEG_HEADER_LIMIT // MIB} MiB of its {len(msg.data)} bytes",
        level=Log.WARN,
    )


# ----------------------------------------------------------------------------- future stamps
@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_a_frame_stamped_10_s_ahead_is_dropped_with_a_warning_naming_the_camera_and_the_previous_frame_answers(
    ros, rosout, transport
):
    """Expected: a frame stamped 10 s ahead of the node's clock (future_stamp_tolerance 0.5 s) would pass
    max_frame_age for ever: it is dropped at intake with a WARN naming the topic, the camera and how far
    ahead it is; a question afterwards is answered about the previous good frame."""
    good = _good(ros, f"good_before_future_{transport}")
    msg = _frame_msg(transport, Header(stamp=_stamp_in(ros, 10.0), frame_id=f"future_{transport}"))
    stored = ros.node.frames.stamps("front")
    _publish_rejected(ros, msg, "stamp_future")
    assert ros.node.frames.stamps("front") == stored
    topic = FRONT + ("/compressed" if transport == "compressed" else "")
    logged = rosout.wait(f"{topic}: frame dropped: its stamp", "s ahead of this node's clock", level=Log.WARN)
    assert "future_stamp_tolerance 0.5 s" in logged[-1].msg and "camera 'front'" in logged[-1].msg
    _answers_about(ros, good)


def test_a_frame_stamped_ahead_within_future_stamp_tolerance_is_accepted_and_answered(ros):
    """Expected: a frame stamped 0.3 s ahead (another machine's clock a little fast) is stored and answered
    about, like any other frame."""
    ahead = _stamp_in(ros, 0.3)
    header = ros.publish_frame(sample_rgb(64, 48, seed=11), camera_topic="front/image", stamp=ahead, frame_id="ahead")
    assert ros.node.frames.latest("front").frame_id == "ahead"
    res = ros.ask(QUESTION, camera="front")
    assert res.success and res.result.header == header, res.message
    wait_for(lambda: ros.node.get_clock().now().nanoseconds > stamp_ns(header))  # later frames are not older


def test_a_stored_frame_stamped_ahead_of_the_clock_is_refused_rather_than_taken_as_fresh(ros):
    """Expected: a frame stamped 10 s ahead that got in while the check was off (future_stamp_tolerance 0)
    is not answered as fresh (its age is negative) once the check is on: the question gets ERROR 'stamped
    ... ahead of this node's clock'. A frame stamped now then takes over (a clock reset) and answers."""
    assert ros.set_params({"future_stamp_tolerance": 0.0})[0].successful
    try:
        ros.publish_frame(
            sample_rgb(64, 48, seed=12), camera_topic="front/image", stamp=_stamp_in(ros, 10.0), frame_id="ahead10"
        )
        assert ros.node.frames.latest("front").frame_id == "ahead10"
    finally:
        assert ros.set_params({"future_stamp_tolerance": 0.5})[0].successful
    res = ros.ask(QUESTION, camera="front")
    assert not res.success and res.result.status == FocusResult.STATUS_ERROR
    assert "latest frame from camera 'front' is stamped" in res.message
    assert "s ahead of this node's clock (future_stamp_tolerance 0.5 s)" in res.message
    _answers_about(ros, _good(ros, "after_ahead10"))


def test_with_sim_time_frames_are_not_checked_before_the_first_clock_and_are_after_it(ros, rosout):
    """Expected: under use_sim_time the node's clock reads 0 until /clock arrives: a frame stamped with
    wall time is then accepted and answered (there is no clock to compare with). Once /clock says 1000 s,
    that stored frame is refused as stamped ahead, and a new wall-time frame is dropped at intake."""
    assert ros.set_params({"use_sim_time": True})[0].successful
    try:
        assert ros.node.get_clock().now().nanoseconds == 0
        header = ros.publish_frame(  # stamped by the wall clock: ros.now() reads 0
            sample_rgb(64, 48, seed=13),
            camera_topic="front/image",
            stamp=_stamp(time.time_ns()),
            frame_id="before_clock",
        )
        res = ros.ask(QUESTION, camera="front")
        assert res.success and res.result.header == header, res.message
        clock = ros.publisher(Clock, "/clock")
        sim = Clock(clock=Time(sec=1000))

        def clock_runs():
            clock.publish(sim)
            return ros.node.get_clock().now().nanoseconds > 0

        wait_for(clock_runs, 10.0, interval=0.05)
        res = ros.ask(QUESTION, camera="front")
        assert not res.success and "is stamped" in res.message and "ahead of this node's clock" in res.message
        msg = _frame_msg("raw", Header(stamp=_stamp(time.time_ns()), frame_id="wall_after_clock"))
        _publish_rejected(ros, msg, "stamp_future")
    finally:
        assert ros.set_params({"use_sim_time": False})[0].successful
    _answers_about(ros, _good(ros, "after_sim_time"))
