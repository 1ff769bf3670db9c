"""/diagnostics of the real node over DDS: the model, the questions and every camera at 1 Hz, with
the node as hardware id; a camera that stops turns WARN; repeated inference failures (real ones:
LLaVA-OneVision's any-res layout raises on a 64x4 frame) turn the questions ERROR until an answer
clears them; and reports keep coming while the model is busy with a long question."""

import threading
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import LONG_SEARCH, NodeHarness, sample_rgb, wait_for

from focus_ros.ros.diagnostics import FAILURES_FOR_ERROR

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUESTION = "What colour is the red cup?"
BASE = {
    "search.target_extraction": "rule",
    "search.max_steps": 1,
    "search.overrun": False,
    "max_frame_age": 1.0,  # a camera silent for 1 s is reported
}


class DiagnosticsLog:
    """Every DiagnosticArray of this module's node on /diagnostics (a topic every node on the machine
    shares) with its arrival time."""

    def __init__(self, ros):
        self.ros, self.arrays, self._lock = ros, [], threading.Lock()
        self.hardware_id = ros.node.get_fully_qualified_name()
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self._sub = ros.client.create_subscription(DiagnosticArray, "/diagnostics", self._on, qos)

    def _on(self, msg):
        if msg.status and all(s.hardware_id == self.hardware_id for s in msg.status):
            with self._lock:
                self.arrays.append((time.monotonic(), msg))

    def since(self, t0):
        with self._lock:
            return [m for t, m in self.arrays if t >= t0]

    def status_since(self, t0, part, level, text=""):
        """The first status of ``part`` at ``level`` (with ``text`` in its message) published since ``t0``."""
        name = f"{self.ros.node.get_name()}: {part}"
        for msg in self.since(t0):
            for s in msg.status:
                if s.name == name and s.level == level and text in s.message:
                    return s
        return None

    def wait_status(self, part, level, text="", timeout=10.0):
        """The first status of ``part`` at ``level`` (with ``text`` in its message) published from now on."""
        t0 = time.monotonic()
        return wait_for(lambda: self.status_since(t0, part, level, text), timeout)

    def close(self):
        self.ros.client.destroy_subscription(self._sub)


def values(status):
    return {kv.key: kv.value for kv in status.values}


@pytest.fixture(scope="module")
def ros(miniature_root):
    harness = NodeHarness({"model.path": str(miniature_root / "llava_onevision"), **BASE}, namespace="focus_diag")
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def diag(ros):
    log = DiagnosticsLog(ros)
    yield log
    log.close()


@pytest.fixture(autouse=True)
def base_settings(ros):
    assert all(r.successful for r in ros.node.set_parameters([Parameter(k, value=v) for k, v in BASE.items()]))


def stream_until_ok(ros, diag, seed: int, timeout: float = 10.0):
    """Publish frames at about 5 Hz, as a camera does, until the diagnostics call the camera OK; that
    status and the time of the last frame. One frame alone is not enough: with max_frame_age 1 s and diagnostics at
    1 Hz, a loaded machine can first look at it more than 1 s after it arrived."""
    t0 = time.monotonic()
    while True:
        ros.publish_frame(sample_rgb(64, 48, seed=seed), frame_id="diag_cam")
        last_frame = time.monotonic()
        time.sleep(0.2)
        status = diag.status_since(t0, "camera camera", DiagnosticStatus.OK, "latest frame")
        if status:
            return status, last_frame
        assert last_frame - t0 < timeout, "the camera never turned OK while publishing"


def test_diagnostics_report_the_model_questions_and_cameras_at_1_hz_with_the_node_as_hardware_id(ros, diag):
    for i in range(2):
        ros.publish_frame(sample_rgb(64, 48, seed=i), frame_id="diag_cam")
    camera, _ = stream_until_ok(ros, diag, seed=2)
    t0 = time.monotonic()
    time.sleep(3.2)
    arrays = diag.since(t0)
    assert 2 <= len(arrays) <= 5  # 1 Hz
    last = arrays[-1]
    by_name = {s.name: s for s in last.status}
    node = ros.node.get_name()
    assert set(by_name) == {f"{node}: model", f"{node}: questions", f"{node}: camera camera"}
    assert all(s.hardware_id == ros.node.get_fully_qualified_name() == "/focus_diag/focus_node" for s in last.status)
    model = by_name[f"{node}: model"]
    assert model.level == DiagnosticStatus.OK and values(model)["loaded"] == "true" and values(model)["device"] == "cpu"
    questions = values(by_name[f"{node}: questions"])
    assert questions["queue_depth"] == "0" and questions["inference_failures_in_a_row"] == "0"
    cam = values(camera)
    assert int(cam["frames_received"]) >= 3 and cam["frames_dropped"] == "0" and float(cam["latest_frame_age_s"]) < 1.0
    assert cam["depth_enabled"] == "true" and cam["camera_info"] == "false"


def test_a_camera_that_stops_publishing_turns_warn_past_max_frame_age(ros, diag):
    _, last_frame = stream_until_ok(ros, diag, seed=5)
    warn = diag.wait_status("camera camera", DiagnosticStatus.WARN, "silent for", timeout=5.0)
    assert 1.0 <= time.monotonic() - last_frame <= 4.0 and "more than 1 s" in warn.message
    stream_until_ok(ros, diag, seed=6)  # and OK again once it publishes


def test_repeated_inference_failures_turn_the_questions_error_and_the_next_answer_clears_it(ros, diag):
    for _ in range(FAILURES_FOR_ERROR):
        ros.publish_frame(sample_rgb(64, 4, seed=7), frame_id="sliver")
        bad = ros.ask(QUESTION)
        assert not bad.success and bad.message.startswith("internal error"), bad.message
    error = diag.wait_status("questions", DiagnosticStatus.ERROR, f"{FAILURES_FOR_ERROR} inference failures in a row")
    assert "IndexError" in error.message and int(values(error)["internal_errors"]) >= FAILURES_FOR_ERROR
    ros.publish_frame(sample_rgb(64, 48, seed=8), frame_id="diag_cam")
    assert ros.ask(QUESTION).success
    ok = diag.wait_status("questions", DiagnosticStatus.OK)
    assert values(ok)["inference_failures_in_a_row"] == "0" and float(values(ok)["last_latency_s"]) > 0.0


def test_reports_keep_coming_at_1_hz_while_the_model_is_busy(ros, diag):
    before = {k: ros.node.get_parameter(k).value for k in LONG_SEARCH}
    assert all(r.successful for r in ros.set_params(LONG_SEARCH))
    ros.publish_frame(sample_rgb(640, 480, seed=9), frame_id="busy_cam")
    handle, feedback = ros.send_goal("Where is the tiny screw?")
    try:
        wait_for(lambda: any(f.stage == "verify" for f in feedback), 30.0)
        t0 = time.monotonic()
        time.sleep(2.6)
        reports = diag.since(t0)
        assert "answer" not in [f.stage for f in feedback]  # the worker held the model all along
        assert len(reports) >= 2  # and the reports did not wait for it
    finally:
        ros.result_of(handle.cancel_goal_async(), 10.0)
        ros.result_of(handle.get_result_async(), 60.0)
        ros.set_params(before)
