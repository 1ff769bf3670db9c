"""Questions in (``question`` and ``request`` topics, ``ask`` service, ``query`` action), each answered
exactly once.

Every request becomes a :class:`Job` with a request id: the caller's (``request`` topic, service,
action), or a UUID the node makes when it is empty (always for the plain ``question`` topic); every
result, BUSY and ERROR ones included, carries it in ``FocusResult.request_id``. The job is checked
at once (node active, question length, camera, frame, frame age) and put on the bounded
:class:`JobQueue` the worker takes from; a request that cannot be answered, or finds the queue
full, is finished at once with ERROR or BUSY. A service call or action goal then waits for *its
own* result, holding one executor thread and nothing else. Whatever happens,
:meth:`Requests.finish` delivers one ``focus_ros/FocusResult`` per job: published on ``answer``
and handed to its caller (:meth:`Job.claim_finish` makes a second delivery a no-op); a result
never leaves with ``STATUS_UNSET``.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rclpy.action import CancelResponse, GoalResponse
from rclpy.subscription import MessageInfo
from std_msgs.msg import String

from focus_ros.action import Query
from focus_ros.msg import FocusResult as FocusResultMsg
from focus_ros.msg import Question
from focus_ros.srv import Ask

from .frame_store import Frame
from .reports import Reports, first_line, quote
from .results import (
    ANSWERED,
    STATUS_BUSY,
    STATUS_CANCELED,
    STATUS_ERROR,
    STATUS_NOT_FOUND,
    STATUS_UNSET,
    base_result,
    error_result,
    not_found_note,
)
from .stamps import arrival_ns, stamp_ns, stamp_text

if TYPE_CHECKING:
    from .focus_node import FocusNode

# How long a stop waits for the callers blocked in ask / query to return their answers.
CALLERS_TIMEOUT_S = 2.0


def new_request_id() -> str:
    """A request id for a caller that gave none: a random UUID (unique without coordination)."""
    return str(uuid.uuid4())


class Job:
    """One question on its way through the queue."""

    def __init__(
        self,
        question: str,
        camera: str,
        source: str,
        cancel: Callable[[], bool] | None = None,
        feedback: Callable[[Any], None] | None = None,
        request_id: str = "",
    ):
        self.question = question
        self.camera = camera
        self.source = source  # "topic", "request", "service" or "action"
        self.request_id = request_id or new_request_id()
        self.by_stamp = False  # the caller named the frame (no fallback to another)
        self.user_cancel = cancel or (lambda: False)
        self.cancel: Callable[[], bool] = self.user_cancel  # the node adds its own stop check
        self.feedback = feedback
        self.asked_ns = 0  # middleware receive time of a topic question (0: unknown)
        self.frame: Frame | None = None
        self.method = "focus"
        self.requested = time.monotonic()
        self.started = False
        self.done = threading.Event()
        self.result: FocusResultMsg | None = None
        self.message = ""  # the service's summary: the answer (with why no target was confirmed) or the error
        self._finishing = False
        self._lock = threading.Lock()

    def claim_finish(self) -> bool:
        """True exactly once: the caller may deliver the result."""
        with self._lock:
            if self.done.is_set() or self._finishing:
                return False
            self._finishing = True
            return True


class JobQueue:
    """Bounded FIFO with a wake-up for the idle prefill (a ``queue.Queue`` cannot withdraw a job)."""

    def __init__(self, size: int):
        self.size = size
        self._jobs: deque[Job] = deque()
        self._cv = threading.Condition()
        self._poked = False

    def put(self, job: Job) -> bool:
        with self._cv:
            if len(self._jobs) >= self.size:
                return False
            self._jobs.append(job)
            self._cv.notify()
            return True

    def get(self, timeout: float) -> Job | None:
        """The next job; None after ``timeout`` or when poked (a new frame to prefill)."""
        with self._cv:
            if not self._jobs and not self._poked:
                self._cv.wait(timeout)
            self._poked = False
            return self._jobs.popleft() if self._jobs else None

    def remove(self, job: Job) -> bool:
        with self._cv:
            try:
                self._jobs.remove(job)
                return True
            except ValueError:
                return False

    def poke(self) -> None:
        with self._cv:
            self._poked = True
            self._cv.notify()

    def drain(self) -> list[Job]:
        with self._cv:
            jobs = list(self._jobs)
            self._jobs.clear()
            self._cv.notify_all()
            return jobs

    def __len__(self) -> int:
        with self._cv:
            return len(self._jobs)


class Requests:
    """The question callbacks of a :class:`~focus_ros.ros.focus_node.FocusNode`, its queue and its answers.

    Closed (every question refused) until :meth:`open` and again from :meth:`close` on. Reads the
    node's frame store, settings snapshot, clock, model name and ``answer`` publisher."""

    def __init__(self, node: FocusNode, reports: Reports):
        self.node = node
        self.reports = reports
        self.logger = node.get_logger()
        self.queue: JobQueue | None = None
        # Closing and queueing happen under this lock, so no question slips into a queue that is
        # being drained (it would never be answered).
        self._gate = threading.Lock()
        self.closing = True  # no questions until activated
        self.closing_reason = "the node is not active"
        self._waiting = 0  # service / action callers blocked until their answer
        self._waiting_lock = threading.Lock()

    # ================================================================== open and close
    def prepare(self, queue_size: int) -> None:
        """A new, empty queue (activate); questions are still refused until :meth:`open`."""
        self.queue = JobQueue(queue_size)

    def open(self) -> None:
        self.closing = False

    def close(self, reason: str) -> bool:
        """Refuse new questions from now on; True when callers are waiting for answers."""
        with self._gate:
            if not self.closing:
                self.closing_reason = reason
            self.closing = True
        with self._waiting_lock:
            return self._waiting > 0

    def cancel_queued(self, reason: str) -> None:
        """Answer every queued question with CANCELED."""
        queue = self.queue
        if queue is not None:
            for job in queue.drain():
                self.finish_error(job, STATUS_CANCELED, f"not answered: {reason}")

    def poke(self) -> None:
        """Wake the worker waiting on the queue (a new frame to prefill, or a stop)."""
        queue = self.queue
        if queue is not None:
            queue.poke()

    def wait_for_callers(self, timeout: float = CALLERS_TIMEOUT_S) -> None:
        """Until the callers blocked in ask / query have returned (their jobs are finished)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._waiting_lock:
                if self._waiting == 0:
                    break
            time.sleep(0.01)

    def cancel_reason(self, user_reason: str) -> str:
        return f"not answered: {self.closing_reason}" if self.closing else user_reason

    # ================================================================== callbacks
    def on_question(self, msg: String, info: MessageInfo) -> None:
        job = Job(msg.data, "", "topic")
        # A topic question carries no stamp: it is about the frame shown when it arrived, even when a
        # busy executor runs this callback after newer frames came in.
        job.asked_ns = arrival_ns(info)
        self.submit(job)

    def on_request(self, msg: Question, info: MessageInfo) -> None:
        """The ``request`` topic: a question with an id; ``header.stamp`` names the frame like Ask's
        stamp, zero means the newest frame that had arrived when the request did (as ``question``)."""
        job = Job(msg.question, msg.camera, "request", request_id=msg.request_id)
        job.asked_ns = arrival_ns(info)
        self.submit(job, msg.header.stamp)

    def on_ask(self, request: Ask.Request, response: Ask.Response) -> Ask.Response:
        job = Job(request.question, request.camera, "service", request_id=request.request_id)
        response.result = self._answer_caller(job, request.stamp)
        response.success = response.result.status in ANSWERED
        response.message = job.message
        return response

    def on_goal(self, goal_request: Any) -> GoalResponse:
        return GoalResponse.REJECT if self.closing else GoalResponse.ACCEPT

    def on_cancel(self, goal_handle: Any) -> CancelResponse:
        return CancelResponse.ACCEPT

    def execute_query(self, goal_handle: Any) -> Query.Result:
        goal = goal_handle.request
        job = Job(
            goal.question,
            goal.camera,
            "action",
            cancel=lambda: goal_handle.is_cancel_requested,
            feedback=goal_handle.publish_feedback,
            request_id=goal.request_id,
        )
        result = self._answer_caller(job, goal.stamp, withdraw=lambda: goal_handle.is_cancel_requested)
        try:
            if result.status in ANSWERED:
                goal_handle.succeed()
            elif result.status == STATUS_CANCELED and goal_handle.is_cancel_requested:
                goal_handle.canceled()
            else:
                goal_handle.abort()
        except Exception as exc:  # the goal handle may be gone when shutting down
            self.logger.debug(f"cannot finish goal: {exc}")
        # Never raise from here: rclpy would then send a default-constructed result (status UNSET).
        return Query.Result(result=result)

    def _answer_caller(self, job: Job, stamp: Any, withdraw: Callable[[], bool] | None = None) -> FocusResultMsg:
        """Submit ``job`` and block this executor thread until its one result, which is returned;
        a fault here still gives the caller an ERROR result (and publishes it), never nothing."""
        try:
            self.submit(job, stamp)
            self._wait(job, withdraw)
        except Exception as exc:  # a bug must cost this question an error, not the caller its answer
            self.reports.count("internal_errors")
            self.logger.error(f"unexpected error waiting for {quote(job.question)}: {exc}\n{traceback.format_exc()}")
            self.finish_error(job, STATUS_ERROR, f"internal error: {type(exc).__name__}: {first_line(exc)}")
            job.done.wait(CALLERS_TIMEOUT_S)  # when the worker was delivering it at that moment
        if job.result is None:  # pragma: no cover - finish() always sets it before done
            job.result = error_result(self.new_result(job), STATUS_ERROR, "internal error: no result was produced")
            job.message = job.result.error
        return job.result

    # ================================================================== checks
    def submit(self, job: Job, stamp: Any = None) -> None:
        """Check the request and queue it; any problem finishes the job at once with one error."""
        try:
            self._check_and_queue(job, stamp)
        except Exception as exc:  # a bug must cost this question an error, not the caller its answer
            self.reports.count("internal_errors")
            self.logger.error(f"unexpected error taking {quote(job.question)}: {exc}\n{traceback.format_exc()}")
            self.finish_error(job, STATUS_ERROR, f"internal error: {type(exc).__name__}: {first_line(exc)}")

    def _check_and_queue(self, job: Job, stamp: Any) -> None:
        job.cancel = lambda: self.closing or job.user_cancel()
        frames, queue = self.node.frames, self.queue
        if self.closing or queue is None or frames is None:
            self.finish_error(job, STATUS_ERROR, "the node is not active (configure and activate it first)")
            return
        settings = self.node.params.current
        self.reports.count("questions")
        if not job.question.strip():
            self.finish_error(job, STATUS_ERROR, "question is empty")
            return
        limit = settings.max_question_length
        if len(job.question) > limit:
            self.finish_error(
                job, STATUS_ERROR, f"question is too long: {len(job.question)} characters (max_question_length {limit})"
            )
            return
        cameras = settings.cameras
        camera = job.camera or cameras[0]
        job.camera = camera
        if not frames.has_camera(camera):
            self.finish_error(job, STATUS_ERROR, f"unknown camera {camera!r}; this node's cameras: {list(cameras)}")
            return
        job.method = settings.method
        want = stamp_ns(stamp) if stamp is not None else 0
        job.by_stamp = bool(want)
        if want:
            tol = int(settings.stamp_tolerance * 1e9)
            frame = frames.find(camera, want, tol)
            if frame is None:
                stamps = frames.stamps(camera)
                have = (
                    f"stored: {len(stamps)} frame(s), {stamp_text(stamps[0])} .. {stamp_text(stamps[-1])}"
                    if stamps
                    else "no frame stored yet"
                )
                self.finish_error(
                    job, STATUS_ERROR, f"no frame with stamp {stamp_text(want)} from camera {camera!r} ({have})"
                )
                return
        else:
            frame = frames.latest(camera, arrived_by=job.asked_ns)
            if frame is None:
                failed = frames.latest(camera, usable_only=False)
                if failed is not None:
                    self.finish_error(
                        job,
                        STATUS_ERROR,
                        f"no usable frame from camera {camera!r}: {failed.error or 'its frames could not be decoded'}",
                    )
                    return
                topics = ", ".join(self.node.camera_topics.get(camera, [])) or "(no topics)"
                self.finish_error(
                    job, STATUS_ERROR, f"no frame yet from camera {camera!r}: nothing received on {topics}"
                )
                return
            age_error = self.age_error(frame)
            if age_error:
                job.frame = frame
                self.finish_error(job, STATUS_ERROR, age_error)
                return
        job.frame = frame
        with self._gate:  # not while a stop drains the queue (FocusNode.stop_worker)
            closing = self.closing
            queued = not closing and queue.put(job)
        if closing:
            self.finish_error(job, STATUS_CANCELED, f"not answered: {self.closing_reason}")
        elif not queued:
            self.reports.count("busy")
            self.finish_error(
                job,
                STATUS_BUSY,
                f"busy: {queue.size} question(s) already waiting (queue_size {queue.size}); try again later",
            )

    def age_error(self, frame: Frame) -> str | None:
        """Why the latest ``frame`` is too old to answer about (None when it is fresh enough)."""
        max_age = self.node.params.current.max_frame_age
        if max_age <= 0:
            return None
        now = self.node.get_clock().now().nanoseconds
        age = (now - frame.stamp_ns) if frame.stamp_ns else (now - frame.received_ns)
        if age <= max_age * 1e9:
            return None
        return (
            f"latest frame from camera {frame.camera!r} is {age / 1e9:.1f} s old (max_frame_age {max_age:g} s): "
            f"is the camera still publishing, and are the clocks in sync?"
        )

    def _wait(self, job: Job, withdraw: Callable[[], bool] | None = None) -> None:
        """Block this executor thread (only) until ``job`` has its result."""
        with self._waiting_lock:
            self._waiting += 1
        try:
            while not job.done.wait(0.05):
                queue = self.queue
                if queue is None:
                    continue
                if withdraw is not None and withdraw() and queue.remove(job):
                    self.finish_error(job, STATUS_CANCELED, "canceled while waiting in the queue")
                elif self.closing and not self.node.worker.running and queue.remove(job):
                    # queued as the node stopped: no worker will take it
                    self.finish_error(job, STATUS_CANCELED, f"not answered: {self.closing_reason}")
        finally:
            with self._waiting_lock:
                self._waiting -= 1

    # ================================================================== answers
    def new_result(self, job: Job) -> FocusResultMsg:
        header = job.frame.header if job.frame is not None else None
        pipeline = self.node.pipeline
        model = pipeline.adapter.name if pipeline is not None else ""
        return base_result(job.question, job.camera, header, model, job.method, request_id=job.request_id)

    def finish_error(self, job: Job, status: int, error: str) -> None:
        msg = error_result(self.new_result(job), status, error, time.monotonic() - job.requested)
        self.finish(job, msg)

    def finish(self, job: Job, msg: FocusResultMsg) -> None:
        """Deliver ``job``'s one result: publish it on ``answer``, hand it to its caller, count and log it."""
        if not job.claim_finish():
            return
        msg.request_id = job.request_id
        if msg.status == STATUS_UNSET:  # pragma: no cover - a bug: never let it read as an outcome
            error_result(msg, STATUS_ERROR, "internal error: the result had no status")
        note = ""
        if msg.status == STATUS_NOT_FOUND:
            pipeline = self.node.pipeline  # its search settings are the ones this question ran with
            note = not_found_note(msg, pipeline.search.exist_threshold if pipeline is not None else float("nan"))
        job.message = (f"{msg.answer} ({note})" if note else msg.answer) if msg.status in ANSWERED else msg.error
        job.result = msg
        pub = self.node.answer_pub
        if pub is not None:
            try:
                pub.publish(msg)
            except Exception as exc:  # context already shut down
                self.logger.debug(f"cannot publish the answer: {exc}")
        job.done.set()
        self.reports.count(f"status_{msg.status}")
        asked = f"[{job.camera}] {quote(job.question)} ({job.request_id})"
        if msg.status in ANSWERED:
            roi = msg.selected_roi
            self.logger.info(
                f"{asked} -> {msg.answer!r}{f' [{note}]' if note else ''} roi=({roi.x_offset},{roi.y_offset},"
                f"{roi.width}x{roi.height}) conf={msg.confidence:.2f} passes={msg.forward_passes} "
                f"latency={msg.latency.sec + msg.latency.nanosec * 1e-9:.2f}s via {job.source}"
            )
        elif msg.status == STATUS_BUSY:  # a flood of questions must not flood the log as well
            self.reports.report("questions", "busy", f"{asked} via {job.source}: {msg.error}")
        else:
            self.logger.warning(f"{asked} via {job.source}: {msg.error}")


__all__ = ["CALLERS_TIMEOUT_S", "Job", "JobQueue", "Requests", "new_request_id"]
