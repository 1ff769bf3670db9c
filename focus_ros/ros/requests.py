"""Questions in (``question`` and ``request`` topics, ``ask`` service, ``query`` action), each answered
exactly once.

Every request becomes a :class:`Job` with a request id: the caller's (``request`` topic, service,
action), or a UUID the node makes when it is empty (always for the plain ``question`` topic); every
result, BUSY and ERROR ones included, carries it in ``FocusResult.request_id``. The job is checked
at once (node active, question length, camera, frame, frame age) and put on the bounded
:class:`JobQueue` the worker takes from; a request that cannot be answered, or finds the queue
full, is finished at once with ERROR or BUSY. An action goal is the exception: when the queue is
full or the node is stopping it is rejected at once (``GoalResponse.REJECT``: no job, no result),
and an accepted goal holds a queue slot from its acceptance until its job is queued or finished,
so a goal the client was told is accepted always gets its result. A service call or action goal
then waits for *its own* result, holding one executor thread and nothing else. Whatever happens,
:meth:`Requests.finish` delivers one ``focus_ros/FocusResult`` per job: published on ``answer``
and handed to its caller (:meth:`Job.claim_finish` makes a second delivery a no-op); a result
never leaves with ``STATUS_UNSET``.
"""

from __future__ import annotations

import copy
import threading
import time
import traceback
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rclpy.action import CancelResponse, GoalResponse
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
from .stamps import MessageInfo, arrival_ns, stamp_ns, stamp_text

if TYPE_CHECKING:
    from .focus_node import FocusNode

# How long a stop waits for the callers blocked in ask / query to return their answers.
CALLERS_TIMEOUT_S = 2.0
# How long a queue slot held by ``on_goal`` waits for rclpy to confirm the goal accepted. Both run
# back to back in one executor task; rclpy skips the confirmation only when it fails to accept the
# goal or to send the response (the client has gone), and then the slot is freed after this.
GOAL_SLOT_TIMEOUT_S = 5.0


def _never() -> bool:
    return False


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
        self.user_cancel = cancel or _never
        self.node_stopping: Callable[[], bool] = _never  # the node's own stop check, set when submitted
        self.feedback = feedback
        self.asked_ns = 0  # middleware receive time of a topic question (0: unknown)
        self.frame: Frame | None = None
        self.method = "focus"
        self.requested = time.monotonic()
        self.started = False
        self.done = threading.Event()
        self.result: FocusResultMsg | None = None
        self.message = ""  # the service's summary: the answer (with why no target was confirmed) or the error
        self.notes: list[str] = []  # what the answer's summary adds (e.g. targets left out by search.max_targets)
        self.deadline_s = 0.0  # max_question_seconds when it was accepted; 0: no deadline
        self.reserved_in: JobQueue | None = None  # the queue holding a slot for this action goal (until queued)
        self._finishing = False
        self._lock = threading.Lock()

    def cancel(self) -> bool:
        """True once the question should stop: the node is stopping, its caller withdrew it, or its
        deadline passed. A method, not a closure stored on the job: a closure over the job would be a
        reference cycle, and the job (with its frame and result) would outlive its question until
        Python's next full garbage collection, minutes later under a camera stream."""
        return self.node_stopping() or self.user_cancel() or self.expired()

    def expired(self) -> bool:
        """True once ``deadline_s`` has passed since the question was accepted."""
        return self.deadline_s > 0 and time.monotonic() - self.requested > self.deadline_s

    def claim_finish(self) -> bool:
        """True exactly once: the caller may deliver the result."""
        with self._lock:
            if self.done.is_set() or self._finishing:
                return False
            self._finishing = True
            return True


class JobQueue:
    """Bounded FIFO with a wake-up for the idle prefill (a ``queue.Queue`` cannot withdraw a job).

    A slot can be reserved ahead of its job (an accepted action goal, whose job is made later on
    another executor thread): reserved slots count as taken."""

    def __init__(self, size: int):
        self.size = size
        self._jobs: deque[Job] = deque()
        self._cv = threading.Condition()
        self._poked = False
        self._reserved = 0

    def reserve(self) -> bool:
        """Hold one slot for a job to come; False when the queue is full."""
        with self._cv:
            if len(self._jobs) + self._reserved >= self.size:
                return False
            self._reserved += 1
            return True

    def release(self) -> None:
        """Give back a slot from :meth:`reserve` whose job was not queued."""
        with self._cv:
            self._reserved = max(0, self._reserved - 1)

    @property
    def reserved(self) -> int:
        with self._cv:
            return self._reserved

    def put(self, job: Job, reserved: bool = False) -> bool:
        """Queue ``job``; ``reserved``: into the slot :meth:`reserve` held for it (never refused)."""
        with self._cv:
            if reserved:
                self._reserved = max(0, self._reserved - 1)
            elif len(self._jobs) + self._reserved >= self.size:
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


