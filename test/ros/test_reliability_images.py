"""Reliability, hostile camera input: the real node over DDS keeps answering whatever drivers send.

Every case below states its expected outcome. The rule for unusable frames: dropped at intake,
one warning per topic and problem (throttled, on /rosout, naming the topic and the problem), and
the camera's last good frame stays the one questions are answered about.

Already proven elsewhere, not repeated here: every encoding converts (test_ros_conversions.py),
mono16 / rgba8 / bgra8 frames are answered over DDS with their header
(test_node_intake.py::test_raw_frames_in_each_encoding_...), a step smaller than one row is
dropped at intake (test_node_intake.py::test_a_malformed_frame_...).

One node (LLaVA miniature, cameras ``front`` and ``rear``) serves the whole module; ``rear``'s
topic is used only by the throttling test, so no other case shares its warning budget.
"""

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import Log
from rclpy.logging import LoggingSeverity
from ros_helpers import (
    NodeHarness,
    encode_rgb,
    expected_rgb,
    roi_inside,
    rss_mb,
    sample_rgb,
    stamp_ns,
    two_camera_params,
    wait_for,
)
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from focus_ros.msg import FocusResult
from focus_ros.ros.image_msgs import byte_array, numpy_to_image, rgb_to_compressed

QUESTION = "What colour is the red cup?"
NS = "focus_images"  # its own namespace: see ros_helpers.RosoutLog
FRONT = f"/{NS}/front/image"
REAR = f"/{NS}/rear/image"


@pytest.fixture(scope="module")
def ros(miniature_root):
    harness = NodeHarness(two_camera_params(miniature_root), namespace=NS)
    harness.node.get_logger().set_level(LoggingSeverity.INFO)  # warnings and the resolution notes reach /rosout
    yield harness
    harness.close()


def _good(ros, frame_id, size=(64, 48), seed=0):
    return ros.publish_frame(sample_rgb(*size, seed=seed), camera_topic="front/image", frame_id=frame_id)


def _publish_rejected(ros, msg, kind, topic=FRONT):
    """Publish a raw or compressed message and wait until the node has dropped it as ``kind``."""
    counter = f"frames_rejected_{kind}"
    before = ros.node.stats[counter]
    msg_type = CompressedImage if isinstance(msg, CompressedImage) else Image
    ros.publisher(msg_type, topic + ("/compressed" if msg_type is CompressedImage else "")).publish(msg)
    wait_for(lambda: ros.node.stats[counter] > before, 30.0)


def _raw(width=8, height=6, encoding="rgb8", **fields):
    msg = numpy_to_image(encode_rgb(sample_rgb(max(width, 1), max(height, 1)), "rgb8"), "rgb8")
    msg.width, msg.height, msg.encoding = width, height, encoding
    for k, v in fields.items():
        setattr(msg, k, v)
    msg.header.frame_id = "bad"
    return msg


def _answers_about(ros, header):
    res = ros.ask(QUESTION, camera="front")
    assert res.success, res.message
    assert res.result.header == header, "the last good frame should be the one answered about"
    return res


