"""The FOCUS lifecycle node: cameras (colour, registered depth, camera_info) in; questions in
(topics, service, action); answers, per-target boxes and 3-D points, relevance images, markers and
/diagnostics out (the contract: docs/interfaces.md).

:class:`FocusNode` is the ROS adapter. It owns the parameters (read into one settings snapshot,
:mod:`focus_ros.ros.params`), the topics, the service and the action with their QoS, and the
threads; it loads and releases the model in its lifecycle transitions. The work is done by one
component per responsibility, each converting messages at its edge:

* :class:`~focus_ros.ros.intake.FrameIntake`: image, compressed-image, ``depth/image`` and
  ``camera_info`` callbacks into the frame store (depth is paired with the colour frame by stamp
  within ``depth.stamp_tolerance``);
* :class:`~focus_ros.ros.requests.Requests`: question callbacks (the ``question`` String topic, the
  ``request`` topic of ``focus_ros/Question`` with a request id, the ``ask`` service, the ``query``
  action), their checks, the bounded queue, and exactly one ``focus_ros/FocusResult`` per question;
* :class:`~focus_ros.ros.worker.Worker`: the inference thread; results with per-target 3-D points
  (:mod:`focus_ros.ros.spatial`), ``markers``, relevance images and their camera_info out;
* :class:`~focus_ros.ros.diagnostics.Diagnostics`: the ``/diagnostics`` report.

Threads (see README "ROS 2 node"):

* the executor (``MultiThreadedExecutor``, :meth:`FocusNode.executor_threads` threads) runs
  - image intake, one mutually exclusive callback group per camera (its colour, depth and
    camera_info topics): store the frame (a zero-copy view or the compressed bytes), nothing else;
  - questions (``question`` and ``request`` topics, ``ask`` service, ``query`` action) in one
    reentrant group: each request is checked (camera, frame, age) and put on the bounded queue at
    once (a topic question is bound to the newest frame that had arrived when the middleware
    received the question, not when its callback ran, so a busy executor does not move it onto a
    later frame); a service call / action goal then waits for *its own* result, holding one
    executor thread but nothing else;
  - lifecycle transitions (``change_state``, one at a time: a model load in configure holds it),
    parameter sets and the 1 Hz ``/diagnostics`` timer (which reads counters, never the model) in
    the node's default group; ``get_state``, the other lifecycle queries and the parameter reads
    (get, list, describe) in a reentrant group of their own, so ``ros2 lifecycle get`` and ``ros2
    param get`` answer while a model loads (:meth:`FocusNode._answer_queries_during_transitions`);
* ONE worker thread owns the model: it takes questions off the queue in order, runs the pipeline
  (with cancel and progress callables), publishes the result, and when idle optionally prefills
  the latest frame (``prefill_on_arrival``).

Every question ends in exactly one ``focus_ros/FocusResult``: published on ``answer`` and handed
to its caller, carrying its ``request_id`` (the caller's, or a UUID the node made), with ``status``
OK, NOT_FOUND (answered from the best view, no target confirmed), ERROR, CANCELED or BUSY. That
holds for hostile input too (see docs/reliability.md): frames that cannot be used are dropped at
intake with a warning throttled per topic and problem (the last good frame stays in use),
questions that cannot be answered get an error at once, an exception inside the model fails only
its own question, and running out of memory (CUDA or host) is reported and the cached frame
prefixes are released.
"""

from __future__ import annotations

import json
import os
import threading
import time
from functools import partial
from typing import Any

import rclpy.lifecycle
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.srv import GetAvailableStates, GetAvailableTransitions, GetState
from rcl_interfaces.srv import DescribeParameters, GetParameters, GetParameterTypes, ListParameters
from rclpy.action import ActionServer
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.service import Service
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from focus_ros.action import Query
from focus_ros.msg import FocusResult as FocusResultMsg
from focus_ros.msg import Question
from focus_ros.srv import Ask

from ..core.config import default_model_path, download_refusal, looks_like_path
from ..core.pipeline import FocusPipeline
from ..io.images import conversion_backend
from .diagnostics import PERIOD_S as DIAGNOSTICS_PERIOD_S
from .diagnostics import Diagnostics
from .distro import JAZZY_BEST_EFFORT_NOTE, ros_distro
from .frame_store import FrameStore
from .intake import FrameIntake
from .params import NodeParameters, layer_range_problem
from .reports import Reports, first_line, quote
from .requests import Requests
from .results import STATUS_CANCELED
from .worker import Worker

