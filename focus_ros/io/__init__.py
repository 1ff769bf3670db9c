"""ROS-free reading of ROS messages: camera images to numpy (:mod:`focus_ros.io.images`).

Nothing here imports rclpy or message classes, so the node, the bag tools and the report all use
the same conversions, with or without a ROS 2 install.
"""
