"""focus-report's 3-D table (focus_ros.bags.report), ROS-free: recorded FocusResults with target
results, written with rosbags into a tiny mcap, are scored against a demo bag's true points (the
error in the optical frame, the median over targets whose box holds the object, the node's note
when it has no point), and answers recorded with the FocusResult of before target results still
report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_types_from_msg

from focus_ros.bags.demo import load_ground_truth, write_demo_bag
from focus_ros.bags.io import focus_typestore, ros_typestore
from focus_ros.bags.report import build_report, format_points, read_answers
from focus_ros.cli.report import main as report_main

REPO = Path(__file__).resolve().parents[2]

# FocusResult as it was before target results, request ids and STATUS_UNSET (answers recorded then).
OLD_FOCUS_RESULT = """
uint8 TYPE_SINGLE=1
uint8 TYPE_ALL=2
uint8 STATUS_OK=0
uint8 STATUS_ERROR=1
uint8 STATUS_CANCELED=2
uint8 STATUS_BUSY=3
std_msgs/Header header
string question
string answer
string[] targets
uint8 question_type
Region[] regions
sensor_msgs/RegionOfInterest selected_roi
float32 confidence
uint32 forward_passes
uint32 tokens_prefilled
builtin_interfaces/Duration latency
string model
string method
string camera
uint8 status
string error
"""


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> Path:
    """One scene of the default seed (a shape, a relation and a count question), one frame a second."""
    return write_demo_bag(tmp_path_factory.mktemp("demo"), n_scenes=1, seconds_per_scene=3.0, rate=1.0)


@pytest.fixture(scope="module")
def truth(case):
    return load_ground_truth(case)


def _header(T, stamp_ns: int, frame_id: str = "camera_optical_frame"):
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
        frame_id=frame_id,
    )


def _roi(T, box):
    x0, y0, x1, y1 = box or (0, 0, 0, 0)
    return T["sensor_msgs/msg/RegionOfInterest"](
        x_offset=x0, y_offset=y0, height=y1 - y0, width=x1 - x0, do_rectify=False
    )


def _target(T, stamp_ns: int, phrase: str, box, point=None, note: str = ""):
    """A TargetResult: found, with a 3-D point when ``point`` is given, else with ``note``."""
    x, y, z = point if point is not None else (0.0, 0.0, 0.0)
    return T["focus_ros/msg/TargetResult"](
        phrase=phrase,
        roi=_roi(T, box),
        confidence=0.9,
        found=True,
        has_point=point is not None,
        point=T["geometry_msgs/msg/PointStamped"](
            header=_header(T, stamp_ns), point=T["geometry_msgs/msg/Point"](x=x, y=y, z=z)
        ),
        extent=T["geometry_msgs/msg/Vector3"](x=0.02, y=0.02, z=0.0),
        pan=0.0,
        tilt=0.0,
        note=note,
    )


def _result(store, q, targets):
    """An OK FocusResult answering ``q`` (the true word) on its scene's first frame."""
    T = store.types
    FocusResult = T["focus_ros/msg/FocusResult"]
    return FocusResult(
        header=_header(T, q.first_frame_ns),
        request_id=f"r{q.index}",
        question=q.question,
        answer=q.answer,
        targets=[t.phrase for t in targets],
        question_type=1,
        regions=[],
        selected_roi=_roi(T, q.boxes[0]),
        found=True,
        target_results=targets,
        confidence=0.9,
        forward_passes=9,
        tokens_prefilled=100,
        latency=T["builtin_interfaces/msg/Duration"](sec=1, nanosec=0),
        model="m",
        method="focus",
        camera="camera",
        status=FocusResult.STATUS_OK,
        error="",
    )


def _write(path: Path, store, results) -> Path:
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/focus/answer", "focus_ros/msg/FocusResult", typestore=store)
        for t, msg in enumerate(results):
            writer.write(conn, 1_000 + t, store.serialize_cdr(msg, "focus_ros/msg/FocusResult"))
    return path


def _true_point(q, phrase: str, instance: int = 0) -> np.ndarray:
    target = next(t for t in q.targets if t["phrase"] == phrase)
    return np.asarray(target["instances"][instance]["point"], np.float64)


def _grown(box, px: int = 6):
    x0, y0, x1, y1 = box
    return (x0 - px, y0 - px, x1 + px, y1 + px)


def _answers(store, truth):
    """The default seed's scene 0: "What shape is the green object?", "Is the purple object to
    the left or right of the orange object?", "How many blue objects are there?" (four)."""
    T = store.types
    shape, relation, count = truth.questions
    assert (shape.type, relation.type, count.type) == ("shape", "relation", "count")
    assert [t["phrase"] for t in relation.targets] == ["purple object", "orange object"]
    green = _true_point(shape, "green object")
    orange, purple = _true_point(relation, "orange object"), _true_point(relation, "purple object")
    blue = count.targets[0]["instances"][2]
    s = shape.first_frame_ns
    return [
        # 3 cm right and 4 cm deeper: 5 cm off
        _result(store, shape, [_target(T, s, "green object", _grown(shape.boxes[0]), green + [0.03, 0.0, 0.04])]),
        # the node's order is not the question's: phrases pair by colour. The purple box is elsewhere:
        # its 40 cm error is shown but left out of the median.
        _result(
            store,
            relation,
            [
                _target(T, s, "orange object", _grown(relation.boxes[1]), orange + [0.0, 0.0, 0.01]),
                _target(T, s, "the purple one", (0, 0, 50, 50), purple + [0.0, 0.4, 0.0]),
            ],
        ),
        # an "every instance" target is scored against the instance nearest its point within its box
        _result(
            store,
            count,
            [_target(T, s, "blue objects", _grown(blue["box"]), np.asarray(blue["point"]) + [0.0, 0.02, 0.0])],
        ),
    ]


