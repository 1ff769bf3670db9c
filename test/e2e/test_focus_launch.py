"""launch_testing test of launch/focus.launch.py: the launch file starts the lifecycle node, activates
it through lifecycle events, and the node answers ``/focus/ask`` about a published frame.

Runs where ``launch_testing`` is installed (a normal ROS 2 install: ``colcon test``, or
``launch_test test/e2e/test_focus_launch.py``). ``launch``/``launch_testing`` are not on PyPI, so in
this repository's pip-only environment the module is skipped with the reason printed; the same
behaviour is proved there by test_node_executable.py, which starts the installed executable with
the same parameter file.
"""

import time
import unittest
from pathlib import Path

import pytest

try:
    import launch_testing
    import launch_testing.actions
    import launch_testing.asserts
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch.substitutions import PathJoinSubstitution
    from launch_ros.substitutions import FindPackageShare

    import launch
except ImportError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(
        f"launch_testing is not importable ({exc}); the installed executable is tested by "
        f"test_node_executable.py instead",
        allow_module_level=True,
    )

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from focus_ros.ros.image_msgs import rgb_to_image
from focus_ros.srv import Ask

MINIATURE = Path(__file__).resolve().parents[2] / "models" / "miniatures" / "llava"


@pytest.mark.launch_test
def generate_test_description():
    if not (MINIATURE / "config.json").is_file():
        pytest.skip(f"{MINIATURE} missing: run scripts/setup.sh first")
    focus = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("focus_ros"), "launch", "focus.launch.py"])
        ),
        launch_arguments={"model": str(MINIATURE), "device": "cpu", "log_level": "info"}.items(),
    )
    return launch.LaunchDescription([focus, launch_testing.actions.ReadyToTest()])


class TestAskThroughTheLaunchedNode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("focus_launch_test_client")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_the_launched_node_is_activated_and_answers_about_a_published_frame(self):
        ask = self.node.create_client(Ask, "/focus/ask")
        self.assertTrue(ask.wait_for_service(timeout_sec=120.0), "/focus/ask did not appear (not activated?)")
        pub = self.node.create_publisher(Image, "/focus/image", qos_profile_sensor_data)
        rgb = np.zeros((240, 320, 3), np.uint8)
        rgb[100:140, 150:200] = (220, 30, 30)
        deadline = time.monotonic() + 60.0
        response = None
        while time.monotonic() < deadline:
            msg = rgb_to_image(rgb, "bgr8")
            msg.header.stamp = self.node.get_clock().now().to_msg()
            msg.header.frame_id = "launch_cam"
            pub.publish(msg)
            rclpy.spin_once(self.node, timeout_sec=0.2)
            future = ask.call_async(Ask.Request(question="What colour is the red block?"))
            rclpy.spin_until_future_complete(self.node, future, timeout_sec=60.0)
            response = future.result()
            if response is not None and (response.success or "no frame yet" not in response.message):
                break
        self.assertIsNotNone(response)
        self.assertTrue(response.success, response.message)
        self.assertEqual(response.result.header.frame_id, "launch_cam")
        roi = response.result.selected_roi
        self.assertLessEqual(roi.x_offset + roi.width, 320)
        self.assertLessEqual(roi.y_offset + roi.height, 240)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_the_node_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
