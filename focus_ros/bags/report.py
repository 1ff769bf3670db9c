"""Report of a recorded run: the node's answers to a demo bag, checked against its ground truth.

Reads the bag that ``focus-replay --record`` wrote (``focus_ros/msg/FocusResult`` on the answer
topic, ``sensor_msgs/msg/Image`` overlays on ``relevance_overlay``), pairs every answer with its
question through :meth:`GroundTruth.for_answer` (same text, asked about the scene its frame's
header stamp shows), and scores it as ``focus-bench`` does: the answer word
(:func:`~focus_ros.eval.bench.normalise_answer`) and whether the selected box contains the centre
of a gold box (:func:`~focus_ros.eval.bench.box_hit`). ROS-free: rosbags, numpy and OpenCV only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..eval.bench import box_hit, normalise_answer
from ..io.images import image_to_rgb
from .demo import GroundTruth, GroundTruthQuestion
from .io import focus_typestore, open_bag

logger = logging.getLogger(__name__)

ANSWER_TOPIC = "/focus/answer"
OVERLAY_TOPIC = "/focus/relevance_overlay"
STATUS_NAMES = {0: "ok", 1: "error", 2: "canceled", 3: "busy"}


@dataclass
class Answer:
    """One FocusResult as recorded."""

    stamp_ns: int  # header stamp of the analysed frame
    frame_id: str  # header frame_id of the analysed frame
    question: str
    answer: str
    status: str
    error: str
    box: list[int] | None  # selected region [x0, y0, x1, y1], source px; None: whole frame
    confidence: float
    passes: int
    latency_s: float
    overlay: np.ndarray | None = field(default=None, repr=False)  # RGB, when one was recorded


@dataclass
class Row:
    """A ground-truth question and what the node answered (None: no answer arrived)."""

    truth: GroundTruthQuestion
    answers: list[Answer]

    @property
    def answer(self) -> Answer | None:
        return self.answers[0] if self.answers else None

    @property
    def correct(self) -> bool:
        a = self.answer
        return (
            a is not None
            and a.status == "ok"
            and normalise_answer(a.answer, self.truth.type) == normalise_answer(self.truth.answer, self.truth.type)
        )

    @property
    def box_hit(self) -> bool | None:
        a = self.answer
        if a is None or a.status != "ok":
            return False if self.truth.boxes else None
        return box_hit(a.box, self.truth.boxes)


@dataclass
class Report:
    rows: list[Row]
    unmatched: list[Answer]  # answers no ground-truth question claims

    @property
    def answered_once(self) -> int:
        return sum(len(r.answers) == 1 for r in self.rows)

    @property
    def correct(self) -> int:
        return sum(r.correct for r in self.rows)

    @property
    def box_hits(self) -> tuple[int, int]:
        """(hits, questions with a gold box)."""
        scored = [r.box_hit for r in self.rows if r.box_hit is not None]
        return sum(scored), len(scored)


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _image_rgb(msg: Any) -> np.ndarray | None:
    """A sensor_msgs/Image (any encoding the node's intake reads) as H x W x 3 RGB; None when it
    cannot be converted."""
    try:
        return image_to_rgb(msg)
    except ValueError as exc:
        logger.warning("overlay not written: %s", exc)
        return None


def read_answers(bag: str | Path, answer_topic: str = ANSWER_TOPIC, overlay_topic: str = OVERLAY_TOPIC) -> list[Answer]:
    """The FocusResult messages of a recorded bag in arrival order, each with the overlay image
    published for its frame and question (overlays follow their answer; matched by header stamp)."""
    store = focus_typestore()
    answers: list[Answer] = []
    overlays: list[tuple[int, np.ndarray]] = []
    reader = open_bag(bag)
    try:
        conns = [c for c in reader.connections if c.topic in (answer_topic, overlay_topic)]
        for conn, _t, raw in reader.messages(connections=conns):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            if conn.topic == overlay_topic:
                img = _image_rgb(msg)
                if img is not None:
                    overlays.append((_stamp_ns(msg.header), img))
                continue
            roi = msg.selected_roi
            box = (
                [int(roi.x_offset), int(roi.y_offset), int(roi.x_offset + roi.width), int(roi.y_offset + roi.height)]
                if roi.width and roi.height
                else None
            )
            answers.append(
                Answer(
                    _stamp_ns(msg.header),
                    msg.header.frame_id,
                    msg.question,
                    msg.answer,
                    STATUS_NAMES.get(int(msg.status), str(msg.status)),
                    msg.error,
                    box,
                    float(msg.confidence),
                    int(msg.forward_passes),
                    msg.latency.sec + msg.latency.nanosec * 1e-9,
                )
            )
    finally:
        reader.close()
    for stamp, img in overlays:  # the first answer on that frame still without an overlay
        for a in answers:
            if a.stamp_ns == stamp and a.status == "ok" and a.overlay is None:
                a.overlay = img
                break
    return answers


def build_report(truth: GroundTruth, answers: Sequence[Answer]) -> Report:
    """Pair answers with ground-truth questions (each answer with at most one question)."""
    rows = {q.index: Row(q, []) for q in truth.questions}
    unmatched = []
    for a in answers:
        q = truth.for_answer(a.question, a.stamp_ns)
        if q is None:
            unmatched.append(a)
        else:
            rows[q.index].answers.append(a)
    return Report([rows[q.index] for q in truth.questions], unmatched)


def write_overlays(report: Report, folder: str | Path) -> list[Path]:
    """``qNN_<type>.png`` for every answered question that has an overlay image."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for row in report.rows:
        a = row.answer
        if a is None or a.overlay is None:
            continue
        path = out / f"q{row.truth.index:02d}_{row.truth.type}.png"
        if not cv2.imwrite(str(path), a.overlay[..., ::-1]):
            raise OSError(f"cannot write {path}")
        written.append(path)
    return written


def _box_text(box: Sequence[int] | None) -> str:
    return "whole frame" if box is None else "[" + ",".join(str(v) for v in box) + "]"


def format_report(report: Report, start_ns: int) -> str:
    """A fixed-width table: one line per question, then the totals."""
    head = (
        f"{'#':>2} {'t (s)':>6} {'question':64} {'true':8} {'answer':10} {'ok':3} "
        f"{'box (source px)':24} {'hit':3} {'passes':>6} {'latency':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in report.rows:
        t = (r.truth.time_ns - start_ns) / 1e9
        a = r.answer
        if a is None:
            lines.append(f"{r.truth.index:>2} {t:6.1f} {r.truth.question[:64]:64} {r.truth.answer:8} (no answer)")
            continue
        text = a.answer if a.status == "ok" else a.status.upper()
        hit = {True: "yes", False: "no", None: "-"}[r.box_hit]
        lines.append(
            f"{r.truth.index:>2} {t:6.1f} {r.truth.question[:64]:64} {r.truth.answer:8} {text[:10]:10} "
            f"{'yes' if r.correct else 'no':3} {_box_text(a.box):24} {hit:3} {a.passes:6d} "
            f"{a.latency_s:7.2f}s" + (f"  {a.error}" if a.error else "")
        )
    n = len(report.rows)
    hits, boxed = report.box_hits
    lines.append(
        f"{report.answered_once}/{n} questions answered exactly once; {report.correct}/{n} answers correct; "
        f"selected box contains the object in {hits}/{boxed}; {len(report.unmatched)} unmatched answer(s)"
    )
    return "\n".join(lines)


__all__ = ["Answer", "Row", "Report", "read_answers", "build_report", "write_overlays", "format_report"]
