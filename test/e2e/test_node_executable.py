"""The installed ``focus_node`` executable (what ``ros2 run`` and the launch file start), as a
separate process with config/focus.yaml and the shipped Fast DDS profile: it comes up under
/focus, answers over DDS, receives 12 MP frames from another process, and stops cleanly on
SIGINT. The rclpy counterpart of test_focus_launch.py, which needs launch_testing."""

import os
import sys
import textwrap
import threading
import time

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from ros_helpers import Proc, encode_rgb, installed_focus_node, roi_inside, sample_rgb, wait_for
from sensor_msgs.msg import Image

from focus_ros.ros.distro import ros_distro
from focus_ros.ros.image_msgs import numpy_to_image
from focus_ros.srv import Ask

QUESTION = "What colour is the red cup?"

# ROS 2 Jazzy's Fast DDS (2.14) loses best-effort messages that need fragmenting between processes
# (any camera frame): there, cameras publish and the node subscribes reliable, as docs/setup.md
# says; on Kilted best effort, the sensor-data default, is what is tested.
JAZZY = ros_distro() == "jazzy"
IMAGE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE) if JAZZY else qos_profile_sensor_data
IMAGE_RELIABILITY = "reliable" if JAZZY else "best_effort"

# A second process playing a 12 MP camera (2 Hz) with the large-frame profile.
BIG_CAMERA = textwrap.dedent("""
    import time, numpy as np, rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from focus_ros.ros.image_msgs import numpy_to_image
    rclpy.init()
    node = rclpy.create_node("big_camera")
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE) if JAZZY else qos_profile_sensor_data
    pub = node.create_publisher(Image, "/focus/image", qos)
    frame = np.zeros((3000, 4000, 3), np.uint8)
    frame[1200:1800, 2600:3400] = (30, 30, 220)
    msg = numpy_to_image(frame, "bgr8")
    msg.header.frame_id = "big_cam"
    end = time.monotonic() + 120
    while rclpy.ok() and time.monotonic() < end:
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        time.sleep(0.5)
""").replace("if JAZZY", f"if {JAZZY}")


@pytest.fixture(scope="module")
def focus_process(miniature_root, tmp_path_factory):
    exe, params, profile = installed_focus_node()
    env = dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(profile))
    proc = Proc(
        [
            str(exe),
            "--ros-args",
            "--params-file",
            str(params),
            "-p",
            f"model.path:={miniature_root / 'llava'}",
            "-p",
            "autostart:=true",
            "-p",
            "search.target_extraction:=rule",
            "-p",
            "search.max_steps:=1",
            "-p",
            "search.overrun:=false",
            "-p",
            "max_frame_age:=0.0",
            "-p",
            f"qos.image.reliability:={IMAGE_RELIABILITY}",
        ],
        tmp_path_factory.mktemp("focus_node") / "focus_node.log",
        env,
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client():
    ctx = Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("focus_executable_test", context=ctx)
    executor = MultiThreadedExecutor(num_threads=4, context=ctx)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield node
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)
    thread.join(timeout=5)


def _ask_service(client, proc):
    ask = client.create_client(Ask, "/focus/ask")
    if not ask.wait_for_service(timeout_sec=120.0):
        pytest.fail(f"/focus/ask never appeared; node output:\n{proc.text()}")
    return ask


def _call(ask, question=QUESTION):
    future = ask.call_async(Ask.Request(question=question))
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    assert done.wait(120.0), "no answer"
    return future.result()


def test_the_installed_executable_answers_under_focus_about_a_frame_from_another_process(focus_process, client):
    ask = _ask_service(client, focus_process)
    pub = client.create_publisher(Image, "/focus/image", IMAGE_QOS)
    wait_for(lambda: pub.get_subscription_count() > 0, 20.0)
    msg = numpy_to_image(encode_rgb(sample_rgb(320, 240, seed=50), "bgr8"), "bgr8")
    msg.header.frame_id = "exe_cam"
    stamps = []

    def ask_once():
        msg.header.stamp = client.get_clock().now().to_msg()
        stamps.append((msg.header.stamp.sec, msg.header.stamp.nanosec))
        pub.publish(msg)  # a camera: best effort, so publish until one lands
        time.sleep(0.2)
        res = _call(ask)
        return res if res.success or "no frame yet" not in res.message else None

    res = wait_for(ask_once, 30.0, interval=0.0)
    assert res.success, res.message
    assert res.result.header.frame_id == "exe_cam"
    assert (res.result.header.stamp.sec, res.result.header.stamp.nanosec) in stamps
    assert roi_inside(res.result.selected_roi, 320, 240)
    client.destroy_publisher(pub)


def test_12_megapixel_frames_from_another_process_arrive_with_the_shipped_dds_profile(focus_process, client, tmp_path):
    _, _, profile = installed_focus_node()
    ask = _ask_service(client, focus_process)
    camera = Proc(
        [sys.executable, "-c", BIG_CAMERA],
        tmp_path / "big_camera.log",
        dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(profile)),
    )
    try:

        def big_frame_answer():
            res = _call(ask)
            return res if res.success and res.result.header.frame_id == "big_cam" else None

        res = wait_for(big_frame_answer, 60.0, interval=0.5)
    except TimeoutError:
        pytest.fail(f"no 12 MP frame reached the node; camera output:\n{camera.text()}\nnode:\n{focus_process.text()}")
    finally:
        camera.stop()
    roi = res.result.selected_roi
    assert roi_inside(roi, 4000, 3000) and all(roi_inside(r.roi, 4000, 3000) for r in res.result.regions)


def test_the_executable_exits_cleanly_on_sigint(focus_process):
    assert focus_process.popen.poll() is None, focus_process.text()
    assert focus_process.stop() == 0, focus_process.text()
    text = focus_process.text()
    assert "[focus.focus_node]" in text and "configured in" in text and "active: listening on /focus/image" in text


def test_the_executable_with_a_model_that_cannot_load_exits_with_a_clear_error(tmp_path):
    exe, params, _ = installed_focus_node()
    missing = tmp_path / "no_model_here"
    proc = Proc(
        [
            str(exe),
            "--ros-args",
            "--params-file",
            str(params),
            "-p",
            f"model.path:={missing}",
            "-p",
            "model.local_files_only:=true",
            "-p",
            "autostart:=true",
        ],
        tmp_path / "focus_node.log",
    )
    try:
        proc.popen.wait(timeout=60)
    finally:
        proc.stop()
    assert proc.popen.returncode == 1, proc.text()
    assert "configure failed" in proc.text() and str(missing) in proc.text()
