"""Shared helpers of the ROS tests: images in every encoding, and a real in-process ROS graph.

:class:`NodeHarness` runs the real :class:`~focus_ros.ros.focus_node.FocusNode` (real model from
``from_pretrained``, real DDS) and a client node on one ``MultiThreadedExecutor`` spinning in a
background thread, in a private rclpy context. Tests talk to the node only through topics,
services, actions and the parameter services, and read its frame store / counters to observe
what happened inside.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory

# ----------------------------------------------------------------------------- images

COLOUR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16", "8UC3", "8UC4")
MONO_ENCODINGS = ("mono8", "mono16", "8UC1", "16UC1")
YUV_ENCODINGS = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv", "nv12", "nv21")
BAYER_ENCODINGS = ("bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8")


def sample_rgb(width: int = 64, height: int = 48, seed: int = 0, block: int = 1) -> np.ndarray:
    """Random RGB frame; ``block`` > 1 makes it constant on block x block tiles (chroma-subsampling safe)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (-(-height // block), -(-width // block), 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(small, block, 0), block, 1)[:height, :width])


def _yuv420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    y = i420[:h]
    chroma = i420[h:].reshape(-1)
    n = (h // 2) * (w // 2)
    return y, chroma[:n].reshape(h // 2, w // 2), chroma[n : 2 * n].reshape(h // 2, w // 2)


def encode_rgb(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """``rgb`` laid out as ``encoding`` stores it (what a camera driver would publish)."""
    enc = encoding
    if enc in ("rgb8",):
        return rgb.copy()
    if enc in ("bgr8", "8UC3"):
        return np.ascontiguousarray(rgb[..., ::-1])
    if enc == "rgba8":
        return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    if enc in ("bgra8", "8UC4"):
        return np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 255, np.uint8)])
    if enc.endswith("16") and enc[:3] in ("rgb", "bgr"):
        base = encode_rgb(rgb, enc[:-2] + "8")
        return base.astype(np.uint16) * 257
    if enc in ("mono8", "8UC1"):
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if enc in ("mono16", "16UC1"):
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    if enc in ("nv12", "nv21"):
        y, u, v = _yuv420(rgb)
        uv = np.empty((u.shape[0], u.shape[1] * 2), np.uint8)
        first, second = (u, v) if enc == "nv12" else (v, u)
        uv[:, 0::2], uv[:, 1::2] = first, second
        return np.vstack([y, uv])
    if enc in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv"):
        y, u, v = _yuv420(rgb)
        h, w = y.shape
        uu = np.repeat(u, 2, 0)[:h]
        vv = np.repeat(v, 2, 0)[:h]
        out = np.empty((h, w, 2), np.uint8)
        chroma = np.empty((h, w), np.uint8)
        chroma[:, 0::2], chroma[:, 1::2] = uu, vv
        if enc in ("yuv422", "uyvy"):  # U Y0 V Y1
            out[..., 0], out[..., 1] = chroma, y
        else:  # Y0 U Y1 V
            out[..., 0], out[..., 1] = y, chroma
        return out
    if enc.startswith("bayer_"):
        pattern = enc[len("bayer_") : -1]  # e.g. "rggb"
        idx = {"r": 0, "g": 1, "b": 2}
        out = np.empty(rgb.shape[:2], np.uint8)
        for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            out[dy::2, dx::2] = rgb[dy::2, dx::2, idx[pattern[k]]]
        return out
    raise ValueError(f"test helper cannot encode {encoding}")


def expected_rgb(rgb: np.ndarray, encoding: str) -> tuple[np.ndarray, int]:
    """What converting ``encode_rgb(rgb, encoding)`` back must give, and the allowed error."""
    if encoding in MONO_ENCODINGS:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return np.dstack([gray] * 3), 0
    if encoding in YUV_ENCODINGS:
        return rgb, 8  # limited-range YUV rounding
    if encoding in BAYER_ENCODINGS:
        return rgb, 3  # uniform test images only
    return rgb, 0


# ----------------------------------------------------------------------------- ROS graph

# Search settings for a question that keeps the model busy for a while: many small candidates,
# all verified one at a time (on a 640x480 frame ~470 candidates, ~12 s, on the LLaVA miniature,
# 512 and ~7 s on OneVision's, on an idle 2-core CPU). Tests cancel it once they have what they
# need, so it never runs to the end. max_steps and top_k_anchors are at the top of their ranges
# (core/config.py SEARCH_LIMITS), which still hold every side-2 region of a 24x24 grid.
LONG_SEARCH = {
    "search.verify_batch": 1,  # one crop a pass: cancel checks between passes, no 512-crop batch
    "search.max_steps": 512,
    "search.top_k_anchors": 512,
    "search.nms_iou": 1.0,
    "search.min_anchor_distance": 1,
    "search.max_grid_side": 0,  # no pooling (OneVision's default pools): every cell a candidate
    "search.s_min": 2,
    "search.s_max": 3,
}


def two_camera_params(miniature_root: Any, max_frame_age: float = 30.0) -> dict[str, Any]:
    """Node parameters of the intake/reliability tests: the LLaVA miniature, cameras 'front' and
    'rear', rule targets and one verification step (fast questions)."""
    return {
        "model.path": str(miniature_root / "llava"),
        "cameras": ["front", "rear"],
        "search.target_extraction": "rule",
        "search.max_steps": 1,
        "search.overrun": False,
        "max_frame_age": max_frame_age,
    }


def stamp_ns(header: Any) -> int:
    """A header's stamp in nanoseconds (the frame store's key)."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll ``predicate`` until it is truthy; returns its value, or raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


class NodeHarness:
    """The real FocusNode plus a client node, spinning on one MultiThreadedExecutor in a thread."""

    def __init__(
        self, overrides: dict[str, Any], namespace: str = "focus", configure: bool = True, activate: bool = True
    ):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.lifecycle import TransitionCallbackReturn
        from rclpy.parameter import Parameter

        from focus_ros.ros.focus_node import FocusNode

        self.namespace = namespace
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = FocusNode(
            namespace=namespace,
            context=self.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
        )
        # Results are checked through the interfaces; keep the per-question log lines off the test output.
        self.node.get_logger().set_level(rclpy.logging.LoggingSeverity.ERROR)
        self.client = rclpy.create_node("focus_test_client", context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=self.node.executor_threads() + 4, context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        self._publishers: dict[tuple, Any] = {}
        self._clients: dict[tuple, Any] = {}
        if configure:
            assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS, self.node.last_error
        if configure and activate:
            assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS, self.node.last_error

    def name(self, relative: str) -> str:
        return f"/{self.namespace}/{relative}" if self.namespace else f"/{relative}"

    # ------------------------------------------------------------------ plumbing
    def publisher(self, msg_type: Any, topic: str, reliable: bool = False, depth: int = 5) -> Any:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        key = (msg_type, topic, reliable)
        if key not in self._publishers:
            qos = QoSProfile(
                depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
            )
            pub = self.client.create_publisher(msg_type, topic, qos)
            self._publishers[key] = pub
            wait_for(lambda: pub.get_subscription_count() > 0, 10.0)
        return self._publishers[key]

    def service_client(self, srv_type: Any, name: str) -> Any:
        key = (srv_type, name)
        if key not in self._clients:
            cli = self.client.create_client(srv_type, name)
            assert cli.wait_for_service(timeout_sec=10.0), f"service {name} not available"
            self._clients[key] = cli
        return self._clients[key]

    def result_of(self, future: Any, timeout: float = 60.0) -> Any:
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            raise TimeoutError(f"no result within {timeout} s")
        return future.result()

    def now(self) -> Any:
        return self.node.get_clock().now().to_msg()

    # ------------------------------------------------------------------ frames
    def publish_frame(
        self,
        rgb: np.ndarray,
        encoding: str = "rgb8",
        camera_topic: str = "image",
        stamp: Any = None,
        frame_id: str = "camera_optical",
        wait: bool = True,
        compressed: str = "",
    ) -> Any:
        """Publish ``rgb`` as ``encoding`` (or as a ``compressed`` jpeg/png); wait until the node stored it."""
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import Header

        from focus_ros.ros.image_msgs import numpy_to_image, rgb_to_compressed

        header = Header(stamp=stamp if stamp is not None else self.now(), frame_id=frame_id)
        if compressed:
            msg = rgb_to_compressed(rgb, compressed, header)
            pub = self.publisher(CompressedImage, self.name(camera_topic + "/compressed"))
        else:
            msg = numpy_to_image(encode_rgb(rgb, encoding), encoding, header)
            pub = self.publisher(Image, self.name(camera_topic))
        before = self.node.stats["frames_received"]
        pub.publish(msg)
        if wait:
            wait_for(lambda: self.node.stats["frames_received"] > before, 20.0)
        return header

    def stored_stamps(self, camera: str) -> list[int]:
        return self.node.frames.stamps(camera)

    # ------------------------------------------------------------------ questions
    def ask_async(self, question: str, camera: str = "", stamp: Any = None) -> Any:
        from focus_ros.srv import Ask

        req = Ask.Request(question=question, camera=camera)
        if stamp is not None:
            req.stamp = stamp
        return self.service_client(Ask, self.name("ask")).call_async(req)

    def ask(self, question: str, camera: str = "", stamp: Any = None, timeout: float = 60.0) -> Any:
        return self.result_of(self.ask_async(question, camera, stamp), timeout)

    def action_client(self) -> Any:
        from rclpy.action import ActionClient

        from focus_ros.action import Query

        if not hasattr(self, "_action_client"):
            self._action_client = ActionClient(self.client, Query, self.name("query"))
            assert self._action_client.wait_for_server(timeout_sec=10.0), "query action server not available"
        return self._action_client

    def send_goal(self, question: str, camera: str = "") -> tuple[Any, list]:
        """Send a Query goal; returns (accepted goal handle, list collecting feedback in arrival order)."""
        from focus_ros.action import Query

        feedback: list = []
        fut = self.action_client().send_goal_async(
            Query.Goal(question=question, camera=camera), feedback_callback=lambda fb: feedback.append(fb.feedback)
        )
        handle = self.result_of(fut, 10.0)
        assert handle.accepted
        return handle, feedback

    def set_params(self, values: dict[str, Any]) -> list:
        """Set parameters through the node's real parameter service; returns the SetParametersResults."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        cli = self.service_client(SetParameters, self.name("focus_node/set_parameters"))
        req = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        return list(self.result_of(cli.call_async(req), 10.0).results)

    # ------------------------------------------------------------------ lifecycle (through its services)
    def transition(self, transition_id: int, timeout: float = 120.0) -> bool:
        """Request a lifecycle transition through ``change_state`` (what ``ros2 lifecycle set`` does)."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        cli = self.service_client(ChangeState, self.name("focus_node/change_state"))
        req = ChangeState.Request(transition=Transition(id=transition_id))
        return self.result_of(cli.call_async(req), timeout).success

    def state(self) -> int:
        """The node's lifecycle state id (lifecycle_msgs/State) from ``get_state``."""
        from lifecycle_msgs.srv import GetState

        cli = self.service_client(GetState, self.name("focus_node/get_state"))
        return self.result_of(cli.call_async(GetState.Request()), 10.0).current_state.id

    # ------------------------------------------------------------------ teardown
    def close(self) -> None:
        import rclpy

        try:
            self.node.release()
        finally:
            self.executor.shutdown()
            self.node.destroy_node()
            self.client.destroy_node()
            rclpy.try_shutdown(context=self.context)
            self._thread.join(timeout=5.0)


def roi_inside(roi: Any, width: int, height: int) -> bool:
    return (
        roi.x_offset + roi.width <= width and roi.y_offset + roi.height <= height and roi.width > 0 and roi.height > 0
    )


# ----------------------------------------------------------------------------- exactly-once accounting


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MiB (``VmRSS`` of /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


class AnswerLog:
    """Every ``FocusResult`` the node publishes on ``answer``, for counting answers per question.

    :meth:`flush` makes the count exact without waiting for a while: it asks one more question
    the node refuses at once (an unknown camera named ``sentinel<n>``) and waits for *its* result
    on the topic. The answer writer is reliable and keeps its order, and the node publishes a
    result before the caller gets it, so everything published before the sentinel is in by then.
    """

    def __init__(self, ros: NodeHarness, topic: str = "answer"):
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from focus_ros.msg import FocusResult

        self.ros = ros
        self.results: list = []
        self._lock = threading.Lock()
        self._sentinels = 0
        self._sub = ros.client.create_subscription(
            FocusResult,
            ros.name(topic),
            self._on_result,
            QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE),
        )
        wait_for(lambda: ros.node.answer_pub is not None and ros.node.answer_pub.get_subscription_count() > 0)

    def _on_result(self, msg: Any) -> None:
        with self._lock:
            self.results.append(msg)

    def flush(self, timeout: float = 30.0) -> None:
        self._sentinels += 1
        camera = f"sentinel{self._sentinels}"
        res = self.ros.ask("sentinel question", camera=camera, timeout=timeout)
        assert not res.success and "unknown camera" in res.message, res.message
        wait_for(lambda: any(r.camera == camera for r in self.snapshot()), timeout)

    def snapshot(self) -> list:
        with self._lock:
            return list(self.results)

    def for_question(self, question: str) -> list:
        return [r for r in self.snapshot() if r.question == question]

    def close(self) -> None:
        self.ros.client.destroy_subscription(self._sub)


class RosoutLog:
    """``rcl_interfaces/Log`` messages of the node's logger from ``/rosout`` (what ``rqt_console`` shows).

    Give a module that reads /rosout a namespace of its own: rcl keys a process's rosout
    publishers by logger name, and a same-named node of an earlier module, finalized late,
    takes the shared entry (and with it this node's /rosout output) away."""

    def __init__(self, ros: NodeHarness):
        from rcl_interfaces.msg import Log
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        self.ros, self.logger = ros, ros.node.get_logger().name
        self.messages: list = []
        self._lock = threading.Lock()
        qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        self._sub = ros.client.create_subscription(Log, "/rosout", self._on_log, qos)
        wait_for(lambda: self._sub.get_publisher_count() > 0)

    def _on_log(self, msg: Any) -> None:
        if msg.name == self.logger:
            with self._lock:
                self.messages.append(msg)

    def matching(self, *parts: str, level: int | None = None) -> list:
        """Messages containing every one of ``parts`` (and of ``level``, e.g. Log.WARN)."""
        with self._lock:
            return [m for m in self.messages if all(p in m.msg for p in parts) and (level is None or m.level == level)]

    def wait(self, *parts: str, level: int | None = None, timeout: float = 10.0) -> list:
        try:
            return wait_for(lambda: self.matching(*parts, level=level), timeout)
        except TimeoutError:
            with self._lock:
                seen = "\n".join(f"  [{m.level}] {m.msg[:200]}" for m in self.messages[-15:])
            raise TimeoutError(f"no /rosout message with {parts} within {timeout} s; the last ones:\n{seen}") from None

    def close(self) -> None:
        self.ros.client.destroy_subscription(self._sub)


# ----------------------------------------------------------------------------- processes
def installed_focus_node():
    """(focus_node executable, config/focus.yaml, Fast DDS large-frame profile) of the sourced
    workspace; skips the test when focus_ros is not installed there."""
    try:
        exe = Path(get_package_prefix("focus_ros")) / "lib" / "focus_ros" / "focus_node"
        share = Path(get_package_share_directory("focus_ros"))
    except PackageNotFoundError as exc:
        pytest.skip(f"focus_ros is not installed in the sourced workspace ({exc}); run scripts/setup.sh")
    assert exe.is_file() and os.access(exe, os.X_OK), f"{exe} missing or not executable: rerun scripts/setup.sh"
    return exe, share / "config" / "focus.yaml", share / "config" / "fastdds_large_frames.xml"


class Proc:
    """A child process with its output in a file; stopped with SIGINT like a terminal's Ctrl-C."""

    def __init__(self, cmd, log_path, env=None):
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w")
        self.popen = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env or dict(os.environ))

    def stop(self, timeout=30.0):
        try:
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGINT)
                try:
                    self.popen.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait()
        finally:
            self._log.close()
        return self.popen.returncode

    def text(self):
        return self.log_path.read_text()