NODE_NAME = "focus_node"
DEFAULT_NAMESPACE = "focus"

# rclpy sends a service response / action result after our callback returns: give those sends
# this long before the service and the action server are destroyed (deactivate, shutdown).
RESPONSE_GRACE_S = 0.25
# How long deactivate / shutdown waits for subscribers to acknowledge the last answers.
ANSWER_ACK_TIMEOUT_S = 1.0
# How long a stop waits for the worker to end: the running question sees the stop at its next
# stage boundary or verification pass; one model step that is longer (a long answer being
# generated) must not hold deactivate / shutdown for as long.
WORKER_STOP_TIMEOUT_S = 5.0
# How long the action server keeps a finished goal's result for get_result (rclpy's own default is
# 900 s, or 10 s in newer releases such as Kilted's): a slow client still gets it, results do not pile up.
QUERY_RESULT_TIMEOUT_S = 60
# Requests (ask calls, action goals / results / cancels) the middleware holds until the executor
# takes them. The services default (keep last 10) silently drops requests beyond ten concurrent
# callers, and those callers then wait forever; a BUSY answer is cheap, a lost request is not.
REQUEST_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1000,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


# Lifecycle and parameter services that only read (get_transition_graph has the GetAvailableTransitions type):
# see FocusNode._answer_queries_during_transitions.
_QUERY_SERVICES = (
    GetState,
    GetAvailableStates,
    GetAvailableTransitions,
    GetParameters,
    GetParameterTypes,
    ListParameters,
    DescribeParameters,
)