class GoalSlot:
    """A queue slot held for one action goal, from :meth:`Requests.on_goal` until its job is queued
    or finished (:meth:`Requests.execute_query`)."""

    def __init__(self, goal: Any, queue: JobQueue):
        self.goal = goal  # the goal request itself: keeps its id(), the slot's key, from being reused
        self.queue = queue
        self.offered = time.monotonic()
        self.accepted = False  # rclpy accepted it and scheduled execute_query


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
        # question_tokens' own copy of the loaded model's tokenizer, and (weakly) the adapter it is of
        self._tokenizer_lock = threading.Lock()
        self._tokenizer: Any = None
        self._tokenizer_of: Callable[[], Any] = lambda: None
        # Accepted action goals not finished yet: id(goal request) -> its slot (under the gate).
        self._slots: dict[int, GoalSlot] = {}

    # ================================================================== open and close
    def prepare(self, queue_size: int) -> None:
        """A new, empty queue (activate); questions are still refused until :meth:`open`."""
        with self._gate:
            self.queue = JobQueue(queue_size)
            self._slots.clear()  # slots of the last queue (a goal that never ran): nothing to wait for

    def open(self) -> None:
        with self._gate:
            self.closing = False

    def close(self, reason: str) -> bool:
        """Refuse new questions from now on; True when callers are waiting for answers (a blocked
        ask / query, or an accepted goal whose execution has not started yet)."""
        with self._gate:
            if not self.closing:
                self.closing_reason = reason
            self.closing = True
            goals = bool(self._slots)
        with self._waiting_lock:
            return self._waiting > 0 or goals

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
            with self._gate:
                self._drop_stale_slots()
                goals = len(self._slots)  # accepted goals run to their result (CANCELED) first
            with self._waiting_lock:
                if self._waiting == 0 and goals == 0:
                    break
            time.sleep(0.01)

    def _is_closing(self) -> bool:
        return self.closing

    def cancel_reason(self, user_reason: str) -> str:
        return f"not answered: {self.closing_reason}" if self.closing else user_reason

    def deadline_error(self, job: Job, queued: bool) -> str:
        where = "waiting in the queue" if queued else "in the search"
        return (
            f"deadline passed: not answered within max_question_seconds {job.deadline_s:g} s of being accepted "
            f"({time.monotonic() - job.requested:.1f} s, {where})"
        )

    def finish_stopped(self, job: Job, user_reason: str, queued: bool = False) -> None:
        """Finish ``job`` whose cancel check said stop: CANCELED when the node stops or its caller
        canceled (``user_reason``), ERROR with "deadline" when ``max_question_seconds`` passed
        (``queued``: before the worker began it)."""
        if not self.closing and not job.user_cancel() and job.expired():
            self.finish_error(job, STATUS_ERROR, self.deadline_error(job, queued))
        else:
            self.finish_error(job, STATUS_CANCELED, self.cancel_reason(user_reason))

    def question_tokens(self, question: str) -> int | None:
        """How many tokens the loaded model's tokenizer makes of ``question`` (None: no model). A
        copy of the tokenizer counts: the worker's batched calls change the original's padding
        state, which a concurrent call from this thread would trip over."""
        pipeline = self.node.pipeline
        if pipeline is None:
            return None
        with self._tokenizer_lock:
            if self._tokenizer_of() is not pipeline.adapter:
                self._tokenizer = copy.deepcopy(pipeline.adapter.tokenizer)
                self._tokenizer_of = weakref.ref(pipeline.adapter)  # weak: a released model is not kept
            return len(self._tokenizer(question, add_special_tokens=False)["input_ids"])

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
        """Accept a goal only into a free queue slot, held for it from now on; otherwise reject it
        at once (the node not active or stopping, or the queue full): the client's goal handle
        reads ``accepted`` False, and the goal gets no result, neither to the client nor on
        ``answer``."""
        with self._gate:  # against close(): a goal accepted here is in _slots before a stop looks
            self._drop_stale_slots()
            queue = self.queue
            if self.closing or queue is None:
                why = self.closing_reason
            elif not queue.reserve():
                why = f"busy: {queue.size} question(s) already waiting (queue_size {queue.size})"
            else:
                self._slots[id(goal_request)] = GoalSlot(goal_request, queue)
                return GoalResponse.ACCEPT
        self.reports.count("goals_rejected")
        self.reports.report("query", "rejected", f"goal {quote(goal_request.question)} rejected: {why}")
        return GoalResponse.REJECT

    def on_accepted(self, goal_handle: Any) -> None:
        """rclpy accepted the goal (and told its client): its slot now waits for execute_query."""
        with self._gate:
            slot = self._slots.get(id(goal_handle.request))
            if slot is not None and slot.goal is goal_handle.request:
                slot.accepted = True
        goal_handle.execute()

    def _drop_stale_slots(self) -> None:
        """Free the slots of goals rclpy did not go on to accept (GOAL_SLOT_TIMEOUT_S); under the gate."""
        now = time.monotonic()
        for key, slot in list(self._slots.items()):
            if not slot.accepted and now - slot.offered > GOAL_SLOT_TIMEOUT_S:
                del self._slots[key]
                slot.queue.release()

    def _free_slot(self, goal: Any, job: Job) -> None:
        """The goal has its result: forget its slot, and give the slot back if its job was never queued."""
        with self._gate:
            slot = self._slots.get(id(goal))
            if slot is not None and slot.goal is goal:
                del self._slots[id(goal)]
            if job.reserved_in is not None:
                job.reserved_in.release()
                job.reserved_in = None

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
        with self._gate:
            slot = self._slots.get(id(goal))
            if slot is not None and slot.goal is goal:
                job.reserved_in = slot.queue  # queued into the slot on_goal held for it
        try:
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
        finally:
            self._free_slot(goal, job)
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
        job.node_stopping = self._is_closing
        frames, queue = self.node.frames, self.queue
        if self.closing or queue is None or frames is None:
            if job.reserved_in is not None:  # a goal accepted before a stop began: the stop answers it
                self.finish_error(job, STATUS_CANCELED, f"not answered: {self.closing_reason}")
            else:
                self.finish_error(job, STATUS_ERROR, "the node is not active (configure and activate it first)")
            return
        settings = self.node.params.current
        job.deadline_s = settings.max_question_seconds  # from acceptance: queue waiting counts
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
        tokens, limit = self.question_tokens(job.question), settings.max_question_tokens
        if tokens is not None and tokens > limit:
            self.finish_error(job, STATUS_ERROR, f"question is too long: {tokens} tokens (max_question_tokens {limit})")
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
            reserved = job.reserved_in is queue
            queued = not closing and queue.put(job, reserved=reserved)
            if queued and reserved:
                job.reserved_in = None  # the slot is the job's now
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
        """Why the latest ``frame`` is too old, or stamped too far ahead, to answer about (None when fine).

        A frame ahead of the clock has a negative age and would pass ``max_frame_age`` for ever; intake
        drops such frames, but one stored while the clock read 0 (sim time before /clock) or before
        /clock jumped back can still be here. With the clock at 0 no age can be measured: None."""
        settings = self.node.params.current
        max_age, max_ahead = settings.max_frame_age, settings.future_stamp_tolerance
        if max_age <= 0 and max_ahead <= 0:
            return None
        now = self.node.get_clock().now().nanoseconds
        if not now:
            return None
        age = (now - frame.stamp_ns) if frame.stamp_ns else (now - frame.received_ns)
        if max_ahead > 0 and -age > max_ahead * 1e9:
            return (
                f"latest frame from camera {frame.camera!r} is stamped {-age / 1e9:.1f} s ahead of this node's "
                f"clock (future_stamp_tolerance {max_ahead:g} s): are the clocks in sync?"
            )
        if max_age <= 0 or age <= max_age * 1e9:
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
                elif job.expired() and queue.remove(job):  # answered at its deadline, not when its turn comes
                    self.finish_error(job, STATUS_ERROR, self.deadline_error(job, queued=True))
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
        notes = list(job.notes) if msg.status in ANSWERED else []
        if msg.status == STATUS_NOT_FOUND:
            pipeline = self.node.pipeline  # its search settings are the ones this question ran with
            notes.append(not_found_note(msg, pipeline.search.exist_threshold if pipeline is not None else float("nan")))
        note = "; ".join(notes)
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


__all__ = ["CALLERS_TIMEOUT_S", "GOAL_SLOT_TIMEOUT_S", "GoalSlot", "Job", "JobQueue", "Requests", "new_request_id"]
