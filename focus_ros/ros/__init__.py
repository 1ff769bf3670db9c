"""ROS 2 side of focus_ros: image conversions, the frame store, parameters and the lifecycle node.

``conversions``, ``frame_store`` and ``visualization`` are plain Python (numpy/OpenCV) and never
import rclpy; ``params``, ``results`` and ``focus_node`` do.
"""
