"""Report of a recorded run: the node's answers to a demo bag, checked against its ground truth.

Reads the bag that ``focus-replay --record`` wrote (``focus_ros/msg/FocusResult`` on the answer
topic, ``sensor_msgs/msg/Image`` overlays on ``relevance_overlay``), pairs every answer with its
question through :meth:`GroundTruth.for_answer` (same text, asked about the scene its frame's
header stamp shows), and scores it as ``focus-bench`` does: the answer word
(:func:`~focus_ros.eval.bench.normalise_answer`) and whether the selected box contains the centre
of a gold box (:func:`~focus_ros.eval.bench.box_hit`). Per target (``FocusResult.target_results``)
it scores the 3-D point against the ground truth's (:func:`~focus_ros.bags.depth.question_targets`):
the distance in the optical frame, and whether the target's own box holds the true object.
Answers recorded before target results existed (an older FocusResult, read with the definition
stored in their bag) still report, without points. ROS-free: rosbags, numpy and OpenCV only.
"""

from __future__ import annotations

import logging
import re
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
# FocusResult.status as names, for a message whose definition has no STATUS_* constants; a recorded
# message's own constants come first (an older FocusResult numbered them from STATUS_OK=0).
STATUS_NAMES = {0: "unset", 1: "ok", 2: "not_found", 3: "error", 4: "canceled", 5: "busy"}
ANSWERED = ("ok", "not_found")  # statuses that carry an answer (not_found: read from the best view)


@dataclass
class TargetAnswer:
    """One TargetResult as recorded: what the node located for one target of the question."""

    phrase: str
    box: list[int] | None  # the target's own box [x0, y0, x1, y1], source px; None: no region kept
    confidence: float
    found: bool
    has_point: bool
    point: list[float] | None  # [x, y, z], metres, in point_frame; None unless has_point
    point_frame: str
    note: str


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
    request_id: str = ""  # empty in answers recorded before request ids
    targets: list[TargetAnswer] = field(default_factory=list)  # empty before target results existed


@dataclass
class TargetPoint:
    """One target of a question, scored: the ground-truth target (None when no truth target matches
    the node's phrase), the node's result for it (None when it returned none), the true instance
    scored against (of several, the one nearest the node's point), the 3-D error and whether the
    node's box for the target holds that instance's centre."""

    truth: dict[str, Any] | None
    answer: TargetAnswer | None
    instance: dict[str, Any] | None = None
    error_m: float | None = None
    box_holds_truth: bool | None = None


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
            and a.status in ANSWERED
            and normalise_answer(a.answer, self.truth.type) == normalise_answer(self.truth.answer, self.truth.type)
        )

    @property
    def box_hit(self) -> bool | None:
        a = self.answer
        if a is None or a.status not in ANSWERED:
            return False if self.truth.boxes else None
        return box_hit(a.box, self.truth.boxes)

    @property
    def points(self) -> list[TargetPoint]:
        """Every target of the answer and of the ground truth, paired and scored (empty without an
        answer)."""
        a = self.answer
        if a is None or a.status not in ANSWERED:
            return []
        return score_targets(self.truth.targets, a.targets)


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

    @property
    def median_error_m(self) -> float | None:
        """Median 3-D error over the targets with a point whose box holds the truth (None: none)."""
        errors = [p.error_m for r in self.rows for p in r.points if p.error_m is not None and p.box_holds_truth]
        return float(np.median(errors)) if errors else None


def _key_matches(truth: dict[str, Any], phrase: str) -> bool:
    """Whether the node's target phrase names this truth target: its key word (a colour, or the
    shape of a colour question) is a whole word of the phrase."""
    key = str(truth.get("key", ""))
    return bool(key) and re.search(rf"\b{re.escape(key)}\b", phrase, re.IGNORECASE) is not None


def _pair_targets(
    truths: Sequence[dict[str, Any]], answers: Sequence[TargetAnswer]
) -> list[tuple[dict[str, Any] | None, TargetAnswer | None]]:
    """(truth, answer) pairs: each answer with the one truth target its phrase names, else with the
    truth target at its own position when that one is still free; truth targets no answer claims
    come last with None."""
    claimed: dict[int, int] = {}  # answer index -> truth index
    for i, a in enumerate(answers):
        named = [j for j, t in enumerate(truths) if _key_matches(t, a.phrase)]
        if len(named) == 1 and named[0] not in claimed.values():
            claimed[i] = named[0]
    for i in range(len(answers)):
        if i not in claimed and i < len(truths) and i not in claimed.values():
            claimed[i] = i
    pairs: list[tuple[dict[str, Any] | None, TargetAnswer | None]] = [
        (truths[claimed[i]] if i in claimed else None, a) for i, a in enumerate(answers)
    ]
    pairs += [(t, None) for j, t in enumerate(truths) if j not in claimed.values()]
    return pairs


