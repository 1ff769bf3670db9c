"""Shared fixtures: offline hub, the random-weight miniatures, a sample frame, one torch thread, and
/rosout of a module's node harness."""

import importlib.util
import os
from pathlib import Path

import pytest
import torch

# Tests never touch a model hub: everything loads from directories the project builds.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]

# The ROS-free core tier (scripts/test.sh --python 3.10|3.12) runs where ROS 2's Python packages are
# not installed: the node tiers and the unit modules that build ROS messages are not collected there
# (they run in the ROS environments), and the report header says so.
ROS_PYTHON = importlib.util.find_spec("rclpy") is not None
NEEDS_ROS = [
    "ros/*",
    "e2e/*",
    "unit/test_ros_conversions.py",
    "unit/test_ros_spatial.py",
    "unit/test_io_jpeg_scan.py",
]
collect_ignore_glob = [] if ROS_PYTHON else NEEDS_ROS


def pytest_report_header(config):
    if not ROS_PYTHON:
        return f"core tier without ROS 2 (rclpy not installed): not collected: {', '.join(NEEDS_ROS)}"
    return None


SAMPLE_IMAGE = REPO / "test" / "data" / "sample" / "frame.jpg"


@pytest.fixture(scope="session")
def miniature_root(tmp_path_factory) -> Path:
    """The three miniatures: the set-up script's copy, or built now into a temporary folder."""
    root = REPO / "models" / "miniatures"
    if (root / ".complete").is_file():
        return root
    from focus_ros.training.miniatures import build_all

    out = tmp_path_factory.mktemp("miniatures")
    build_all(out)
    return out


@pytest.fixture(scope="session")
def sample_image_path() -> Path:
    assert SAMPLE_IMAGE.is_file(), f"bundled sample image missing: {SAMPLE_IMAGE}"
    return SAMPLE_IMAGE


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``):
    the miniatures are no faster on two, and on a shared CPU spinning OpenMP threads slow down badly."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def rosout(ros):
    """/rosout as heard by the requesting module's own ``ros`` harness (ros_helpers.RosoutLog)."""
    from ros_helpers import RosoutLog  # rclpy only for the node tests that ask for it

    log = RosoutLog(ros)
    yield log
    log.close()


TIERS = ("unit", "model", "ros", "e2e")


def pytest_collection_modifyitems(config, items):
    """Mark each test with its tier (the folder it lives in), so `-m unit` works as well as `test/unit`."""
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
