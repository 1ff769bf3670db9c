"""``ros2 run focus_ros focus_node``: spin the FOCUS lifecycle node on a multi-threaded executor.

    ros2 run focus_ros focus_node --ros-args --params-file config/focus.yaml \
        -p model.path:=/models/llava-1.5-7b-hf -p autostart:=true

The node starts unconfigured (a lifecycle manager or launch file drives it) unless ``autostart``
(parameter, or ``--autostart``) is set: then it configures and activates at once and exits with
an error if the model cannot be loaded. Namespace ``focus`` unless ``--ros-args -r __ns:=/other``.
"""

from __future__ import annotations

import argparse
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.utilities import remove_ros_args

from .focus_node import DEFAULT_NAMESPACE, FocusNode


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="focus_node", description="FOCUS visual question answering lifecycle node (ROS 2). "
        "Parameters: --ros-args --params-file FILE -p name:=value (see config/focus.yaml).")
    parser.add_argument("--autostart", action="store_true", help="configure and activate right away")
    opts = parser.parse_args(remove_ros_args(args)[1:])

    rclpy.init(args=args)
    node = FocusNode(namespace=DEFAULT_NAMESPACE)
    executor = MultiThreadedExecutor(num_threads=node.executor_threads())
    executor.add_node(node)
    code = 0
    try:
        if opts.autostart or node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal(f"{node.last_error or 'configure failed'}; exiting (autostart)")
                return 1
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal(f"{node.last_error or 'activate failed'}; exiting (autostart)")
                return 1
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.release()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
