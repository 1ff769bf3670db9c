"""focus-report (focus_ros.bags.report), ROS-free: a recorded-answers bag written with rosbags is
paired with the bundled demo bag's ground truth, scored like focus-bench, printed, and its
overlays written; a missing or extra answer changes the exit status."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from focus_ros.bags.demo import load_ground_truth
from focus_ros.bags.io import focus_typestore
from focus_ros.bags.report import build_report, read_answers
from focus_ros.cli.report import main as report_main

BAG = Path(__file__).resolve().parents[1] / "data" / "demo_bag"
TRUTH = load_ground_truth(BAG)


def _header(store, stamp_ns: int):
    Header, Time = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    return Header(
        stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id="camera_optical_frame"
    )


def _result(store, question: str, answer: str, stamp_ns: int, box=None, status: str = "OK", error: str = ""):
    T = store.types
    roi = T["sensor_msgs/msg/RegionOfInterest"]
    x0, y0, x1, y1 = box or (0, 0, 0, 0)
    FocusResult = T["focus_ros/msg/FocusResult"]
    return FocusResult(
        header=_header(store, stamp_ns),
        request_id="",
        question=question,
        answer=answer,
        targets=[],
        question_type=1,
        regions=[],
        selected_roi=roi(x_offset=x0, y_offset=y0, height=y1 - y0, width=x1 - x0, do_rectify=False),
        found=False,
        target_results=[],
        confidence=0.5,
        forward_passes=9,
        tokens_prefilled=100,
        latency=T["builtin_interfaces/msg/Duration"](sec=1, nanosec=500_000_000),
        model="m",
        method="focus",
        camera="camera",
        status=getattr(FocusResult, f"STATUS_{status}"),
        error=error,
    )


def _overlay(store, stamp_ns: int, value: int):
    rgb = np.full((6, 8, 3), value, np.uint8)
    return store.types["sensor_msgs/msg/Image"](
        header=_header(store, stamp_ns),
        height=6,
        width=8,
        encoding="rgb8",
        is_bigendian=0,
        step=24,
        data=rgb.reshape(-1),
    )


def _write(path: Path, messages) -> Path:
    store = focus_typestore()
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {
            "/focus/answer": writer.add_connection("/focus/answer", "focus_ros/msg/FocusResult", typestore=store),
            "/focus/relevance_overlay": writer.add_connection(
                "/focus/relevance_overlay", "sensor_msgs/msg/Image", typestore=store
            ),
        }
        for t, (topic, msg) in enumerate(messages):
            writer.write(conns[topic], 1_000 + t, store.serialize_cdr(msg, msg.__msgtype__))
    return path


def _all_answered(store, wrong_first: bool = False):
    """One answer per ground-truth question (the true word; a box around its first gold box), each
    followed by its overlay, as the node publishes them."""
    out = []
    for q in TRUTH.questions:
        answer = "diamond" if (wrong_first and q.index == 0) else f"It is {q.answer}."
        x0, y0, x1, y1 = q.boxes[0]
        out.append(
            ("/focus/answer", _result(store, q.question, answer, q.first_frame_ns, (x0 - 5, y0 - 5, x1 + 5, y1 + 5)))
        )
        out.append(("/focus/relevance_overlay", _overlay(store, q.first_frame_ns, q.index)))
    return out


def test_answers_pair_with_their_questions_and_are_scored_like_the_benchmark(tmp_path):
    store = focus_typestore()
    bag = _write(tmp_path / "answers", _all_answered(store, wrong_first=True))
    report = build_report(TRUTH, read_answers(bag))
    assert report.answered_once == len(TRUTH.questions) and not report.unmatched
    assert report.correct == len(TRUTH.questions) - 1  # "It is left." reads as "left"; "diamond" is wrong
    assert not report.rows[0].correct
    assert report.box_hits == (len(TRUTH.questions), len(TRUTH.questions))
    # each answer got the overlay published after it, for its own frame
    assert [int(r.answer.overlay[0, 0, 0]) for r in report.rows] == [q.index for q in TRUTH.questions]


def test_the_cli_prints_the_table_writes_overlays_and_exits_0_when_every_question_has_one_answer(tmp_path, capsys):
    store = focus_typestore()
    bag = _write(tmp_path / "answers", _all_answered(store))
    assert (
        report_main(
            [
                str(bag),
                "--ground-truth",
                str(BAG),
                "--overlays",
                str(tmp_path / "png"),
                "--json",
                str(tmp_path / "rows.json"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    n = len(TRUTH.questions)
    assert f"{n}/{n} questions answered exactly once; {n}/{n} answers correct" in text
    assert TRUTH.questions[0].question in text
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert len(pngs) == n and cv2.imread(str(pngs[0])).shape == (6, 8, 3)


@pytest.mark.parametrize("case", ["missing", "error", "other scene"])
def test_a_missing_answer_an_error_or_an_answer_about_another_scene_is_reported_and_exits_1(tmp_path, capsys, case):
    store = focus_typestore()
    msgs = [m for m in _all_answered(store) if m[0] == "/focus/answer"]
    q = TRUTH.questions[4]
    if case == "missing":
        del msgs[4]
    elif case == "error":
        msgs[4] = (
            "/focus/answer",
            _result(store, q.question, "", q.first_frame_ns, status="ERROR", error="no frame yet"),
        )
    else:  # the same question answered on the previous scene's frame: not this question's answer
        msgs[4] = ("/focus/answer", _result(store, q.question, q.answer, TRUTH.questions[0].first_frame_ns))
    bag = _write(tmp_path / "answers", msgs)
    code = report_main([str(bag), "--ground-truth", str(BAG)])
    text = capsys.readouterr().out
    if case == "missing":
        assert code == 1 and "(no answer)" in text
    elif case == "error":
        assert code == 0 and "ERROR" in text and "no frame yet" in text  # answered once, with an error
        assert f"{len(TRUTH.questions) - 1}/{len(TRUTH.questions)} answers correct" in text
    else:
        assert code == 1 and "1 unmatched answer(s)" in text


def test_an_unreadable_bag_exits_2(tmp_path, capsys):
    assert report_main([str(tmp_path / "nothing"), "--ground-truth", str(BAG)]) == 2
    assert "focus-report: error" in capsys.readouterr().err
