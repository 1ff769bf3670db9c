"""Core results -> ``focus_ros/FocusResult`` messages (boxes in full-resolution source pixels).

Status: STATUS_OK when the question was answered and at least one searched target confirmed (or
none was searched for: vanilla, attention; ``found`` says whether every one was), STATUS_NOT_FOUND
when targets were searched for and not one was confirmed (the answer comes from the best view),
ERROR / CANCELED / BUSY from the request handlers. STATUS_UNSET (0) is never sent: it is what a
default-constructed result reads.
"""

from __future__ import annotations

import math
from typing import Any

from builtin_interfaces.msg import Duration
from sensor_msgs.msg import RegionOfInterest

from focus_ros.msg import FocusResult as FocusResultMsg
from focus_ros.msg import Region as RegionMsg
from focus_ros.msg import TargetResult as TargetResultMsg

from ..core.geometry import Box
from ..core.results import FocusResult, TargetOutcome

STATUS_UNSET = FocusResultMsg.STATUS_UNSET
STATUS_OK = FocusResultMsg.STATUS_OK
STATUS_NOT_FOUND = FocusResultMsg.STATUS_NOT_FOUND
STATUS_ERROR = FocusResultMsg.STATUS_ERROR
STATUS_CANCELED = FocusResultMsg.STATUS_CANCELED
STATUS_BUSY = FocusResultMsg.STATUS_BUSY
# The statuses of a result that carries an answer (Ask.success, a succeeded goal).
ANSWERED = (STATUS_OK, STATUS_NOT_FOUND)
# TargetResult.note of a target for which the search kept no region (nothing to point at).
NOTE_NO_REGION = "no region kept"


def roi_from_box(box: Box | None, width: int, height: int, whole_is_zero: bool = False) -> RegionOfInterest:
    """Pixel-aligned ROI covering ``box``, clipped to a ``width x height`` frame.

    With ``whole_is_zero`` a box covering the whole frame gives the all-zero ROI
    (sensor_msgs convention: "full resolution").
    """
    roi = RegionOfInterest()
    if box is None or width <= 0 or height <= 0:
        return roi
    x0 = min(max(int(math.floor(box.x0)), 0), width)
    y0 = min(max(int(math.floor(box.y0)), 0), height)
    x1 = min(max(int(math.ceil(box.x1)), x0), width)
    y1 = min(max(int(math.ceil(box.y1)), y0), height)
    if whole_is_zero and (x0, y0, x1, y1) == (0, 0, width, height):
        return roi
    roi.x_offset, roi.y_offset, roi.width, roi.height = x0, y0, x1 - x0, y1 - y0
    return roi


def duration(seconds: float) -> Duration:
    seconds = max(0.0, float(seconds))
    sec = int(seconds)
    return Duration(sec=sec, nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def base_result(
    question: str, camera: str, header: Any = None, model: str = "", method: str = "", request_id: str = ""
) -> FocusResultMsg:
    msg = FocusResultMsg(
        question=question, camera=camera, model=model, method=method, confidence=-1.0, request_id=request_id
    )
    if header is not None:
        msg.header.stamp = header.stamp
        msg.header.frame_id = header.frame_id
    return msg


def error_result(msg: FocusResultMsg, status: int, error: str, latency_s: float = 0.0) -> FocusResultMsg:
    msg.status = status
    msg.error = error
    msg.answer = ""
    msg.latency = duration(latency_s)
    return msg


def clean_text(text: str) -> str:
    """``text`` without NUL and other control characters (ROS strings are C strings)."""
    return "".join(c for c in text if c in "\n\t" or ord(c) >= 32)


def target_result(outcome: TargetOutcome, width: int, height: int, header: Any) -> TargetResultMsg:
    """One target for a planner: its own box and confidence; no 3-D point here (that needs depth
    and camera_info, added afterwards), and "no region kept" in ``note`` when it has no box."""
    msg = TargetResultMsg(
        phrase=outcome.phrase,
        roi=roi_from_box(outcome.box, width, height),
        confidence=float(outcome.confidence),
        found=bool(outcome.found),
        has_point=False,
        note=NOTE_NO_REGION if outcome.box is None else "",
    )
    msg.point.header.stamp = header.stamp
    msg.point.header.frame_id = header.frame_id
    return msg


def not_found_note(msg: FocusResultMsg, threshold: float) -> str:
    """Why a STATUS_NOT_FOUND answer is not a confirmation: the best existence confidence and the threshold."""
    confidences = [t.confidence for t in msg.target_results if t.confidence >= 0.0]
    best = f"{max(confidences):.2f}" if confidences else "none verified"
    return (
        f"no target was confirmed: best existence confidence {best} < search.exist_threshold {threshold:.2f}; "
        f"answered from the best view"
    )


def fill_result(msg: FocusResultMsg, result: FocusResult, latency_s: float) -> FocusResultMsg:
    """Copy a core result into ``msg`` (header, question, camera, request id already set)."""
    w, h = result.image_size
    msg.answer = clean_text(result.answer)
    msg.targets = list(result.targets)
    msg.question_type = int(result.question_type)
    msg.regions = [
        RegionMsg(
            roi=roi_from_box(r.box, w, h), target=r.target, confidence=float(r.confidence), relevance=float(r.relevance)
        )
        for r in result.regions
    ]
    msg.selected_roi = roi_from_box(result.bbox, w, h, whole_is_zero=True)
    msg.found = bool(result.found)
    msg.target_results = [target_result(t, w, h, msg.header) for t in result.target_results]
    msg.confidence = float(result.confidence)
    msg.forward_passes = int(result.forward_passes)
    msg.tokens_prefilled = int(result.tokens_prefilled)
    msg.latency = duration(latency_s)
    msg.model = result.model
    msg.method = result.method
    msg.status = STATUS_NOT_FOUND if result.none_found else STATUS_OK
    msg.error = ""
    return msg


__all__ = [
    "ANSWERED",
    "NOTE_NO_REGION",
    "STATUS_UNSET",
    "STATUS_OK",
    "STATUS_NOT_FOUND",
    "STATUS_ERROR",
    "STATUS_CANCELED",
    "STATUS_BUSY",
    "roi_from_box",
    "duration",
    "base_result",
    "error_result",
    "fill_result",
    "not_found_note",
    "target_result",
]
