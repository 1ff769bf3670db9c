"""The colcon-built interfaces and the hand-written focus_ros package coexist.

`focus_ros` is one ROS package holding both generated interface modules
(focus_ros.msg/srv/action) and hand-written Python (focus_ros.core, ...), installed
into the same directory by CMakeLists.txt. These tests need the workspace built
(scripts/setup.sh) and sourced (scripts/env.sh); scripts/test.sh does both.
"""

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "focus_ros" / "core"

_PROBE = textwrap.dedent(
    """
    import json, sys
    from focus_ros.msg import FocusResult, Question, Region, TargetResult
    from focus_ros.srv import Ask
    from focus_ros.action import Query
    import focus_ros, focus_ros.core, focus_ros.msg
    from builtin_interfaces.msg import Duration
    from sensor_msgs.msg import RegionOfInterest
    from rclpy.serialization import deserialize_message, serialize_message

    # float32 fields use exactly representable values so the CDR round trip compares equal.
    msg = FocusResult(
        question="What shape is the red object?",
        answer="a circle",
        targets=["red object"],
        question_type=FocusResult.TYPE_SINGLE,
        regions=[Region(roi=RegionOfInterest(x_offset=10, y_offset=20, width=30, height=40),
                        target="red object", confidence=0.75, relevance=0.5)],
        selected_roi=RegionOfInterest(x_offset=10, y_offset=20, width=30, height=40),
        confidence=0.75,
        forward_passes=7,
        tokens_prefilled=1234,
        latency=Duration(sec=1, nanosec=500),
        model="miniatures/llava",
        method="focus",
        camera="front",
        status=FocusResult.STATUS_OK,
        request_id="planner-1",
        found=True,
        target_results=[TargetResult(phrase="red object", roi=RegionOfInterest(x_offset=10, y_offset=20, width=30,
                                     height=40), confidence=0.75, found=True, pan=0.25, tilt=-0.5)],
    )
    msg.header.frame_id = "camera_optical"
    back = deserialize_message(serialize_message(msg), FocusResult)

    req = Ask.Request(question="q", camera="")
    goal = Query.Goal(question="q")
    fb = Query.Feedback(stage="verify", step=2, total_steps=5, candidate_confidence=-1.0)

    print(json.dumps({
        "fields": sorted(FocusResult.get_fields_and_field_types()),
        "region_fields": sorted(Region.get_fields_and_field_types()),
        "target_fields": sorted(TargetResult.get_fields_and_field_types()),
        "question_fields": sorted(Question.get_fields_and_field_types()),
        "ask_request": sorted(Ask.Request.get_fields_and_field_types()),
        "ask_response": sorted(Ask.Response.get_fields_and_field_types()),
        "goal": sorted(Query.Goal.get_fields_and_field_types()),
        "result": sorted(Query.Result.get_fields_and_field_types()),
        "feedback": sorted(Query.Feedback.get_fields_and_field_types()),
        "constants": [FocusResult.TYPE_SINGLE, FocusResult.TYPE_ALL, FocusResult.STATUS_UNSET,
                      FocusResult.STATUS_OK, FocusResult.STATUS_NOT_FOUND, FocusResult.STATUS_ERROR,
                      FocusResult.STATUS_CANCELED, FocusResult.STATUS_BUSY],
        "default_status": FocusResult().status,
        "roundtrip_equal": back == msg,
        "roundtrip_target": [back.target_results[0].phrase, back.target_results[0].roi.width,
                             back.target_results[0].found, back.request_id],
        "roundtrip_roi_x": back.regions[0].roi.x_offset,
        "feedback_stage": fb.stage,
        "stamp_is_zero": req.stamp.sec == 0 and req.stamp.nanosec == 0 and goal.camera == "",
        "request_id_is_empty": req.request_id == "" and goal.request_id == "",
        "focus_ros_file": focus_ros.__file__,
        "msg_file": focus_ros.msg.__file__,
        "core_file": focus_ros.core.__file__,
    }))
    """
)


def _run_probe(tmp_path):
    pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed: ROS-free install")
    # -P and a neutral cwd: the source focus_ros/ (without msg/) must not shadow the
    # installed one through sys.path[0].
    proc = subprocess.run(
        [sys.executable, "-P", "-c", _PROBE],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONSAFEPATH="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        "importing the generated interfaces together with focus_ros.core failed; "
        "build and source the workspace (scripts/setup.sh; source scripts/env.sh).\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_generated_interfaces_and_core_import_together_and_focus_result_roundtrips(tmp_path):
    info = _run_probe(tmp_path)
    for field in (
        "header",
        "question",
        "answer",
        "targets",
        "question_type",
        "regions",
        "selected_roi",
        "confidence",
        "forward_passes",
        "tokens_prefilled",
        "latency",
        "model",
        "method",
        "camera",
        "status",
        "error",
        "request_id",
        "found",
        "target_results",
    ):
        assert field in info["fields"], field
    assert info["region_fields"] == sorted(["roi", "target", "confidence", "relevance"])
    assert info["target_fields"] == sorted(
        ["phrase", "roi", "confidence", "found", "has_point", "point", "extent", "pan", "tilt", "note"]
    )
    assert info["question_fields"] == sorted(["header", "request_id", "question", "camera"])
    assert info["ask_request"] == sorted(["question", "camera", "stamp", "request_id"])
    assert info["ask_response"] == sorted(["success", "message", "result"])
    assert info["goal"] == sorted(["question", "camera", "stamp", "request_id"])
    assert info["result"] == ["result"]
    assert info["feedback"] == sorted(["stage", "step", "total_steps", "candidate_roi", "candidate_confidence"])
    # 0 is reserved: a default-constructed result (an aborted goal's) never reads as success
    assert info["constants"] == [1, 2, 0, 1, 2, 3, 4, 5]
    assert info["default_status"] == 0
    assert info["roundtrip_equal"] is True
    assert info["roundtrip_target"] == ["red object", 30, True, "planner-1"]
    assert info["roundtrip_roi_x"] == 10
    assert info["feedback_stage"] == "verify"
    assert info["stamp_is_zero"] is True
    assert info["request_id_is_empty"] is True


def _focus_ros_install_prefix():
    """The colcon install prefix of focus_ros, found like ament_index does."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix and (Path(prefix) / "share/ament_index/resource_index/packages/focus_ros").is_file():
            return os.path.abspath(prefix)
    return None


def test_focus_ros_and_its_msg_module_both_come_from_the_colcon_install(tmp_path):
    info = _run_probe(tmp_path)
    prefix = _focus_ros_install_prefix()
    assert prefix, (
        "focus_ros is not on AMENT_PREFIX_PATH: build and source the workspace "
        "(scripts/setup.sh; source scripts/env.sh)"
    )
    for key in ("focus_ros_file", "msg_file", "core_file"):
        path = os.path.abspath(info[key])
        assert path.startswith(prefix + os.sep), f"{key}={path} is not under {prefix}"


def _is_rclpy(name):
    return name == "rclpy" or name.startswith("rclpy.")


def _rclpy_imports(path):
    """Every import of rclpy in a file: import statements and importlib/__import__ calls."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
        ):
            names = [node.args[0].value]
        else:
            continue
        found += [f"{path.relative_to(REPO)}:{node.lineno}: {n}" for n in names if _is_rclpy(n)]
    return found


def test_core_never_imports_rclpy():
    files = sorted(CORE.rglob("*.py"))
    assert files, f"no Python files under {CORE}"
    offenders = [hit for f in files for hit in _rclpy_imports(f)]
    assert not offenders, "focus_ros.core must stay ROS-free:\n" + "\n".join(offenders)
