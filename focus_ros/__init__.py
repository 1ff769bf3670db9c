"""focus_ros: focused visual question answering for ROS 2.

This package is installed on top of the generated interface modules
(focus_ros.msg, focus_ros.srv, focus_ros.action); it must not import rclpy.
"""
