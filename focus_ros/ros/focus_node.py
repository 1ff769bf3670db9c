"""The FOCUS lifecycle node: cameras in; questions in (topic, service, action); answers, boxes and
relevance images out.

Threads (see README "ROS 2 node"):

* the executor (``MultiThreadedExecutor``, :meth:`FocusNode.executor_threads` threads) runs
  - image intake, one mutually exclusive callback group per camera: store the frame (a zero-copy
    view or the compressed bytes), nothing else;
  - questions (topic, ``ask`` service, ``query`` action) in one reentrant group: each request is
    checked (camera, frame, age) and put on the bounded queue at once (a topic question is bound
    to the newest frame that had arrived when the middleware received the question, not when its
    callback ran, so a busy executor does not move it onto a later frame); a service call / action
    goal then waits for *its own* result, holding one executor thread but nothing else;
  - parameters and lifecycle transitions in the node's default group;
* ONE worker thread owns the model: it takes questions off the queue in order, runs the pipeline
  (with cancel and progress callables), publishes the result, and when idle optionally prefills
  the latest frame (``prefill_on_arrival``).

Every question ends in exactly one ``focus_ros/FocusResult``: published on ``answer`` and handed
to its caller, with ``status`` OK, ERROR, CANCELED or BUSY. That holds for hostile input too (see
README "Reliability"): frames that cannot be used are dropped at intake with a warning throttled
per topic and problem (the last good frame stays in use), questions that cannot be answered get
an error at once, an exception inside the model fails only its own question, and running out of
memory (CUDA or host) is reported and the cached frame prefixes are released.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from collections import Counter, deque
from functools import partial
from typing import Any, Callable

import rclpy.lifecycle
import torch
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.duration import Duration
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.service import Service
from rclpy.subscription import MessageInfo, Subscription
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from focus_ros.action import Query
from focus_ros.msg import FocusResult as FocusResultMsg
from focus_ros.srv import Ask

from ..core.config import default_model_path
from ..core.pipeline import Cancelled, FocusPipeline, free_memory, is_out_of_memory
from . import visualization as viz
from .conversions import (ImageError, check_frame_size, compressed_size, compressed_to_rgb, conversion_backend,
                          image_to_rgb, image_view, rgb_to_image)
from .frame_store import Added, Frame, FrameStore
from .params import NodeParameters, NodeSettings, layer_range_problem
from .results import (STATUS_BUSY, STATUS_CANCELED, STATUS_ERROR, STATUS_OK, base_result, error_result,
                      fill_result, roi_from_box)

NODE_NAME = "focus_node"
DEFAULT_NAMESPACE = "focus"

# One warning per topic and problem at most this often; the next one says how many were suppressed.
WARN_THROTTLE_S = 5.0
# rclpy sends a service response / action result after our callback returns: give those sends
# this long before the service and the action server are destroyed (deactivate, shutdown).
RESPONSE_GRACE_S = 0.25
# How long deactivate / shutdown waits for subscribers to acknowledge the last answers.
ANSWER_ACK_TIMEOUT_S = 1.0
# Requests (ask calls, action goals / results / cancels) the middleware holds until the executor
# takes them. The services default (keep last 10) silently drops requests beyond ten concurrent
# callers, and those callers then wait forever; a BUSY answer is cheap, a lost request is not.
REQUEST_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
# Questions are quoted in logs up to this many characters.
LOG_QUESTION_CHARS = 120

def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _quote(text: str) -> str:
    """``text`` for a log line: repr (escapes control characters), cut to LOG_QUESTION_CHARS."""
    if len(text) <= LOG_QUESTION_CHARS:
        return repr(text)
    return f"{text[:LOG_QUESTION_CHARS]!r}... ({len(text)} characters)"


class Job:
    """One question on its way through the queue."""

    def __init__(self, question: str, camera: str, source: str, cancel: Callable[[], bool] | None = None,
                 feedback: Callable[[Any], None] | None = None):
        self.question = question
        self.camera = camera
        self.source = source                        # "topic", "service" or "action"
        self.by_stamp = False                       # the caller named the frame (no fallback to another)
        self.user_cancel = cancel or (lambda: False)
        self.cancel: Callable[[], bool] = self.user_cancel     # the node adds its own stop check
        self.feedback = feedback
        self.asked_ns = 0                           # middleware receive time of a topic question (0: unknown)
        self.frame: Frame | None = None
        self.method = "focus"
        self.requested = time.monotonic()
        self.started = False
        self.done = threading.Event()
        self.result: FocusResultMsg | None = None
        self._lock = threading.Lock()

    def claim_finish(self) -> bool:
        """True exactly once: the caller may deliver the result."""
        with self._lock:
            if self.done.is_set() or getattr(self, "_finishing", False):
                return False
            self._finishing = True
            return True


class _JobQueue:
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


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _arrival_ns(info: MessageInfo) -> int:
    """When the middleware received a message (system clock, ns); now when the RMW does not say."""
    return int(info.get("received_timestamp") or 0) or time.time_ns()


def _stamp_text(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


class FocusNode(rclpy.lifecycle.Node):
    """FOCUS visual question answering as a ROS 2 lifecycle node (``focus_node``)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any):
        super().__init__(node_name, **kwargs)
        self.params = NodeParameters(self)
        self.params.listeners.append(self._on_params_changed)
        self.settings: NodeSettings | None = None
        self.pipeline: FocusPipeline | None = None
        self.frames: FrameStore | None = None
        self.last_error = ""                 # why the last transition failed (also logged)
        self.stats: Counter[str] = Counter()   # updated through _count (several threads write it)
        self._stats_lock = threading.Lock()
        self._throttle: dict[tuple[str, str], tuple[float, int]] = {}
        self._throttle_lock = threading.Lock()
        # Closing and queueing happen under this lock, so no question slips into a queue that is
        # being drained (it would never be answered).
        self._gate = threading.Lock()
        # True from the start of configure until the model is released: model.* cannot change then.
        self._model_busy = False
        self._model_lock = threading.Lock()
        self.params.model_change_refusal = self._model_change_refusal
        self.params.model_layers = self._model_layers
        self._jobs: _JobQueue | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._closing = True                 # no questions until activated
        self._closing_reason = "the node is not active"
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._prefilled_uid = 0
        self._entities: list[Any] = []
        self._camera_topics: dict[str, list[str]] = {}
        self._action_server: ActionServer | None = None
        self._answer_pub = self._map_pub = self._overlay_pub = None
        self._requests_group = ReentrantCallbackGroup()

    # ================================================================== sizing
    def executor_threads(self) -> int:
        """Executor threads this node needs: one per waiting caller, plus intake and parameters."""
        queue_size = int(self.get_parameter("queue_size").value)
        cameras = len(self.get_parameter("cameras").value)
        return queue_size + 2 * cameras + 4

    # ================================================================== lifecycle
    def on_configure(self, state: Any) -> TransitionCallbackReturn:
        with self._model_lock:
            self._model_busy = True           # from here on model.* is what we load
        result = self._configure()
        if result != TransitionCallbackReturn.SUCCESS:
            with self._model_lock:
                self._model_busy = False      # nothing loaded: model.* may be corrected and configure retried
        return result

    def _configure(self) -> TransitionCallbackReturn:
        path = str(self.params.get("model.path"))
        if not path:
            # No model configured: the embedded default model (installed with the package).
            try:
                path = default_model_path()
            except FileNotFoundError as exc:
                return self._fail_transition(f"configure failed: model.path is empty and {exc}")
        if os.path.isabs(path) or path.startswith((".", "~")):
            # A local path that is not there: say so, rather than the hub client's "invalid repo id".
            if not os.path.exists(os.path.expanduser(path)):
                return self._fail_transition(f"configure failed: model path {path!r} does not exist")
        try:
            settings = self.params.settings()
            model_cfg, search_cfg = self.params.configs()
        except json.JSONDecodeError as exc:      # reading model_type from a broken config.json
            return self._fail_transition(f"configure failed: cannot load model {path!r}: its config.json is not "
                                         f"valid JSON ({exc})")
        except (TypeError, ValueError) as exc:
            return self._fail_transition(f"configure failed: invalid parameters: {exc}")
        self.get_logger().info(f"loading model {model_cfg.path!r} (family {model_cfg.family}, device "
                               f"{model_cfg.device}, dtype {model_cfg.dtype}, "
                               f"attention {model_cfg.attn_implementation})")
        t0 = time.perf_counter()
        try:
            pipeline = FocusPipeline.from_configs(model_cfg, search_cfg)
        except Exception as exc:  # OSError, ValueError, RuntimeError, safetensors errors ... from the loaders
            return self._fail_transition(f"configure failed: cannot load model {model_cfg.path!r}: "
                                         f"{type(exc).__name__}: {_first_line(exc)}")
        problem = layer_range_problem(search_cfg.layer_start, search_cfg.layer_end, pipeline.adapter.num_layers)
        if problem:
            pipeline.adapter.release()
            return self._fail_transition(f"configure failed: invalid parameters: {problem}")
        self.pipeline, self.settings = pipeline, settings
        self.frames = FrameStore(list(settings.cameras), settings.frame_store_size)
        self.params.show_effective(search_cfg)
        self.last_error = ""
        self.get_logger().info(
            f"configured in {time.perf_counter() - t0:.1f} s: model {pipeline.adapter.name} "
            f"({model_cfg.family}), cameras {list(settings.cameras)}, image conversion: {conversion_backend()}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: Any) -> TransitionCallbackReturn:
        assert self.settings is not None and self.frames is not None
        s = self.settings
        self._jobs = _JobQueue(s.queue_size)
        try:
            self._answer_pub = self.create_publisher(FocusResultMsg, "answer", s.qos["answer"])
            self._map_pub = self.create_publisher(Image, "relevance_map", s.qos["relevance"])
            self._overlay_pub = self.create_publisher(Image, "relevance_overlay", s.qos["relevance"])
            self._entities = [self._answer_pub, self._map_pub, self._overlay_pub]
            for camera in s.cameras:
                base = "image" if len(s.cameras) == 1 else f"{camera}/image"
                group = MutuallyExclusiveCallbackGroup()
                subs = []
                if s.image_transport in ("raw", "both"):
                    topic = self.resolve_topic_name(base)          # with remapping: what warnings name
                    subs.append(self.create_subscription(
                        Image, base, partial(self._on_image, camera, topic), s.qos["image"], callback_group=group))
                if s.image_transport in ("compressed", "both"):
                    topic = self.resolve_topic_name(f"{base}/compressed")
                    subs.append(self.create_subscription(
                        CompressedImage, f"{base}/compressed", partial(self._on_compressed, camera, topic),
                        s.qos["image"], callback_group=group))
                self._camera_topics[camera] = [sub.topic_name for sub in subs]
                self._entities.extend(subs)
            self._entities.append(self.create_subscription(
                String, "question", self._on_question, s.qos["question"], callback_group=self._requests_group))
            self._entities.append(self.create_service(
                Ask, "ask", self._on_ask, qos_profile=REQUEST_QOS, callback_group=self._requests_group))
            self._action_server = ActionServer(
                self, Query, "query", execute_callback=self._execute_query, goal_callback=self._on_goal,
                cancel_callback=self._on_cancel, callback_group=self._requests_group,
                goal_service_qos_profile=REQUEST_QOS, result_service_qos_profile=REQUEST_QOS,
                cancel_service_qos_profile=REQUEST_QOS)
        except Exception as exc:
            self._destroy_entities()
            return self._fail_transition(f"activate failed: {exc}")
        self._stop.clear()
        self._closing = False
        self._worker = threading.Thread(target=self._worker_loop, name="focus_worker", daemon=True)
        self._worker.start()
        topics = ", ".join(t for ts in self._camera_topics.values() for t in ts)
        self.get_logger().info(f"active: listening on {topics}; ask on {self.resolve_service_name('ask')}")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: Any) -> TransitionCallbackReturn:
        self._stop_worker("the node is deactivating")
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: Any) -> TransitionCallbackReturn:
        self._release_model()
        self.get_logger().info("cleaned up: model released")
        return TransitionCallbackReturn.SUCCESS

    def _model_change_refusal(self) -> str | None:
        with self._model_lock:
            if not self._model_busy:
                return None
        return ("read-only while a model is loaded or loading (the node is configured): clean up first "
                "(ros2 lifecycle set <node> cleanup), then set it and configure again")

    def _model_layers(self) -> int | None:
        pipeline = self.pipeline
        return pipeline.adapter.num_layers if pipeline is not None and pipeline.adapter.model is not None else None

    def on_shutdown(self, state: Any) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: Any) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        """Stop the worker, drop topics/services and the model (any state; used at exit too)."""
        self._stop_worker("the node is shutting down")
        self._destroy_entities()
        self._release_model()

    def _fail_transition(self, message: str) -> TransitionCallbackReturn:
        self.last_error = message
        self.get_logger().error(message)
        return TransitionCallbackReturn.FAILURE

    def _release_model(self) -> None:
        pipeline, self.pipeline = self.pipeline, None
        self.frames = None
        self.settings = None
        if pipeline is not None:
            pipeline.release()
        with self._model_lock:
            self._model_busy = False

    def _release_memory(self) -> None:
        """After running out of memory: drop the cached frame prefixes and give freed memory back."""
        pipeline = self.pipeline
        self._prefilled_uid = 0
        if pipeline is not None:
            pipeline.release_memory()
        else:
            free_memory()

    def _stop_worker(self, reason: str) -> None:
        with self._gate:
            if not self._closing:
                self._closing_reason = reason
            self._closing = True
        with self._waiting_lock:
            had_callers = self._waiting > 0         # service / action callers to answer before leaving
        self._stop.set()
        jobs = self._jobs
        if jobs is not None:
            for job in jobs.drain():
                self._finish_error(job, STATUS_CANCELED, f"not answered: {reason}")
            jobs.poke()
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join()
        if jobs is not None:                      # anything queued while the worker was stopping
            for job in jobs.drain():
                self._finish_error(job, STATUS_CANCELED, f"not answered: {reason}")
        # callers blocked in ask/query return now that their jobs are finished
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            with self._waiting_lock:
                if self._waiting == 0:
                    break
            time.sleep(0.01)
        if had_callers:
            # Our callbacks have returned; rclpy sends a service response right after, and an
            # action result from a task the executor schedules next. Give both the time to go out
            # before the service and the action server are destroyed.
            time.sleep(RESPONSE_GRACE_S)

    def _destroy_entities(self) -> None:
        answer_pub = self._answer_pub
        if answer_pub is not None:
            # The last answers (CANCELED ones from a stop included) must reach reliable subscribers:
            # a writer destroyed with unacknowledged samples loses them.
            try:
                answer_pub.wait_for_all_acked(Duration(seconds=ANSWER_ACK_TIMEOUT_S))
            except Exception as exc:    # pragma: no cover - context already shut down
                self.get_logger().debug(f"answers not acknowledged: {exc}")
        if self._action_server is not None:
            try:
                self._action_server.destroy()
            except Exception as exc:    # pragma: no cover - already gone with the context
                self.get_logger().debug(f"cannot destroy the action server: {exc}")
            self._action_server = None
        for entity in self._entities:
            try:
                if isinstance(entity, Publisher):
                    self.destroy_publisher(entity)
                elif isinstance(entity, Subscription):
                    self.destroy_subscription(entity)
                elif isinstance(entity, Service):
                    self.destroy_service(entity)
            except Exception as exc:    # pragma: no cover - already gone with the context
                self.get_logger().debug(f"cannot destroy {entity}: {exc}")
        self._entities = []
        self._camera_topics = {}
        self._answer_pub = self._map_pub = self._overlay_pub = None

    def _on_params_changed(self, params: list[Any]) -> None:
        for p in params:
            if p.name.startswith("search.") and self.pipeline is not None:
                self.get_logger().info(f"{p.name} = {p.value!r} (applies to the next question)")

    # ================================================================== counters and throttled reports
    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def _report(self, topic: str, kind: str, text: str, info: bool = False) -> None:
        """Log ``topic: text`` at most once per WARN_THROTTLE_S for this topic and problem ``kind``."""
        now = time.monotonic()
        with self._throttle_lock:
            last, suppressed = self._throttle.get((topic, kind), (None, 0))
            if last is not None and now - last < WARN_THROTTLE_S:
                self._throttle[(topic, kind)] = (last, suppressed + 1)
                return
            self._throttle[(topic, kind)] = (now, 0)
        more = f" ({suppressed} more like this in the last {now - last:.0f} s)" if suppressed and last else ""
        # Two call sites: rclpy refuses one call site logging at two severities.
        if info:
            self.get_logger().info(f"{topic}: {text}{more}")
        else:
            self.get_logger().warning(f"{topic}: {text}{more}")

    # ================================================================== intake
    def _on_image(self, camera: str, topic: str, msg: Image, info: MessageInfo) -> None:
        self._guarded(topic, self._take_image, camera, topic, msg, _arrival_ns(info))

    def _on_compressed(self, camera: str, topic: str, msg: CompressedImage, info: MessageInfo) -> None:
        self._guarded(topic, self._take_compressed, camera, topic, msg, _arrival_ns(info))

    def _guarded(self, topic: str, handler: Callable[..., None], *args: Any) -> None:
        """Run an intake handler; an unexpected exception is reported and the frame dropped. An
        exception escaping a callback would end the executor's spin, and with it the node."""
        try:
            handler(*args)
        except Exception as exc:
            self._count("intake_errors")
            self._report(topic, "intake_error", f"frame dropped after an unexpected error: {type(exc).__name__}: "
                                                f"{_first_line(exc)}\n{traceback.format_exc()}")

    def _take_image(self, camera: str, topic: str, msg: Image, arrived_ns: int) -> None:
        try:
            # Before the data is looked at: a huge frame costs nothing beyond its message.
            check_frame_size(int(msg.width), int(msg.height), self._max_image_side())
            view = image_view(msg)
        except ImageError as exc:
            self._reject(camera, topic, exc)
            return
        self._store(Frame(camera, _stamp_ns(msg.header.stamp), msg.header.frame_id,
                          decode=partial(image_to_rgb, msg, view), source="raw", encoding=msg.encoding,
                          width=view.width, height=view.height, header=msg.header, topic=topic,
                          received_ns=self.get_clock().now().nanoseconds, arrived_ns=arrived_ns))

    def _take_compressed(self, camera: str, topic: str, msg: CompressedImage, arrived_ns: int) -> None:
        try:
            width, height = compressed_size(msg)       # header only: a decompression bomb is never decoded
            check_frame_size(width, height, self._max_image_side())
        except ImageError as exc:
            self._reject(camera, topic, exc)
            return
        self._store(Frame(camera, _stamp_ns(msg.header.stamp), msg.header.frame_id,
                          decode=partial(compressed_to_rgb, msg), source="compressed", encoding=msg.format,
                          width=width, height=height, header=msg.header, topic=topic,
                          received_ns=self.get_clock().now().nanoseconds, arrived_ns=arrived_ns))

    def _max_image_side(self) -> int:
        return int(self.get_parameter("max_image_side").value)

    def _reject(self, camera: str, topic: str, exc: ImageError) -> None:
        self._count("frames_malformed")
        self._count(f"frames_rejected_{exc.kind}")
        self._report(topic, exc.kind, f"frame dropped: {exc}; camera {camera!r} keeps its last good frame")
        self._count("frames_received")

    def _store(self, frame: Frame) -> None:
        frames, settings, jobs = self.frames, self.settings, self._jobs
        if frames is None or settings is None:
            return
        topic = frame.topic
        previous = frames.latest(frame.camera, usable_only=False)
        newest = frames.newest_stamp(frame.camera)
        added = frames.add(frame)
        if added is Added.OUT_OF_ORDER:
            self._count("frames_out_of_order")
            self._report(topic, "stamp_backwards",
                         f"frame dropped: its stamp {_stamp_text(frame.stamp_ns)} is "
                         f"{(newest - frame.stamp_ns) / 1e9:.3f} s older than the newest frame "
                         f"({_stamp_text(newest)}), out of order; camera {frame.camera!r} keeps its latest frame")
        elif added is Added.CLOCK_RESET:
            self._count("clock_resets")
            self._report(topic, "clock_reset",
                         f"stamp jumped back {(newest - frame.stamp_ns) / 1e9:.1f} s (from {_stamp_text(newest)} to "
                         f"{_stamp_text(frame.stamp_ns)}): the sender's clock was reset (bag loop, simulator "
                         f"restart?); the older frames of camera {frame.camera!r} are forgotten")
        if not frame.stamp_ns:
            self._count("frames_unstamped")
            self._report(topic, "stamp_zero", "frame has no stamp (0): its age is taken from its arrival and it "
                                              "cannot be asked for by stamp")
        if added and previous is not None and previous.width and frame.width and \
                (previous.width, previous.height) != (frame.width, frame.height):
            self._count("resolution_changes")
            self._report(topic, "resolution", f"resolution changed from {previous.width}x{previous.height} to "
                                              f"{frame.width}x{frame.height}", info=True)
        self._count("frames_received")
        if added and jobs is not None and frame.camera == settings.cameras[0] and \
                self.get_parameter("prefill_on_arrival").value:
            jobs.poke()

    # ================================================================== requests
    def _on_question(self, msg: String, info: MessageInfo) -> None:
        job = Job(msg.data, "", "topic")
        # A topic question carries no stamp: it is about the frame shown when it arrived, even when a
        # busy executor runs this callback after newer frames came in.
        job.asked_ns = _arrival_ns(info)
        self._submit(job)

    def _on_ask(self, request: Ask.Request, response: Ask.Response) -> Ask.Response:
        job = Job(request.question, request.camera, "service")
        self._submit(job, request.stamp)
        self._wait(job)
        response.result = job.result
        response.success = job.result.status == STATUS_OK
        response.message = job.result.answer if response.success else job.result.error
        return response

    def _on_goal(self, goal_request: Any) -> GoalResponse:
        return GoalResponse.REJECT if self._closing else GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle: Any) -> CancelResponse:
        return CancelResponse.ACCEPT

    def _execute_query(self, goal_handle: Any) -> Query.Result:
        goal = goal_handle.request
        job = Job(goal.question, goal.camera, "action", cancel=lambda: goal_handle.is_cancel_requested,
                  feedback=goal_handle.publish_feedback)
        self._submit(job, goal.stamp)
        self._wait(job, withdraw=lambda: goal_handle.is_cancel_requested)
        result = job.result
        try:
            if result.status == STATUS_OK:
                goal_handle.succeed()
            elif result.status == STATUS_CANCELED and goal_handle.is_cancel_requested:
                goal_handle.canceled()
            else:
                goal_handle.abort()
        except Exception as exc:     # the goal handle may be gone when shutting down
            self.get_logger().debug(f"cannot finish goal: {exc}")
        return Query.Result(result=result)

    def _submit(self, job: Job, stamp: Any = None) -> None:
        """Check the request and queue it; any problem finishes the job at once with one error."""
        try:
            self._check_and_queue(job, stamp)
        except Exception as exc:      # a bug must cost this question an error, not the caller its answer
            self._count("internal_errors")
            self.get_logger().error(f"unexpected error taking {_quote(job.question)}: {exc}\n{traceback.format_exc()}")
            self._finish_error(job, STATUS_ERROR, f"internal error: {type(exc).__name__}: {_first_line(exc)}")

    def _check_and_queue(self, job: Job, stamp: Any) -> None:
        job.cancel = lambda: self._closing or job.user_cancel()
        if self._closing or self._jobs is None or self.frames is None or self.settings is None:
            self._finish_error(job, STATUS_ERROR, "the node is not active (configure and activate it first)")
            return
        self._count("questions")
        if not job.question.strip():
            self._finish_error(job, STATUS_ERROR, "question is empty")
            return
        limit = int(self.get_parameter("max_question_length").value)
        if len(job.question) > limit:
            self._finish_error(job, STATUS_ERROR, f"question is too long: {len(job.question)} characters "
                                                  f"(max_question_length {limit})")
            return
        cameras = self.settings.cameras
        camera = job.camera or cameras[0]
        job.camera = camera
        if not self.frames.has_camera(camera):
            self._finish_error(job, STATUS_ERROR, f"unknown camera {camera!r}; this node's cameras: {list(cameras)}")
            return
        job.method = str(self.get_parameter("method").value)
        want = _stamp_ns(stamp) if stamp is not None else 0
        job.by_stamp = bool(want)
        if want:
            tol = int(float(self.get_parameter("stamp_tolerance").value) * 1e9)
            frame = self.frames.find(camera, want, tol)
            if frame is None:
                stamps = self.frames.stamps(camera)
                have = (f"stored: {len(stamps)} frame(s), {_stamp_text(stamps[0])} .. {_stamp_text(stamps[-1])}"
                        if stamps else "no frame stored yet")
                self._finish_error(job, STATUS_ERROR, f"no frame with stamp {_stamp_text(want)} from camera "
                                                      f"{camera!r} ({have})")
                return
        else:
            frame = self.frames.latest(camera, arrived_by=job.asked_ns)
            if frame is None:
                failed = self.frames.latest(camera, usable_only=False)
                if failed is not None:
                    self._finish_error(job, STATUS_ERROR, f"no usable frame from camera {camera!r}: "
                                                          f"{failed._error or 'its frames could not be decoded'}")
                    return
                topics = ", ".join(self._camera_topics.get(camera, [])) or "(no topics)"
                self._finish_error(job, STATUS_ERROR, f"no frame yet from camera {camera!r}: nothing received on "
                                                      f"{topics}")
                return
            age_error = self._age_error(frame)
            if age_error:
                job.frame = frame
                self._finish_error(job, STATUS_ERROR, age_error)
                return
        job.frame = frame
        with self._gate:                  # not while a stop drains the queue (see _stop_worker)
            closing = self._closing
            queued = not closing and self._jobs.put(job)
        if closing:
            self._finish_error(job, STATUS_CANCELED, f"not answered: {self._closing_reason}")
        elif not queued:
            self._count("busy")
            self._finish_error(job, STATUS_BUSY, f"busy: {self._jobs.size} question(s) already waiting "
                                                 f"(queue_size {self._jobs.size}); try again later")

    def _age_error(self, frame: Frame) -> str | None:
        """Why the latest ``frame`` is too old to answer about (None when it is fresh enough)."""
        max_age = float(self.get_parameter("max_frame_age").value)
        if max_age <= 0:
            return None
        now = self.get_clock().now().nanoseconds
        age = (now - frame.stamp_ns) if frame.stamp_ns else (now - frame.received_ns)
        if age <= max_age * 1e9:
            return None
        return (f"latest frame from camera {frame.camera!r} is {age / 1e9:.1f} s old (max_frame_age {max_age:g} s): "
                f"is the camera still publishing, and are the clocks in sync?")

    def _wait(self, job: Job, withdraw: Callable[[], bool] | None = None) -> None:
        """Block this executor thread (only) until ``job`` has its result."""
        with self._waiting_lock:
            self._waiting += 1
        try:
            while not job.done.wait(0.05):
                jobs = self._jobs
                if jobs is None:
                    continue
                if withdraw is not None and withdraw() and jobs.remove(job):
                    self._finish_error(job, STATUS_CANCELED, "canceled while waiting in the queue")
                elif self._closing and self._worker is None and jobs.remove(job):     # queued as the node stopped
                    self._finish_error(job, STATUS_CANCELED, f"not answered: {self._closing_reason}")
        finally:
            with self._waiting_lock:
                self._waiting -= 1

    # ================================================================== results
    def _new_result(self, job: Job) -> FocusResultMsg:
        header = job.frame.header if job.frame is not None else None
        model = self.pipeline.adapter.name if self.pipeline is not None else ""
        return base_result(job.question, job.camera, header, model, job.method)

    def _finish_error(self, job: Job, status: int, error: str) -> None:
        msg = error_result(self._new_result(job), status, error, time.monotonic() - job.requested)
        self._finish(job, msg)

    def _finish(self, job: Job, msg: FocusResultMsg) -> None:
        if not job.claim_finish():
            return
        job.result = msg
        pub = self._answer_pub
        if pub is not None:
            try:
                pub.publish(msg)
            except Exception as exc:     # context already shut down
                self.get_logger().debug(f"cannot publish the answer: {exc}")
        job.done.set()
        self._count(f"status_{msg.status}")
        if msg.status == STATUS_OK:
            roi = msg.selected_roi
            self.get_logger().info(
                f"[{job.camera}] {_quote(job.question)} -> {msg.answer!r} roi=({roi.x_offset},{roi.y_offset},"
                f"{roi.width}x{roi.height}) conf={msg.confidence:.2f} passes={msg.forward_passes} "
                f"latency={msg.latency.sec + msg.latency.nanosec * 1e-9:.2f}s via {job.source}")
        elif msg.status == STATUS_BUSY:     # a flood of questions must not flood the log as well
            self._report("questions", "busy", f"{_quote(job.question)} via {job.source}: {msg.error}")
        else:
            self.get_logger().warning(f"[{job.camera}] {_quote(job.question)} via {job.source}: {msg.error}")

    # ================================================================== worker
    def _worker_loop(self) -> None:
        while not self._stop.is_set():
            job = self._jobs.get(timeout=0.5) if self._jobs is not None else None
            if self._stop.is_set():
                if job is not None:
                    self._finish_error(job, STATUS_CANCELED, "not answered: the node is stopping")
                break
            if job is None:
                self._maybe_prefill()
                continue
            try:
                self._process(job)
            except Exception as exc:        # never let one question kill the worker
                self._count("internal_errors")
                size = f"{job.frame.width}x{job.frame.height} " if job.frame is not None else ""
                self.get_logger().error(f"unexpected error on {_quote(job.question)} ({size}frame): {exc}\n"
                                        f"{traceback.format_exc()}")
                self._finish_error(job, STATUS_ERROR, f"internal error while answering about the {size}frame: "
                                                      f"{type(exc).__name__}: {_first_line(exc)}")

    def _maybe_prefill(self) -> None:
        if not self.get_parameter("prefill_on_arrival").value or self.frames is None or self.pipeline is None:
            return
        frame = self.frames.latest(self.settings.cameras[0])
        if frame is None or frame.uid == self._prefilled_uid:
            return
        self._prefilled_uid = frame.uid
        oom = False
        try:
            self.pipeline.prefix(frame.rgb(), key=frame.uid)
            self._count("prefills")
        except Exception as exc:
            oom = is_out_of_memory(exc)
            self._report(frame.topic or frame.camera, "prefill", f"prefill of the latest frame failed: "
                                                                 f"{type(exc).__name__}: {_first_line(exc)}")
        if oom:                              # outside the except block: its traceback holds the tensors
            self._count("out_of_memory")
            self._release_memory()

    def _process(self, job: Job) -> None:
        job.started = True
        if job.cancel():
            self._finish_error(job, STATUS_CANCELED, self._cancel_reason("canceled before it started"))
            return
        pipeline = self.pipeline
        if self.params.search_changed:              # ros2 param set since the last question
            self.params.search_changed = False
            try:
                pipeline.search = self.params.search_config()
            except ValueError as exc:        # cannot happen: every change was validated
                self.get_logger().error(f"search settings not applied: {exc}")
        image, out_of_memory = None, ""
        try:
            image = self._decode(job)
            progress = self._progress_for(job, image.shape[1], image.shape[0]) if job.feedback else None
            result = pipeline.run(image, job.question, method=job.method, frame_key=job.frame.uid,
                                  cancel=job.cancel, progress=progress)
        except Cancelled:
            self._finish_error(job, STATUS_CANCELED, self._cancel_reason("canceled"))
            return
        except ValueError as exc:
            self._finish_error(job, STATUS_ERROR, str(exc))
            return
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise                         # the worker loop reports it as an internal error
            out_of_memory = f"{type(exc).__name__}: {_first_line(exc)}"
        if out_of_memory:
            # Released here, after the except block: until then its traceback keeps the question's
            # tensors (KV caches, activations) alive and emptying the CUDA cache would free nothing.
            del image
            self._release_memory()
            self._count("out_of_memory")
            self.get_logger().error(f"out of memory on {_quote(job.question)} about the {job.frame.width}x"
                                    f"{job.frame.height} frame: {out_of_memory}; cached frame prefixes released"
                                    f"{self._cuda_memory_note()}")
            self._finish_error(job, STATUS_ERROR, f"out of memory while answering about the {job.frame.width}x"
                                                  f"{job.frame.height} frame ({out_of_memory}); cached frame "
                                                  f"prefixes were released and the node goes on")
            return
        msg = fill_result(self._new_result(job), result, time.monotonic() - job.requested)
        self._finish(job, msg)
        self._publish_relevance(job, result, image)

    def _decode(self, job: Job) -> Any:
        """The job's frame as RGB. When the latest frame does not decode, the newest good one (still
        fresh enough) is analysed instead: a camera's occasional corrupt frame costs no answer."""
        while True:
            try:
                return job.frame.rgb()
            except ValueError as exc:
                failed = job.frame
                self._count("frames_undecodable")
                self._report(failed.topic or failed.camera, "undecodable", str(exc))
                fallback = None if job.by_stamp or self.frames is None else self.frames.latest(job.camera)
                if fallback is None or fallback is failed or self._age_error(fallback):
                    raise
                job.frame = fallback

    def _cuda_memory_note(self) -> str:
        if not torch.cuda.is_available():
            return ""
        return (f" (CUDA: {torch.cuda.memory_allocated() / 2**20:.0f} MiB allocated, "
                f"{torch.cuda.memory_reserved() / 2**20:.0f} MiB reserved after release)")

    def _cancel_reason(self, user_reason: str) -> str:
        return f"not answered: {self._closing_reason}" if self._closing else user_reason

    def _progress_for(self, job: Job, width: int, height: int) -> Callable[..., None]:
        verified = 0

        def progress(stage: str, step: int, total: int, region: Any) -> None:
            nonlocal verified
            fb = Query.Feedback(stage=stage, step=1, total_steps=1, candidate_confidence=-1.0)
            if stage == "verify":
                verified += 1
                fb.step, fb.total_steps = verified, max(int(total), verified)
            if region is not None:
                fb.candidate_roi = roi_from_box(region.box, width, height)
                fb.candidate_confidence = float(region.confidence)
            try:
                job.feedback(fb)
            except Exception as exc:     # goal gone (shutdown): the search still ends normally
                self.get_logger().debug(f"feedback not sent: {exc}")

        return progress

    # ================================================================== RViz images
    def _publish_relevance(self, job: Job, result: Any, image: Any) -> None:
        map_pub, overlay_pub = self._map_pub, self._overlay_pub
        if map_pub is None or overlay_pub is None or not self.get_parameter("publish_relevance").value:
            return
        want_map = map_pub.get_subscription_count() > 0
        want_overlay = overlay_pub.get_subscription_count() > 0
        if not (want_map or want_overlay):
            self._count("relevance_skipped")       # nobody listens: nothing drawn
            return
        try:
            small, scale = viz.downscale(image, int(self.get_parameter("overlay_max_side").value))
            heat = None
            mapping = result.relevance_mapping
            if result.relevance_maps and mapping is not None:
                heat = viz.heat_on_frame(list(result.relevance_maps.values()), mapping, small.shape[1], small.shape[0])
            header = job.frame.header
            self._count("relevance_computed")
            if want_map and heat is not None:
                if self.get_parameter("relevance_encoding").value == "mono8":
                    map_pub.publish(rgb_to_image(viz.to_mono8(heat), "mono8", header))
                else:
                    map_pub.publish(rgb_to_image(viz.colorize(heat), "rgb8", header))
            if want_overlay:
                chosen = result.bbox
                candidates = [r.box for r in result.regions]
                overlay = viz.render_overlay(small, scale, heat, candidates, chosen, job.question, result.answer)
                overlay_pub.publish(rgb_to_image(overlay, "rgb8", header))
        except Exception as exc:
            self._report("relevance", "publish", f"relevance images not published: {type(exc).__name__}: "
                                                 f"{_first_line(exc)}")


__all__ = ["FocusNode", "NODE_NAME", "DEFAULT_NAMESPACE", "is_out_of_memory"]