# ----------------------------------------------------------------------------- malformed raw frames
MALFORMED = {
    # case: (message fields, ImageError kind, words the warning must contain)
    "wrong_step": (dict(step=8 * 3 - 1), "step", "step 23 is smaller than one row"),
    "short_data": (dict(step=8 * 3, data=bytes(8 * 3 * 5)), "data", "image data is too short: 120 bytes"),
    "unknown_encoding": (dict(encoding="yuv444p10"), "encoding", "unsupported image encoding 'yuv444p10'"),
    "zero_by_zero": (dict(width=0, height=0, step=0, data=b""), "zero_size", "image has zero size (0x0)"),
    "one_by_one": (dict(width=1, height=1, step=3, data=bytes(3)), "too_small", "image is too small (1x1)"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_raw_frame_is_dropped_with_a_warning_naming_topic_and_problem_and_the_last_good_frame_answers(
    ros, rosout, case
):
    """Expected: dropped at intake; a WARN on /rosout '<topic>: frame dropped: <problem>'; answers use the
    good frame."""
    fields, kind, words = MALFORMED[case]
    good = _good(ros, f"good_before_{case}")
    msg = _raw(**{k: v for k, v in fields.items() if k in ("width", "height", "encoding")})
    for k, v in fields.items():
        setattr(msg, k, v)
    msg.header.stamp = ros.now()
    stored = ros.node.frames.stamps("front")
    _publish_rejected(ros, msg, kind)
    assert ros.node.frames.stamps("front") == stored  # nothing of it entered the store
    rosout.wait(f"{FRONT}: frame dropped: ", words, "keeps its last good frame", level=Log.WARN)
    _answers_about(ros, good)


def test_a_16384_square_raw_frame_is_refused_from_its_header_before_any_conversion(ros, rosout):
    """Expected: dropped as too large (max_image_side 8192) from width/height alone, never converted; the good
    frame answers. (The 268 MB message itself is DDS's to receive; the node allocates nothing for it.)"""
    good = _good(ros, "good_before_huge_raw")
    huge = numpy_to_image(np.zeros((16384, 16384), np.uint8), "mono8")
    huge.header.stamp = ros.now()
    _publish_rejected(ros, huge, "too_large")
    del huge
    rosout.wait(f"{FRONT}: frame dropped: image is too large (16384x16384)", "max_image_side", level=Log.WARN)
    assert ros.node.frames.latest("front").frame_id == "good_before_huge_raw"
    _answers_about(ros, good)


def test_a_16384_square_png_bomb_is_refused_from_its_header_without_decoding_805_mb(ros, rosout):
    """Expected: a 288 KB PNG that would decode to 16384x16384x3 (805 MB) is dropped at intake from its IHDR;
    the node's memory does not grow by anything like its decoded size; the good frame answers."""
    import cv2

    ok, png = cv2.imencode(".png", np.zeros((16384, 16384), np.uint8))
    assert ok and png.size < 1_000_000
    bomb = CompressedImage(format="png")
    bomb.data = png.tobytes()
    del png
    good = _good(ros, "good_before_png_bomb")
    before = rss_mb()
    bomb.header.stamp = ros.now()
    _publish_rejected(ros, bomb, "too_large")
    _answers_about(ros, good)
    assert rss_mb() - before < 200, "the PNG bomb must not be decoded (805 MB)"
    rosout.wait(f"{FRONT}/compressed: frame dropped: image is too large (16384x16384)", level=Log.WARN)


# ----------------------------------------------------------------------------- unusual but valid raw frames
@pytest.mark.parametrize("encoding", ["rgba16", "16UC1", "bgra16", "8UC4"])
def test_16_bit_and_4_channel_frames_are_converted_and_answered(ros, encoding):
    """Expected: handled (alpha dropped, 16 bit -> high byte, as cv_bridge does); answered with their header."""
    rgb = sample_rgb(96, 64, seed=3, block=2)
    header = ros.publish_frame(rgb, encoding, camera_topic="front/image", frame_id=f"cam_{encoding}")
    res = ros.ask(QUESTION, camera="front")
    assert res.success and res.result.header == header, res.message
    want, tol = expected_rgb(rgb, encoding)
    assert int(np.abs(ros.node.frames.latest("front").rgb().astype(int) - want.astype(int)).max()) <= tol


def test_a_12_bit_big_endian_mono16_camera_is_answered(ros):
    """Expected: handled; a big-endian 16-bit buffer is read in its byte order (high byte kept)."""
    gray = (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) % 4096) * 16  # 12 bits, shifted up
    msg = numpy_to_image(gray, "mono16")
    msg.is_bigendian = 1
    msg.data = byte_array(gray.astype(">u2").view(np.uint8))
    msg.header = Header(stamp=ros.now(), frame_id="mono12_be")
    before = ros.node.stats["frames_received"]
    ros.publisher(Image, FRONT).publish(msg)
    wait_for(lambda: ros.node.stats["frames_received"] > before)
    res = ros.ask(QUESTION, camera="front")
    assert res.success and res.result.header.frame_id == "mono12_be"
    np.testing.assert_array_equal(ros.node.frames.latest("front").rgb()[..., 0], (gray >> 8).astype(np.uint8))


# ----------------------------------------------------------------------------- corrupt compressed frames
def test_garbage_jpeg_and_png_bytes_are_dropped_at_intake(ros, rosout):
    """Expected: bytes without a JPEG frame header / PNG IHDR are dropped at intake ('decode' problem), warned
    about on the compressed topic; the good frame answers."""
    good = _good(ros, "good_before_garbage")
    jpeg = rgb_to_compressed(sample_rgb(64, 48), "jpeg")
    for fmt, data in (
        ("jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(40)),  # header segments, no SOF
        ("png", b"\x89PNG\r\n\x1a\n" + bytes(30)),  # signature, no IHDR
        ("jpeg", bytes(jpeg.data)[::-1]),
    ):  # not even a signature
        msg = CompressedImage(format=fmt, data=data)
        msg.header.stamp = ros.now()
        _publish_rejected(ros, msg, "decode")
    rosout.wait(f"{FRONT}/compressed: frame dropped: ", "corrupt", level=Log.WARN)
    _answers_about(ros, good)


def test_a_truncated_jpeg_or_png_behind_a_valid_header_costs_no_answer(ros, rosout):
    """Expected: stored (the header is fine), but when a question decodes it and fails the node warns
    '<topic>: ... cannot be decoded' and answers about the last good frame instead; a question naming
    the broken frame's stamp gets an error that says why."""
    for fmt in ("jpeg", "png"):
        good = _good(ros, f"good_before_truncated_{fmt}", size=(96, 64))
        msg = rgb_to_compressed(sample_rgb(96, 64, seed=4), fmt)
        msg.data = bytes(msg.data)[: len(msg.data) // 2]
        msg.header = Header(stamp=ros.now(), frame_id=f"truncated_{fmt}")
        before, undecodable = ros.node.stats["frames_received"], ros.node.stats["frames_undecodable"]
        ros.publisher(CompressedImage, FRONT + "/compressed").publish(msg)
        wait_for(lambda: ros.node.stats["frames_received"] > before)  # noqa: B023 (waited on in this iteration)
        assert ros.node.frames.latest("front").frame_id == f"truncated_{fmt}"  # header fine: kept for now
        _answers_about(ros, good)
        assert ros.node.stats["frames_undecodable"] == undecodable + 1
        named = ros.ask(QUESTION, camera="front", stamp=msg.header.stamp)
        assert not named.success and named.result.status == FocusResult.STATUS_ERROR
        assert f"(compressed {fmt}) cannot be decoded" in named.message
        assert named.result.header.frame_id == f"truncated_{fmt}"
    # one warning for both (same topic and problem within the throttle period)
    rosout.wait(
        f"{FRONT}/compressed: frame from 'front' on {FRONT}/compressed (compressed jpeg) cannot be decoded",
        level=Log.WARN,
    )


# ----------------------------------------------------------------------------- resolution and stamps
def test_a_camera_that_changes_resolution_mid_stream_is_answered_in_each_frames_own_pixels(ros, rosout):
    """Expected: handled: every frame keeps its size, a question naming any stored frame gets boxes inside that
    frame; the change is noted (INFO) on /rosout with the topic. Also with the idle prefill on."""
    assert all(r.successful for r in ros.set_params({"prefill_on_arrival": True}))
    changes = ros.node.stats["resolution_changes"]
    try:
        sizes = [(640, 480), (320, 240), (1280, 720), (320, 240)]
        headers = [
            ros.publish_frame(sample_rgb(w, h, seed=i), camera_topic="front/image", frame_id=f"res{i}")
            for i, (w, h) in enumerate(sizes)
        ]
        for (w, h), header in zip(sizes, headers):
            res = ros.ask(QUESTION, camera="front", stamp=header.stamp)
            assert res.success and res.result.header == header, res.message
            assert roi_inside(res.result.selected_roi, w, h) or res.result.selected_roi.width == 0
            assert res.result.regions and all(roi_inside(r.roi, w, h) for r in res.result.regions)
        assert ros.node.stats["resolution_changes"] >= changes + 3
        # one note per topic per 5 s: the earlier tests' sizes may have used this period's
        rosout.wait(f"{FRONT}: resolution changed from ", level=Log.INFO)
    finally:
        ros.set_params({"prefill_on_arrival": False})


def test_an_unstamped_frame_is_kept_with_a_warning_and_answered_by_arrival_age(ros, rosout):
    """Expected: handled: kept (age taken from its arrival), WARN '<topic>: frame has no stamp (0)'; answered."""
    header = ros.publish_frame(sample_rgb(64, 48, seed=5), camera_topic="front/image", stamp=Time(), frame_id="nostamp")
    res = ros.ask(QUESTION, camera="front")
    assert res.success and res.result.header == header and stamp_ns(res.result.header) == 0
    rosout.wait(f"{FRONT}: frame has no stamp (0)", level=Log.WARN)


def test_a_frame_stamped_earlier_than_the_latest_is_dropped_as_out_of_order(ros, rosout):
    """Expected: a frame 0.1 s older than the newest stored one is dropped with a WARN naming the topic;
    the newest frame stays the latest and answers."""
    newest = _good(ros, "newest")
    late_ns = stamp_ns(newest) - 100_000_000
    late = Time(sec=late_ns // 10**9, nanosec=late_ns % 10**9)
    before = ros.node.stats["frames_out_of_order"]
    ros.publish_frame(sample_rgb(64, 48, seed=6), camera_topic="front/image", stamp=late, frame_id="late")
    assert ros.node.stats["frames_out_of_order"] == before + 1
    assert ros.node.frames.latest("front").frame_id == "newest"
    rosout.wait(f"{FRONT}: frame dropped: its stamp", "out of order", level=Log.WARN)
    _answers_about(ros, newest)


def test_a_stamp_jumping_back_seconds_is_a_clock_reset_and_the_stream_goes_on_from_there(ros, rosout):
    """Expected: a jump back of >= 1 s (bag loop, simulator restart) drops the camera's older frames with a
    WARN naming the topic; the new frame and the ones after it are answered."""
    _good(ros, "before_reset")
    back = ros.now()
    back.sec -= 3
    reset = ros.publish_frame(sample_rgb(64, 48, seed=7), camera_topic="front/image", stamp=back, frame_id="reset")
    assert ros.node.frames.stamps("front") == [stamp_ns(reset)]
    rosout.wait(f"{FRONT}: stamp jumped back", "clock was reset", level=Log.WARN)
    _answers_about(ros, reset)
    after = Time(sec=back.sec, nanosec=back.nanosec)
    after.sec += 1
    following = ros.publish_frame(
        sample_rgb(64, 48, seed=8), camera_topic="front/image", stamp=after, frame_id="after_reset"
    )
    _answers_about(ros, following)


# ----------------------------------------------------------------------------- throttling
def test_a_driver_sending_only_broken_frames_gets_throttled_warnings_and_no_question_is_lost(ros, rosout):
    """Expected: 12 bad frames on one topic give fewer warnings than frames (at most one per 5 s per topic and
    problem), all are counted, and a question for that camera still gets one clear error."""
    bad = _raw(width=8, height=6, step=5)
    before_logs = len(rosout.matching(f"{REAR}: frame dropped: step 5 is smaller"))
    before = ros.node.stats["frames_rejected_step"]
    for _ in range(12):
        bad.header.stamp = ros.now()
        _publish_rejected(ros, bad, "step", topic=REAR)
    assert ros.node.stats["frames_rejected_step"] == before + 12
    rosout.wait(f"{REAR}: frame dropped: step 5 is smaller")
    assert 1 <= len(rosout.matching(f"{REAR}: frame dropped: step 5 is smaller")) - before_logs < 12
    res = ros.ask(QUESTION, camera="rear")
    assert not res.success and "no frame yet from camera 'rear'" in res.message
