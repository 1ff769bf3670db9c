"""rosbag2 bags for focus_ros, written and read with ``rosbags`` (no ROS install needed).

``demo`` writes the synthetic demo camera stream with timed questions and its ground truth;
``io`` finds and opens bags and knows this package's message definitions; ``report`` scores a
recorded run's answers against the ground truth. All ROS-free: they never import rclpy.
Replaying a bag over DDS lives in :mod:`focus_ros.ros.replay`.
"""

from .demo import (
    DEFAULT_SEED,
    GroundTruth,
    GroundTruthQuestion,
    bag_summary,
    load_ground_truth,
    write_demo_bag,
)

__all__ = ["DEFAULT_SEED", "GroundTruth", "GroundTruthQuestion", "bag_summary", "load_ground_truth", "write_demo_bag"]