class FocusNode(rclpy.lifecycle.Node):
    """FOCUS visual question answering as a ROS 2 lifecycle node (``focus_node``)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any):
        super().__init__(node_name, **kwargs)
        self.params = NodeParameters(self)
        self.params.listeners.append(self._on_params_changed)
        self.pipeline: FocusPipeline | None = None
        self.frames: FrameStore | None = None  # set with the model: frames are stored while configured
        self.last_error = ""  # why the last transition failed (also logged)
        self.reports = Reports(self.get_logger())
        self.stats = self.reports.stats  # counters of frames, questions and problems
        # True from the start of configure until the model is released: model.* cannot change then.
        self._model_busy = False
        self._model_lock = threading.Lock()
        self.params.model_change_refusal = self._model_change_refusal
        self.params.model_layers = self._model_layers
        self.params.model_family = self._model_family
        self.requests = Requests(self, self.reports)
        self.worker = Worker(self, self.requests, self.reports)
        self.intake = FrameIntake(self, self.reports, wake=self.requests.poke)
        self.diagnostics = Diagnostics(self)
        # Created on activate, destroyed on deactivate.
        self.entities: list[Any] = []
        self.camera_topics: dict[str, list[str]] = {}
        self.answer_pub: Publisher | None = None
        self.map_pub: Publisher | None = None
        self.overlay_pub: Publisher | None = None
        self.map_info_pub: Publisher | None = None  # CameraInfo of the published relevance images
        self.overlay_info_pub: Publisher | None = None
        self.marker_pub: Publisher | None = None
        self.diagnostics_pub: Publisher | None = None
        self._action_server: ActionServer | None = None
        self._requests_group = ReentrantCallbackGroup()
        self._answer_queries_during_transitions()

    def _answer_queries_during_transitions(self) -> None:
        """Move the lifecycle queries and the parameter reads out of the default group.

        rclpy creates them in the node's default (mutually exclusive) group, where ``change_state``
        runs each transition to its end: while configure loads a model, ``get_state`` and
        ``get_parameters`` would wait for it. They only read, so they go to a reentrant group.
        ``change_state`` stays in the default group, so two transitions never run at once, and so
        do the parameter sets: configure reads ``model.*`` / ``search.*`` and then writes the
        effective ``search.*`` values back (``NodeParameters.show_effective``), and a set landing in
        between would be overwritten; a set during a load waits for it instead.

        Relies only on long-stable public attributes, the same in Humble (rclpy 3.x), Jazzy (7.1)
        and Kilted (9.x): ``Node.services``, ``Service.srv_type``, ``Service.callback_group`` (which
        the executor reads for every entity) and ``CallbackGroup.add_entity``. The lifecycle
        services come from ``LifecycleNodeMixin``, which takes a single group for all five of them
        (``change_state`` included), so they are regrouped here like the parameter services.
        """
        queries = ReentrantCallbackGroup()
        for service in self.services:
            if service.srv_type in _QUERY_SERVICES:
                service.callback_group = queries
                queries.add_entity(service)

    # ================================================================== sizing
    def executor_threads(self) -> int:
        """Executor threads this node needs: one per waiting caller, plus intake and parameters,
        and a transition (a model load holds a thread) with the queries answered meanwhile."""
        settings = self.params.current
        return settings.queue_size + 2 * len(settings.cameras) + 6

    # ================================================================== lifecycle
    def on_configure(self, state: Any) -> TransitionCallbackReturn:
        with self._model_lock:
            self._model_busy = True  # from here on model.* is what we load
        result = self._configure()
        if result != TransitionCallbackReturn.SUCCESS:
            with self._model_lock:
                self._model_busy = False  # nothing loaded: model.* may be corrected and configure retried
        return result

    def _configure(self) -> TransitionCallbackReturn:
        path = str(self.params.get("model.path"))
        if not path:
            # No model configured: the embedded default model (installed with the package).
            try:
                path = default_model_path()
            except FileNotFoundError as exc:
                return self._fail_transition(f"configure failed: model.path is empty and {exc}")
        if looks_like_path(path):
            # A local path that is not there: say so, rather than the hub client's "invalid repo id".
            # "~" is expanded first (ModelConfig loads the expanded path too).
            if not os.path.exists(os.path.expanduser(path)):
                return self._fail_transition(f"configure failed: model path {path!r} does not exist")
        # A hub id is a download: refused here, before anything could reach a hub, unless allowed.
        refusal = download_refusal(path, bool(self.params.get("model.allow_download")))
        if refusal:
            return self._fail_transition(f"configure failed: {refusal}")
        try:
            settings = self.params.settings()
            model_cfg, search_cfg = self.params.configs()
        except json.JSONDecodeError as exc:  # reading model_type from a broken config.json
            return self._fail_transition(
                f"configure failed: cannot load model {path!r}: its config.json is not valid JSON ({exc})"
            )
        except (TypeError, ValueError) as exc:
            return self._fail_transition(f"configure failed: invalid parameters: {exc}")
        self.get_logger().info(
            f"loading model {model_cfg.path!r} (family {model_cfg.family}, device "
            f"{model_cfg.device}, dtype {model_cfg.dtype}, "
            f"attention {model_cfg.attn_implementation})"
        )
        t0 = time.perf_counter()
        try:
            pipeline = FocusPipeline.from_configs(model_cfg, search_cfg, memo_bytes=settings.memo_mb * 2**20)
        except Exception as exc:  # OSError, ValueError, RuntimeError, safetensors errors ... from the loaders
            return self._fail_transition(
                f"configure failed: cannot load model {model_cfg.path!r}: {type(exc).__name__}: {first_line(exc)}"
            )
        problem = layer_range_problem(search_cfg.layer_start, search_cfg.layer_end, pipeline.adapter.num_layers)
        if problem:
            pipeline.adapter.release()
            return self._fail_transition(f"configure failed: invalid parameters: {problem}")
        self.pipeline = pipeline
        self.frames = FrameStore(list(settings.cameras), settings.frame_store_size)
        self.params.show_effective(search_cfg)
        self.last_error = ""
        self.get_logger().info(
            f"configured in {time.perf_counter() - t0:.1f} s: model {pipeline.adapter.name} "
            f"({model_cfg.family}), cameras {list(settings.cameras)}, image conversion: {conversion_backend()}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: Any) -> TransitionCallbackReturn:
        assert self.frames is not None
        if self.worker.stuck:  # a second worker thread must not run the model beside it
            return self._fail_transition(
                "activate failed: the question running at the last stop is still inside the model "
                f"(it did not stop within {WORKER_STOP_TIMEOUT_S:g} s); activate again once it has ended"
            )
        s = self.params.current
        self.requests.prepare(s.queue_size)
        try:
            self.answer_pub = self.create_publisher(FocusResultMsg, "answer", s.qos["answer"])
            self.map_pub = self.create_publisher(Image, "relevance_map", s.qos["relevance"])
            self.overlay_pub = self.create_publisher(Image, "relevance_overlay", s.qos["relevance"])
            self.map_info_pub = self.create_publisher(CameraInfo, "relevance_map/camera_info", s.qos["relevance"])
            self.overlay_info_pub = self.create_publisher(
                CameraInfo, "relevance_overlay/camera_info", s.qos["relevance"]
            )
            self.marker_pub = self.create_publisher(MarkerArray, "markers", s.qos["relevance"])
            self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
            self.entities = [self.answer_pub, self.map_pub, self.overlay_pub, self.map_info_pub, self.overlay_info_pub]
            self.entities += [self.marker_pub, self.diagnostics_pub]
            # 1 Hz of wall time (bag time may stop), in the default group; never waits for the model
            self.entities.append(
                self.create_timer(
                    DIAGNOSTICS_PERIOD_S, self.diagnostics.publish, clock=Clock(clock_type=ClockType.STEADY_TIME)
                )
            )
            for camera in s.cameras:
                base = "image" if len(s.cameras) == 1 else f"{camera}/image"
                group = MutuallyExclusiveCallbackGroup()
                subs = []
                if s.image_transport in ("raw", "both"):
                    topic = self.resolve_topic_name(base)  # with remapping: what warnings name
                    subs.append(
                        self.create_subscription(
                            Image,
                            base,
                            partial(self.intake.on_image, camera, topic),
                            s.qos["image"],
                            callback_group=group,
                        )
                    )
                if s.image_transport in ("compressed", "both"):
                    topic = self.resolve_topic_name(f"{base}/compressed")
                    subs.append(
                        self.create_subscription(
                            CompressedImage,
                            f"{base}/compressed",
                            partial(self.intake.on_compressed, camera, topic),
                            s.qos["image"],
                            callback_group=group,
                        )
                    )
                self.camera_topics[camera] = [sub.topic_name for sub in subs]  # the colour topics (error messages)
                prefix = "" if len(s.cameras) == 1 else f"{camera}/"  # registered depth and calibration
                if s.depth_enabled:
                    subs.append(
                        self.create_subscription(
                            Image,
                            f"{prefix}depth/image",
                            partial(self.intake.on_depth, camera, self.resolve_topic_name(f"{prefix}depth/image")),
                            s.qos["image"],
                            callback_group=group,
                        )
                    )
                subs.append(
                    self.create_subscription(
                        CameraInfo,
                        f"{prefix}camera_info",
                        partial(self.intake.on_camera_info, camera, self.resolve_topic_name(f"{prefix}camera_info")),
                        s.qos["image"],
                        callback_group=group,
                    )
                )
                self.entities.extend(subs)
            requests = self.requests
            self.entities.append(
                self.create_subscription(
                    String, "question", requests.on_question, s.qos["question"], callback_group=self._requests_group
                )
            )
            self.entities.append(  # a question with a request id (and a stamp, a camera): same QoS group
                self.create_subscription(
                    Question, "request", requests.on_request, s.qos["question"], callback_group=self._requests_group
                )
            )
            self.entities.append(
                self.create_service(
                    Ask, "ask", requests.on_ask, qos_profile=REQUEST_QOS, callback_group=self._requests_group
                )
            )
            self._action_server = ActionServer(
                self,
                Query,
                "query",
                execute_callback=requests.execute_query,
                goal_callback=requests.on_goal,
                handle_accepted_callback=requests.on_accepted,
                cancel_callback=requests.on_cancel,
                callback_group=self._requests_group,
                goal_service_qos_profile=REQUEST_QOS,
                result_service_qos_profile=REQUEST_QOS,
                cancel_service_qos_profile=REQUEST_QOS,
                result_timeout=QUERY_RESULT_TIMEOUT_S,
            )
        except Exception as exc:
            self._destroy_entities()
            return self._fail_transition(f"activate failed: {exc}")
        self.requests.open()
        self.worker.start()
        topics = ", ".join(t for ts in self.camera_topics.values() for t in ts)
        self.get_logger().info(f"active: listening on {topics}; ask on {self.resolve_service_name('ask')}")
        if ros_distro() == "jazzy" and s.qos["image"].reliability == ReliabilityPolicy.BEST_EFFORT:
            self.get_logger().warning(JAZZY_BEST_EFFORT_NOTE)
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: Any) -> TransitionCallbackReturn:
        self.stop_worker("the node is deactivating")
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
        return (
            "read-only while a model is loaded or loading (the node is configured): clean up first "
            "(ros2 lifecycle set <node> cleanup), then set it and configure again"
        )

    def _loaded_adapter(self) -> Any:
        """The adapter of the loaded model; None before configure and after cleanup."""
        pipeline = self.pipeline
        return pipeline.adapter if pipeline is not None and pipeline.adapter.model is not None else None

    def _model_layers(self) -> int | None:
        adapter = self._loaded_adapter()
        return adapter.num_layers if adapter is not None else None

    def _model_family(self) -> str | None:
        adapter = self._loaded_adapter()
        return adapter.family if adapter is not None else None

    def on_shutdown(self, state: Any) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: Any) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        """Stop the worker, drop topics/services and the model (any state; used at exit too)."""
        self.stop_worker("the node is shutting down")
        self._destroy_entities()
        self._release_model()

    def _fail_transition(self, message: str) -> TransitionCallbackReturn:
        self.last_error = message
        self.get_logger().error(message)
        return TransitionCallbackReturn.FAILURE

    def _release_model(self) -> None:
        pipeline, self.pipeline = self.pipeline, None
        self.frames = None
        if pipeline is not None:
            pipeline.release()
        with self._model_lock:
            self._model_busy = False

    def stop_worker(self, reason: str) -> None:
        """Refuse new questions, answer the queued ones with CANCELED, and end the worker thread."""
        requests = self.requests
        had_callers = requests.close(reason)  # service / action callers to answer before leaving
        self.worker.signal_stop()
        requests.cancel_queued(reason)
        requests.poke()
        # The running question sees the stop through its cancel check (Requests.closing, polled by
        # QuestionRun.check between stages and passes) and ends CANCELED from the worker.
        if not self.worker.join(WORKER_STOP_TIMEOUT_S):
            job = self.worker.current
            asked = f" on {quote(job.question)} ({job.request_id})" if job is not None else ""
            self.get_logger().error(
                f"the worker did not stop within {WORKER_STOP_TIMEOUT_S:g} s{asked}: that question is answered "
                "CANCELED now and its thread is left to end on its own (a model step cannot be interrupted); "
                "until it has, activate is refused and the model stays in use (cleanup drops the node's "
                "reference; its memory is freed once that thread lets go of it)"
            )
            if job is not None:  # its caller is answered now; the worker's own answer later is a no-op
                requests.finish_error(job, STATUS_CANCELED, requests.cancel_reason("canceled"))
        requests.cancel_queued(reason)  # anything queued while the worker was stopping
        # callers blocked in ask/query return now that their jobs are finished
        requests.wait_for_callers()
        if had_callers:
            # Our callbacks have returned; rclpy sends a service response right after, and an
            # action result from a task the executor schedules next. Give both the time to go out
            # before the service and the action server are destroyed.
            time.sleep(RESPONSE_GRACE_S)

    def _destroy_entities(self) -> None:
        answer_pub = self.answer_pub
        if answer_pub is not None:
            # The last answers (CANCELED ones from a stop included) must reach reliable subscribers:
            # a writer destroyed with unacknowledged samples loses them.
            try:
                answer_pub.wait_for_all_acked(Duration(seconds=ANSWER_ACK_TIMEOUT_S))
            except Exception as exc:  # pragma: no cover - context already shut down
                self.get_logger().debug(f"answers not acknowledged: {exc}")
        if self._action_server is not None:
            try:
                self._action_server.destroy()
            except Exception as exc:  # pragma: no cover - already gone with the context
                self.get_logger().debug(f"cannot destroy the action server: {exc}")
            self._action_server = None
        for entity in self.entities:
            try:
                if isinstance(entity, Publisher):
                    self.destroy_publisher(entity)
                elif isinstance(entity, Subscription):
                    self.destroy_subscription(entity)
                elif isinstance(entity, Service):
                    self.destroy_service(entity)
                elif isinstance(entity, Timer):
                    self.destroy_timer(entity)
            except Exception as exc:  # pragma: no cover - already gone with the context
                self.get_logger().debug(f"cannot destroy {entity}: {exc}")
        self.entities = []
        self.camera_topics = {}
        self.answer_pub = self.map_pub = self.overlay_pub = None
        self.map_info_pub = self.overlay_info_pub = self.marker_pub = self.diagnostics_pub = None

    def _on_params_changed(self, params: list[Any]) -> None:
        for p in params:
            if p.name.startswith("search.") and self.pipeline is not None:
                self.get_logger().info(f"{p.name} = {p.value!r} (applies to the next question)")


__all__ = ["FocusNode", "NODE_NAME", "DEFAULT_NAMESPACE", "QUERY_RESULT_TIMEOUT_S", "WORKER_STOP_TIMEOUT_S"]
