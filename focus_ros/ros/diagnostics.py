"""``/diagnostics`` for a monitor: the node's health as ``diagnostic_msgs/DiagnosticArray`` at 1 Hz.

One status per part, named ``<node>: <part>`` (the ``diagnostic_aggregator`` convention), all with
the node's fully qualified name as ``hardware_id``:

* ``model``: loaded, name, family, device (ERROR when none is loaded while the node is active);
* ``questions``: queue depth, answers per status, internal errors, out-of-memory, the last
  latency; ERROR after :data:`FAILURES_FOR_ERROR` inference failures in a row (a sticky fault: the
  node stays ACTIVE but cannot answer);
* ``camera <name>``: frames received and dropped, age of the latest frame, depth images and
  camera_info; WARN when the camera has been silent longer than ``max_frame_age`` (5 s when that
  is 0), or has sent nothing yet.

Built from counters, attributes and short-lived locks only (the frame store's, the queue's),
never the model: a question holding the model for seconds does not delay a report, and the timer
runs in the node's default group.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from focus_ros.msg import FocusResult as FocusResultMsg

if TYPE_CHECKING:
    from .focus_node import FocusNode

PERIOD_S = 1.0  # REP 107 / diagnostic_updater's rate
# Inference failures in a row (exceptions inside the model, out of memory) that make the node's
# questions ERROR: one bad question (an odd frame, a huge prompt) stays OK, three in a row are a
# fault that will fail the next question too (a lost CUDA device, a corrupted model state).
FAILURES_FOR_ERROR = 3
# Silence that makes a camera WARN when max_frame_age is 0 (no age limit): long enough for a
# 1 Hz camera to miss a few frames, short enough to notice a dead driver at once.
DEFAULT_SILENCE_S = 5.0

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def _values(**values: Any) -> list[KeyValue]:
    return [KeyValue(key=k, value=v if isinstance(v, str) else _text(v)) for k, v in values.items()]


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


class Diagnostics:
    """The /diagnostics report of a :class:`~focus_ros.ros.focus_node.FocusNode` (see the module doc)."""

    def __init__(self, node: FocusNode):
        self.node = node

    def array(self) -> DiagnosticArray:
        node = self.node
        out = DiagnosticArray()
        out.header.stamp = node.get_clock().now().to_msg()
        out.status = [self._model(), self._questions()] + [self._camera(c) for c in node.params.current.cameras]
        hardware = node.get_fully_qualified_name()
        for status in out.status:
            status.hardware_id = hardware
        return out

    def publish(self) -> None:
        """Timer callback: one DiagnosticArray on the node's diagnostics publisher (never raises)."""
        pub = self.node.diagnostics_pub
        if pub is None:
            return
        try:
            pub.publish(self.array())
        except Exception as exc:  # a report must never take the executor down
            self.node.get_logger().debug(f"diagnostics not published: {exc}")

    # ------------------------------------------------------------------ parts
    def _name(self, part: str) -> str:
        return f"{self.node.get_name()}: {part}"

    def _model(self) -> DiagnosticStatus:
        pipeline = self.node.pipeline
        adapter = getattr(pipeline, "adapter", None)
        if adapter is None or getattr(adapter, "model", None) is None:
            return DiagnosticStatus(
                level=ERROR, name=self._name("model"), message="no model loaded", values=_values(loaded=False)
            )
        return DiagnosticStatus(
            level=OK,
            name=self._name("model"),
            message=f"{adapter.name} on {adapter.device}",
            values=_values(
                loaded=True,
                model=str(adapter.name),
                family=str(getattr(adapter, "family", "")),
                device=str(adapter.device),
                method=self.node.params.current.method,
            ),
        )

    def _questions(self) -> DiagnosticStatus:
        node, worker = self.node, self.node.worker
        stats = node.stats
        queue = node.requests.queue
        in_row = worker.failures_in_row
        latency = worker.last_latency_s
        values = _values(
            queue_depth=len(queue) if queue is not None else 0,
            queue_size=queue.size if queue is not None else 0,
            questions=stats["questions"],
            answered=stats[f"status_{FocusResultMsg.STATUS_OK}"] + stats[f"status_{FocusResultMsg.STATUS_NOT_FOUND}"],
            not_found=stats[f"status_{FocusResultMsg.STATUS_NOT_FOUND}"],
            errors=stats[f"status_{FocusResultMsg.STATUS_ERROR}"],
            canceled=stats[f"status_{FocusResultMsg.STATUS_CANCELED}"],
            busy=stats[f"status_{FocusResultMsg.STATUS_BUSY}"],
            internal_errors=stats["internal_errors"],
            out_of_memory=stats["out_of_memory"],
            inference_failures_in_a_row=in_row,
            last_latency_s=latency if latency is not None else "none yet",
        )
        if in_row >= FAILURES_FOR_ERROR:
            return DiagnosticStatus(
                level=ERROR,
                name=self._name("questions"),
                message=f"{in_row} inference failures in a row; last: {worker.last_failure}",
                values=values,
            )
        message = "answering" if worker.running else "worker not running"
        return DiagnosticStatus(level=OK, name=self._name("questions"), message=message, values=values)

    def _camera(self, camera: str) -> DiagnosticStatus:
        node = self.node
        stats, frames, settings = node.stats, node.frames, node.params.current
        silence = settings.max_frame_age or DEFAULT_SILENCE_S
        latest = frames.latest(camera, usable_only=False) if frames is not None else None
        age = time.monotonic() - latest.received if latest is not None else None
        depth = frames.latest_depth(camera) if frames is not None else None
        info = frames.camera_info(camera) if frames is not None else None
        values = _values(
            topics=", ".join(node.camera_topics.get(camera, [])),
            frames_received=stats[f"{camera}/frames_received"],
            frames_dropped=stats[f"{camera}/frames_dropped"],
            latest_frame_age_s=age if age is not None else "no frame yet",
            latest_frame_size=f"{latest.width}x{latest.height}" if latest is not None else "",
            depth_enabled=settings.depth_enabled,
            depth_received=stats[f"{camera}/depth_received"],
            depth_dropped=stats[f"{camera}/depth_dropped"],
            latest_depth_age_s=time.monotonic() - depth.received if depth is not None else "no depth yet",
            camera_info=info is not None,
            camera_info_dropped=stats[f"{camera}/camera_info_dropped"],
        )
        name = self._name(f"camera {camera}")
        if latest is None:
            return DiagnosticStatus(level=WARN, name=name, message="no frame received yet", values=values)
        if age > silence:
            return DiagnosticStatus(
                level=WARN, name=name, message=f"silent for {age:.1f} s (more than {silence:g} s)", values=values
            )
        return DiagnosticStatus(level=OK, name=name, message=f"latest frame {age:.2f} s ago", values=values)


__all__ = ["DEFAULT_SILENCE_S", "FAILURES_FOR_ERROR", "PERIOD_S", "Diagnostics"]
