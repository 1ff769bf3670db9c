"""Command-line tools of focus_ros (ROS-free)."""
