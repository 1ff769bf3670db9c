"""The FOCUS lifecycle node: cameras in; questions in (topic, service, action); answers, boxes and
relevance images out.

Threads (see README "ROS 2 node"):

* the executor (``MultiThreadedExecutor``, :meth:`FocusNode.executor_threads` threads) runs
  - image intake, one mutually exclusive callback group per camera: store the frame (a zero-copy
    view or the compressed bytes), nothing else;
  - questions (topic, ``ask`` service, ``query`` action) in one reentrant group: each request is
    checked (camera, frame, age) and put on the bounded queue at once; a service call / action
    goal then waits for *its own* result, holding one executor thread but nothing else;
  - parameters and lifecycle transitions in the node's default group;
* ONE worker thread owns the model: it takes questions off the queue in order, runs the pipeline
  (with cancel and progress callables), publishes the result, and when idle optionally prefills
  the latest frame (``prefill_on_arrival``).

Every question ends in exactly one ``focus_ros/FocusResult``: published on ``answer`` and handed
to its caller, with ``status`` OK, ERROR, CANCELED or BUSY.
"""

from __future__ import annotations

import gc
import threading
import time
import traceback
from collections import Counter, deque
from functools import partial
from typing import Any, Callable

import rclpy.lifecycle
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.service import Service
from rclpy.subscription import Subscription
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from focus_ros.action import Query
from focus_ros.msg import FocusResult as FocusResultMsg
from focus_ros.srv import Ask

from ..core.pipeline import Cancelled, FocusPipeline
from . import visualization as viz
from .conversions import compressed_to_rgb, conversion_backend, image_to_rgb, image_view, rgb_to_image
from .frame_store import Frame, FrameStore
from .params import NodeParameters, NodeSettings
from .results import (STATUS_BUSY, STATUS_CANCELED, STATUS_ERROR, STATUS_OK, base_result, error_result,
                      fill_result, roi_from_box)

NODE_NAME = "focus_node"
DEFAULT_NAMESPACE = "focus"