def test_each_targets_error_is_its_distance_to_the_true_point_and_the_median_counts_boxes_that_hold_it(
    tmp_path, case, truth
):
    store = focus_typestore()
    report = build_report(truth, read_answers(_write(tmp_path / "answers", store, _answers(store, truth))))
    shape, relation, count = (r.points for r in report.rows)
    assert [(p.answer.phrase, p.truth["phrase"]) for p in relation] == [
        ("orange object", "orange object"),
        ("the purple one", "purple object"),
    ]
    assert shape[0].error_m == pytest.approx(0.05, abs=1e-5) and shape[0].box_holds_truth
    assert relation[0].error_m == pytest.approx(0.01, abs=1e-5) and relation[0].box_holds_truth
    assert relation[1].error_m == pytest.approx(0.40, abs=1e-5) and relation[1].box_holds_truth is False
    assert count[0].error_m == pytest.approx(0.02, abs=1e-5) and count[0].box_holds_truth
    assert count[0].instance == count[0].truth["instances"][2]
    assert report.median_error_m == pytest.approx(0.02, abs=1e-5)  # of 5, 1 and 2 cm; not the 40 cm

    text = format_points(report)
    assert "green object" in text and "5.0cm" in text and "40.0cm" in text
    assert "4/4 targets have a point; median error over the 3 whose box holds the object: 2.0 cm" in text


def test_a_target_without_a_point_shows_the_nodes_note_and_has_no_error(tmp_path, truth):
    store = focus_typestore()
    q = truth.questions[0]
    msg = _result(
        store, q, [_target(store.types, q.first_frame_ns, "green object", q.boxes[0], note="no valid depth in the box")]
    )
    report = build_report(truth, read_answers(_write(tmp_path / "answers", store, [msg])))
    (p,) = report.rows[0].points
    assert p.error_m is None and p.box_holds_truth and not p.answer.has_point and p.answer.point is None
    assert report.median_error_m is None
    text = format_points(report)
    assert "no valid depth in the box" in text and "(no answer)" in text  # questions 1 and 2 got none
    assert "0/1 targets have a point; median error over the 0 whose box holds the object: -" in text


def test_the_cli_prints_the_3d_table_after_the_answers_and_writes_the_points_to_json(tmp_path, case, truth, capsys):
    store = focus_typestore()
    bag = _write(tmp_path / "answers", store, _answers(store, truth))
    assert report_main([str(bag), "--ground-truth", str(case), "--json", str(tmp_path / "rows.json")]) == 0
    text = capsys.readouterr().out
    assert text.index("questions answered exactly once") < text.index("3-D points of the targets")
    rows = json.loads((tmp_path / "rows.json").read_text())
    first = rows[0]["points"][0]
    assert (first["phrase"], first["truth_phrase"], first["has_point"]) == ("green object", "green object", True)
    assert first["error_m"] == pytest.approx(0.05, abs=1e-5)
    assert first["truth_point"] == truth.questions[0].targets[0]["instances"][0]["point"]
    assert rows[1]["answers"][0]["request_id"] == "r1"
    assert rows[1]["answers"][0]["targets"][1]["phrase"] == "the purple one"


def test_answers_recorded_with_the_focus_result_of_before_target_results_still_report(tmp_path, case, truth, capsys):
    """The bag holds its own (older) FocusResult definition; STATUS_OK was 0 then."""
    old = ros_typestore()
    types = get_types_from_msg((REPO / "msg" / "Region.msg").read_text(), "focus_ros/msg/Region")
    types.update(get_types_from_msg(OLD_FOCUS_RESULT, "focus_ros/msg/FocusResult"))
    old.register(types)
    T = old.types
    FocusResult = T["focus_ros/msg/FocusResult"]
    assert FocusResult.STATUS_OK == 0
    msgs = [
        FocusResult(
            header=_header(T, q.first_frame_ns),
            question=q.question,
            answer=q.answer,
            targets=[],
            question_type=1,
            regions=[],
            selected_roi=_roi(T, _grown(q.boxes[0])),
            confidence=0.5,
            forward_passes=9,
            tokens_prefilled=100,
            latency=T["builtin_interfaces/msg/Duration"](sec=1, nanosec=0),
            model="m",
            method="focus",
            camera="camera",
            status=FocusResult.STATUS_OK,
            error="",
        )
        for q in truth.questions
    ]
    bag = _write(tmp_path / "old", old, msgs)
    answers = read_answers(bag)
    assert [(a.status, a.targets, a.request_id) for a in answers] == [("ok", [], "")] * len(msgs)
    report = build_report(truth, answers)
    assert report.correct == len(msgs) and report.box_hits == (len(msgs), len(msgs))
    assert report.median_error_m is None
    assert report_main([str(bag), "--ground-truth", str(case)]) == 0
    text = capsys.readouterr().out
    assert f"{len(msgs)}/{len(msgs)} answers correct" in text
    assert text.count("(no target results in the answer)") == len(msgs)