def score_target(truth: dict[str, Any] | None, answer: TargetAnswer | None) -> TargetPoint:
    """Score one pair: the instance is, of the truth's instances with a 3-D point, the one nearest
    the node's point among those whose centre the node's box holds (among all when it holds none);
    the error is the distance to it (None without a point on either side)."""
    out = TargetPoint(truth, answer)
    instances = [i for i in (truth or {}).get("instances", []) if i.get("point") is not None]
    if answer is None or not instances:
        return out
    held = [i for i in instances if answer.box is not None and box_hit(answer.box, [i["box"]])]
    pool = held or instances
    if answer.has_point and answer.point is not None:
        p = np.asarray(answer.point, np.float64)
        out.instance = min(pool, key=lambda i: float(np.linalg.norm(np.asarray(i["point"]) - p)))
        out.error_m = float(np.linalg.norm(np.asarray(out.instance["point"]) - p))
    else:
        out.instance = pool[0]
    out.box_holds_truth = bool(held) and out.instance in held
    return out


def score_targets(truths: Sequence[dict[str, Any]], answers: Sequence[TargetAnswer]) -> list[TargetPoint]:
    """Every target of a question scored (:func:`score_target`), the node's results first, in order."""
    return [score_target(t, a) for t, a in _pair_targets(truths, answers)]


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _status_name(msg: Any) -> str:
    """``msg.status`` as a name, read from the recorded message's own STATUS_* constants first."""
    cls = type(msg)
    for name in dir(cls):
        if name.startswith("STATUS_") and getattr(cls, name) == msg.status:
            return name[len("STATUS_") :].lower()
    return STATUS_NAMES.get(int(msg.status), str(msg.status))


def _roi_box(roi: Any) -> list[int] | None:
    if not (roi.width and roi.height):
        return None
    return [int(roi.x_offset), int(roi.y_offset), int(roi.x_offset + roi.width), int(roi.y_offset + roi.height)]


def _target_answer(t: Any) -> TargetAnswer:
    p = t.point.point
    return TargetAnswer(
        t.phrase,
        _roi_box(t.roi),
        float(t.confidence),
        bool(t.found),
        bool(t.has_point),
        [float(p.x), float(p.y), float(p.z)] if t.has_point else None,
        t.point.header.frame_id,
        t.note,
    )


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
    published for its frame and question (overlays follow their answer; matched by header stamp).
    Messages are read with the definitions stored in the bag (so an answer recorded with an older
    FocusResult reads as it was written), this package's own where the bag has none."""
    store = None
    answers: list[Answer] = []
    overlays: list[tuple[int, np.ndarray]] = []
    reader = open_bag(bag)
    try:
        conns = [c for c in reader.connections if c.topic in (answer_topic, overlay_topic)]
        for conn, _t, raw in reader.messages(connections=conns):
            if conn.msgtype in reader.typestore.types:
                msg = reader.typestore.deserialize_cdr(raw, conn.msgtype)
            else:
                store = store or focus_typestore()
                msg = store.deserialize_cdr(raw, conn.msgtype)
            if conn.topic == overlay_topic:
                img = _image_rgb(msg)
                if img is not None:
                    overlays.append((_stamp_ns(msg.header), img))
                continue
            answers.append(
                Answer(
                    _stamp_ns(msg.header),
                    msg.header.frame_id,
                    msg.question,
                    msg.answer,
                    _status_name(msg),
                    msg.error,
                    _roi_box(msg.selected_roi),
                    float(msg.confidence),
                    int(msg.forward_passes),
                    msg.latency.sec + msg.latency.nanosec * 1e-9,
                    request_id=getattr(msg, "request_id", ""),
                    targets=[_target_answer(t) for t in getattr(msg, "target_results", [])],
                )
            )
    finally:
        reader.close()
    for stamp, img in overlays:  # the first answer on that frame still without an overlay
        for a in answers:
            if a.stamp_ns == stamp and a.status in ANSWERED and a.overlay is None:
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
        text = a.answer if a.status in ANSWERED else a.status.upper()
        hit = {True: "yes", False: "no", None: "-"}[r.box_hit]
        lines.append(
            f"{r.truth.index:>2} {t:6.1f} {r.truth.question[:64]:64} {r.truth.answer:8} {text[:10]:10} "
            f"{'yes' if r.correct else 'no':3} {_box_text(a.box):24} {hit:3} {a.passes:6d} "
            f"{a.latency_s:7.2f}s"
            + ("  (no target confirmed)" if a.status == "not_found" else "")
            + (f"  {a.error}" if a.error else "")
        )
    n = len(report.rows)
    hits, boxed = report.box_hits
    lines.append(
        f"{report.answered_once}/{n} questions answered exactly once; {report.correct}/{n} answers correct; "
        f"selected box contains the object in {hits}/{boxed}; {len(report.unmatched)} unmatched answer(s)"
    )
    return "\n".join(lines)


