"""Which ROS 2 distribution the node runs on, for the few places where Jazzy and Kilted differ."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from functools import cache

# rclpy's major version per distribution (its package.xml), for installs that do not set ROS_DISTRO.
RCLPY_MAJOR = {7: "jazzy", 9: "kilted"}


@cache
def ros_distro() -> str:
    """``jazzy``, ``kilted``, another name from ``ROS_DISTRO``, or "" when it cannot be told.

    ``ROS_DISTRO`` is set by a ROS install's setup script (and by scripts/env.sh); otherwise the
    version of the installed rclpy package says it."""
    name = os.environ.get("ROS_DISTRO", "").strip().lower()
    if name:
        return name
    try:
        from ament_index_python.packages import get_package_share_directory

        version = ET.parse(os.path.join(get_package_share_directory("rclpy"), "package.xml")).findtext("version")
        return RCLPY_MAJOR.get(int(str(version).split(".")[0]), "")
    except Exception:  # no ament index, no rclpy share folder, an unexpected package.xml
        return ""


# Jazzy's Fast DDS (2.14) loses best-effort messages that need fragmenting (above ~64 KB: any
# camera frame) between processes; reliable publisher and subscriber deliver them. Kilted's
# Fast DDS 3 delivers both.
JAZZY_BEST_EFFORT_NOTE = (
    "ROS 2 Jazzy: best-effort camera frames above ~64 KB from other processes are lost by its Fast DDS "
    "(2.14); set qos.image.reliability: reliable and make the camera driver publish reliable"
)

__all__ = ["JAZZY_BEST_EFFORT_NOTE", "RCLPY_MAJOR", "ros_distro"]