class Job:
    """One question on its way through the queue."""

    def __init__(self, question: str, camera: str, source: str, cancel: Callable[[], bool] | None = None,
                 feedback: Callable[[Any], None] | None = None):
        self.question = question
        self.camera = camera
        self.source = source                        # "topic", "service" or "action"
        self.user_cancel = cancel or (lambda: False)
        self.cancel: Callable[[], bool] = self.user_cancel     # the node adds its own stop check
        self.feedback = feedback
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
        self.stats: Counter[str] = Counter()
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
        try:
            settings = self.params.settings()
            model_cfg, search_cfg = self.params.configs()
        except ValueError as exc:
            return self._fail_transition(f"configure failed: invalid parameters: {exc}")
        self.get_logger().info(f"loading model {model_cfg.path!r} (family {model_cfg.family}, device "
                               f"{model_cfg.device}, dtype {model_cfg.dtype}, "
                               f"attention {model_cfg.attn_implementation})")
        t0 = time.perf_counter()
        try:
            pipeline = FocusPipeline.from_configs(model_cfg, search_cfg)
        except Exception as exc:  # OSError, ValueError, RuntimeError from transformers/torch
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return self._fail_transition(f"configure failed: cannot load model {model_cfg.path!r}: {first}")
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
                    subs.append(self.create_subscription(
                        Image, base, partial(self._on_image, camera), s.qos["image"], callback_group=group))
                if s.image_transport in ("compressed", "both"):
                    subs.append(self.create_subscription(
                        CompressedImage, f"{base}/compressed", partial(self._on_compressed, camera), s.qos["image"],
                        callback_group=group))
                self._camera_topics[camera] = [sub.topic_name for sub in subs]
                self._entities.extend(subs)
            self._entities.append(self.create_subscription(
                String, "question", self._on_question, s.qos["question"], callback_group=self._requests_group))
            self._entities.append(self.create_service(
                Ask, "ask", self._on_ask, callback_group=self._requests_group))
            self._action_server = ActionServer(
                self, Query, "query", execute_callback=self._execute_query, goal_callback=self._on_goal,
                cancel_callback=self._on_cancel, callback_group=self._requests_group)
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
            pipeline.clear_cache()
            pipeline.adapter.release()
            del pipeline
            gc.collect()
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:    # pragma: no cover
                pass

    def _stop_worker(self, reason: str) -> None:
        if not self._closing:
            self._closing_reason = reason
        self._closing = True
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

    def _destroy_entities(self) -> None:
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

    # ================================================================== intake
    def _on_image(self, camera: str, msg: Image) -> None:
        try:
            view = image_view(msg)
        except ValueError as exc:
            self.stats["frames_malformed"] += 1
            self.get_logger().warning(f"dropping a frame from camera {camera!r}: {exc}", throttle_duration_sec=5.0)
            return
        self._store(Frame(camera, _stamp_ns(msg.header.stamp), msg.header.frame_id,
                          decode=partial(image_to_rgb, msg, view), source="raw", encoding=msg.encoding,
                          width=view.width, height=view.height, header=msg.header,
                          received_ns=self.get_clock().now().nanoseconds))

    def _on_compressed(self, camera: str, msg: CompressedImage) -> None:
        self._store(Frame(camera, _stamp_ns(msg.header.stamp), msg.header.frame_id,
                          decode=partial(compressed_to_rgb, msg), source="compressed", encoding=msg.format,
                          header=msg.header, received_ns=self.get_clock().now().nanoseconds))

    def _store(self, frame: Frame) -> None:
        frames, settings, jobs = self.frames, self.settings, self._jobs
        if frames is None or settings is None:
            return
        self.stats["frames_received"] += 1
        frames.add(frame)
        if jobs is not None and frame.camera == settings.cameras[0] and self.get_parameter("prefill_on_arrival").value:
            jobs.poke()

    # ================================================================== requests
    def _on_question(self, msg: String) -> None:
        self._submit(Job(msg.data, "", "topic"))

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
        job.cancel = lambda: self._closing or job.user_cancel()
        if self._closing or self._jobs is None or self.frames is None or self.settings is None:
            self._finish_error(job, STATUS_ERROR, "the node is not active (configure and activate it first)")
            return
        self.stats["questions"] += 1
        if not job.question.strip():
            self._finish_error(job, STATUS_ERROR, "question is empty")
            return
        cameras = self.settings.cameras
        camera = job.camera or cameras[0]
        job.camera = camera
        if not self.frames.has_camera(camera):
            self._finish_error(job, STATUS_ERROR, f"unknown camera {camera!r}; this node's cameras: {list(cameras)}")
            return
        job.method = str(self.get_parameter("method").value)
        want = _stamp_ns(stamp) if stamp is not None else 0
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
            frame = self.frames.latest(camera)
            if frame is None:
                topics = ", ".join(self._camera_topics.get(camera, [])) or "(no topics)"
                self._finish_error(job, STATUS_ERROR, f"no frame yet from camera {camera!r}: nothing received on "
                                                      f"{topics}")
                return
            max_age = float(self.get_parameter("max_frame_age").value)
            if max_age > 0:
                now = self.get_clock().now().nanoseconds
                age = (now - frame.stamp_ns) if frame.stamp_ns else (now - frame.received_ns)
                if age > max_age * 1e9:
                    job.frame = frame
                    self._finish_error(job, STATUS_ERROR, f"latest frame from camera {camera!r} is {age / 1e9:.1f} s "
                                                          f"old (max_frame_age {max_age:g} s): is the camera still "
                                                          f"publishing, and are the clocks in sync?")
                    return
        job.frame = frame
        if not self._jobs.put(job):
            self.stats["busy"] += 1
            self._finish_error(job, STATUS_BUSY, f"busy: {self._jobs.size} question(s) already waiting "
                                                 f"(queue_size {self._jobs.size}); try again later")

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
        self.stats[f"status_{msg.status}"] += 1
        if msg.status == STATUS_OK:
            roi = msg.selected_roi
            self.get_logger().info(
                f"[{job.camera}] {job.question!r} -> {msg.answer!r} roi=({roi.x_offset},{roi.y_offset},"
                f"{roi.width}x{roi.height}) conf={msg.confidence:.2f} passes={msg.forward_passes} "
                f"latency={msg.latency.sec + msg.latency.nanosec * 1e-9:.2f}s via {job.source}")
        else:
            self.get_logger().warning(f"[{job.camera}] {job.question!r} via {job.source}: {msg.error}")

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
                self.get_logger().error(f"unexpected error: {exc}\n{traceback.format_exc()}")
                self._finish_error(job, STATUS_ERROR, f"internal error: {type(exc).__name__}: {exc}")

    def _maybe_prefill(self) -> None:
        if not self.get_parameter("prefill_on_arrival").value or self.frames is None or self.pipeline is None:
            return
        frame = self.frames.latest(self.settings.cameras[0])
        if frame is None or frame.uid == self._prefilled_uid:
            return
        self._prefilled_uid = frame.uid
        try:
            self.pipeline.prefix(frame.rgb(), key=frame.uid)
            self.stats["prefills"] += 1
        except Exception as exc:
            self.get_logger().warning(f"prefill of the latest frame failed: {exc}", throttle_duration_sec=5.0)

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
        try:
            image = job.frame.rgb()
        except ValueError as exc:
            self._finish_error(job, STATUS_ERROR, str(exc))
            return
        progress = self._progress_for(job, image.shape[1], image.shape[0]) if job.feedback else None
        try:
            result = pipeline.run(image, job.question, method=job.method, frame_key=job.frame.uid,
                                  cancel=job.cancel, progress=progress)
        except Cancelled:
            self._finish_error(job, STATUS_CANCELED, self._cancel_reason("canceled"))
            return
        except ValueError as exc:
            self._finish_error(job, STATUS_ERROR, str(exc))
            return
        msg = fill_result(self._new_result(job), result, time.monotonic() - job.requested)
        self._finish(job, msg)
        self._publish_relevance(job, result, image)

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
            self.stats["relevance_skipped"] += 1       # nobody listens: nothing drawn
            return
        try:
            small, scale = viz.downscale(image, int(self.get_parameter("overlay_max_side").value))
            heat = None
            mapping = result.relevance_mapping
            if result.relevance_maps and mapping is not None:
                heat = viz.heat_on_frame(list(result.relevance_maps.values()), mapping, small.shape[1], small.shape[0])
            header = job.frame.header
            self.stats["relevance_computed"] += 1
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
            self.get_logger().warning(f"relevance images not published: {exc}", throttle_duration_sec=5.0)


__all__ = ["FocusNode", "NODE_NAME", "DEFAULT_NAMESPACE"]