def _xyz(p: Sequence[float] | None) -> str:
    return "-" if p is None else "(" + ", ".join(f"{v:+.3f}" for v in p) + ")"


def format_points(report: Report) -> str:
    """The 3-D table: per question, per target, the node's point and the true one (optical frame,
    metres), the error, whether the target's box holds the object, and the node's note; then the
    median error over the targets whose box holds the truth."""
    head = (
        f"{'#':>2} {'target':20} {'found':5} {'has_point':9} {'point (x, y, z) m':26} {'true (x, y, z) m':26} "
        f"{'error':>8} {'in box':6} note"
    )
    lines = ["3-D points of the targets (camera optical frame: x right, y down, z forward)", head, "-" * len(head)]
    n_targets = n_points = 0
    for r in report.rows:
        idx = f"{r.truth.index:>2}"
        a = r.answer
        if a is None or a.status not in ANSWERED:
            lines.append(f"{idx} {'(no answer)' if a is None else a.status.upper()}")
            continue
        if not a.targets:
            lines.append(f"{idx} (no target results in the answer)")
            continue
        for p in r.points:
            t = p.answer
            n_targets += t is not None
            n_points += t is not None and t.has_point
            truth_point = p.instance["point"] if p.instance else None
            if t is None:
                lines.append(f"{idx} {p.truth['phrase'][:20]:20} {'(no result for this target)'}")
                continue
            err = "-" if p.error_m is None else f"{p.error_m * 100:6.1f}cm"
            held = {True: "yes", False: "no", None: "-"}[p.box_holds_truth]
            note = t.note if not t.has_point else ("" if p.instance else "no true point to compare with")
            lines.append(
                f"{idx} {t.phrase[:20]:20} {'yes' if t.found else 'no':5} {'yes' if t.has_point else 'no':9} "
                f"{_xyz(t.point):26} {_xyz(truth_point):26} {err:>8} {held:6} {note}".rstrip()
            )
    median = report.median_error_m
    scored = sum(1 for r in report.rows for p in r.points if p.error_m is not None and p.box_holds_truth)
    lines.append(
        f"{n_points}/{n_targets} targets have a point; median error over the {scored} whose box holds the "
        f"object: " + ("-" if median is None else f"{median * 100:.1f} cm")
    )
    return "\n".join(lines)


def points_json(row: Row) -> list[dict[str, Any]]:
    """The 3-D table's lines of one question, as JSON-able dicts."""
    out = []
    for p in row.points:
        t = p.answer
        out.append(
            {
                "phrase": t.phrase if t else None,
                "truth_phrase": p.truth["phrase"] if p.truth else None,
                "found": t.found if t else None,
                "has_point": t.has_point if t else None,
                "point": t.point if t else None,
                "truth_point": p.instance["point"] if p.instance else None,
                "error_m": p.error_m,
                "box_holds_truth": p.box_holds_truth,
                "note": t.note if t else "",
            }
        )
    return out


__all__ = [
    "ANSWERED",
    "Answer",
    "Row",
    "Report",
    "TargetAnswer",
    "TargetPoint",
    "read_answers",
    "build_report",
    "write_overlays",
    "format_report",
    "format_points",
    "points_json",
    "score_target",
    "score_targets",
]
