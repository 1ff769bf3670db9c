"""The one thread that owns the model: questions off the queue, in order; results and RViz images out.

For each job the worker runs the pipeline (with the job's cancel check and, for an action goal,
a progress callable that sends ``query`` feedback), delivers the result through
:meth:`Requests.finish <focus_ros.ros.requests.Requests.finish>`, and publishes the relevance map
and overlay when someone subscribes to them. When idle it optionally keeps the default camera's
latest frame prefilled (``prefill_on_arrival``).

Failures stay with their question: an exception inside the model fails only that question, a frame
that does not decode is replaced by the newest good one still fresh enough, and running out of
memory (CUDA or host) is reported and the cached frame prefixes are released.

Each answered result gets its targets' 3-D points from the depth paired with its frame
(:func:`focus_ros.ros.spatial.fill_points`) before it is delivered; then the RViz markers and,
with the relevance images, their camera_info scaled to them. The worker also keeps what
/diagnostics reports about it: the last latency and the inference failures in a row.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from focus_ros.action import Query

from ..core.pipeline import free_memory, is_out_of_memory
from ..core.results import Cancelled
from . import spatial
from . import visualization as viz
from .image_msgs import rgb_to_image
from .reports import Reports, first_line, quote
from .requests import Job, Requests
from .results import STATUS_CANCELED, STATUS_ERROR, fill_result, roi_from_box

if TYPE_CHECKING:
    from .focus_node import FocusNode

# How long the worker waits on an empty queue before it looks at stopping and prefilling again.
IDLE_POLL_S = 0.5


class Worker:
    """The inference thread of a :class:`~focus_ros.ros.focus_node.FocusNode`.

    Reads the node's pipeline, frame store, parameters and relevance publishers; takes its jobs
    from, and answers them through, ``requests``."""

    def __init__(self, node: FocusNode, requests: Requests, reports: Reports):
        self.node = node
        self.requests = requests
        self.reports = reports
        self.logger = node.get_logger()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # the running thread's own (see start)
        self._left: threading.Thread | None = None  # a thread that did not stop within a join's timeout
        self.current: Job | None = None  # the question the thread is answering now
        self._prefilled_uid = 0
        # For /diagnostics (read from the executor: plain attributes, replaced whole).
        self.last_latency_s: float | None = None  # request to answer, of the last answered question
        self.failures_in_row = 0  # inference failures (exception in the model, out of memory) since the last answer
        self.last_failure = ""

    # ================================================================== thread
    @property
    def running(self) -> bool:
        """True from :meth:`start` until a stop takes the thread (:meth:`join`)."""
        return self._thread is not None

    @property
    def stuck(self) -> bool:
        """True while a thread that did not stop within a :meth:`join` timeout is still running
        (inside the model: no second thread may start on it)."""
        left = self._left
        return left is not None and left.is_alive()

    def start(self) -> None:
        # A new event per thread: one left running by a timed-out join keeps its own, set, and ends
        # after its question instead of taking questions beside the new thread.
        self._stop = stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(stop,), name="focus_worker", daemon=True)
        self._thread.start()

    def signal_stop(self) -> None:
        """Ask the thread to stop after its current question (see :meth:`join`)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (after :meth:`signal_stop` and a wake-up of the queue), at most
        ``timeout`` s; False when it is still running then (it is left to end on its own: :attr:`stuck`)."""
        thread, self._thread = self._thread, None
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        if thread.is_alive():
            self._left = thread
            return False
        return True

    def _loop(self, stop: threading.Event) -> None:
        requests = self.requests
        while not stop.is_set():
            queue = requests.queue
            job = queue.get(timeout=IDLE_POLL_S) if queue is not None else None
            if stop.is_set():
                if job is not None:
                    requests.finish_error(job, STATUS_CANCELED, "not answered: the node is stopping")
                break
            if job is None:
                self._maybe_prefill()
                continue
            self.current = job
            try:
                self._process(job)
            except Exception as exc:  # never let one question kill the worker
                self._failed(f"{type(exc).__name__}: {first_line(exc)}")
                self.reports.count("internal_errors")
                size = f"{job.frame.width}x{job.frame.height} " if job.frame is not None else ""
                self.logger.error(
                    f"unexpected error on {quote(job.question)} ({size}frame): {exc}\n{traceback.format_exc()}"
                )
                requests.finish_error(
                    job,
                    STATUS_ERROR,
                    f"internal error while answering about the {size}frame: {type(exc).__name__}: {first_line(exc)}",
                )
            finally:
                if self.current is job:
                    self.current = None

    def _failed(self, why: str) -> None:
        self.failures_in_row += 1
        self.last_failure = why

    # ================================================================== memory
    def release_memory(self) -> None:
        """After running out of memory: drop the cached frame prefixes and give freed memory back."""
        pipeline = self.node.pipeline
        self._prefilled_uid = 0
        if pipeline is not None:
            pipeline.release_memory()
        else:
            free_memory()

    @staticmethod
    def _cuda_memory_note() -> str:
        if not torch.cuda.is_available():
            return ""
        return (
            f" (CUDA: {torch.cuda.memory_allocated() / 2**20:.0f} MiB allocated, "
            f"{torch.cuda.memory_reserved() / 2**20:.0f} MiB reserved after release)"
        )

    # ================================================================== questions
    def _maybe_prefill(self) -> None:
        settings, frames, pipeline = self.node.params.current, self.node.frames, self.node.pipeline
        if not settings.prefill_on_arrival or frames is None or pipeline is None:
            return
        frame = frames.latest(settings.cameras[0])
        if frame is None or frame.uid == self._prefilled_uid:
            return
        self._prefilled_uid = frame.uid
        oom = False
        try:
            pipeline.prefix(frame.rgb(), key=frame.uid)
            self.reports.count("prefills")
        except Exception as exc:
            oom = is_out_of_memory(exc)
            self.reports.report(
                frame.topic or frame.camera,
                "prefill",
                f"prefill of the latest frame failed: {type(exc).__name__}: {first_line(exc)}",
            )
        if oom:  # outside the except block: its traceback holds the tensors
            self.reports.count("out_of_memory")
            self.release_memory()

    def _process(self, job: Job) -> None:
        requests = self.requests
        job.started = True
        if job.cancel():  # canceled, stopping, or its deadline passed while it waited
            requests.finish_stopped(job, "canceled before it started", queued=True)
            return
        pipeline, params = self.node.pipeline, self.node.params
        if params.search_changed:  # ros2 param set since the last question
            params.search_changed = False
            try:
                pipeline.search = params.search_config()
            except ValueError as exc:  # cannot happen: every change was validated
                self.logger.error(f"search settings not applied: {exc}")
        image, out_of_memory = None, ""
        try:
            image = self._decode(job)
            progress = self._progress_for(job, image.shape[1], image.shape[0]) if job.feedback else None
            result = pipeline.run(
                image, job.question, method=job.method, frame_key=job.frame.uid, cancel=job.cancel, progress=progress
            )
        except Cancelled:  # the caller's cancel, a stop, or max_question_seconds
            requests.finish_stopped(job, "canceled")
            return
        except ValueError as exc:
            requests.finish_error(job, STATUS_ERROR, str(exc))
            return
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise  # the worker loop reports it as an internal error
            out_of_memory = f"{type(exc).__name__}: {first_line(exc)}"
        if out_of_memory:
            # Released here, after the except block: until then its traceback keeps the question's
            # tensors (KV caches, activations) alive and emptying the CUDA cache would free nothing.
            del image
            self.release_memory()
            self._failed(out_of_memory)
            self.reports.count("out_of_memory")
            self.logger.error(
                f"out of memory on {quote(job.question)} about the {job.frame.width}x"
                f"{job.frame.height} frame: {out_of_memory}; cached frame prefixes released"
                f"{self._cuda_memory_note()}"
            )
            requests.finish_error(
                job,
                STATUS_ERROR,
                f"out of memory while answering about the {job.frame.width}x"
                f"{job.frame.height} frame ({out_of_memory}); cached frame "
                f"prefixes were released and the node goes on",
            )
            return
        msg = fill_result(requests.new_result(job), result, time.monotonic() - job.requested)
        job.notes = list(result.notes)  # the result message has no field for them: the summary says them
        self._fill_points(job, msg)
        self.failures_in_row = 0
        self.last_latency_s = time.monotonic() - job.requested
        requests.finish(job, msg)
        self._publish_markers(msg)
        self._publish_relevance(job, result, image)

    # ================================================================== 3-D points and markers
    def _fill_points(self, job: Job, msg: Any) -> None:
        """Each target's point, extent, pan, tilt and note; a failure here costs the points, never the answer."""
        settings = self.node.params.current
        try:
            spatial.fill_points(
                msg, job.frame, self.node.frames, settings.depth_enabled, int(settings.depth_stamp_tolerance * 1e9)
            )
        except Exception as exc:
            why = f"3-D points not computed: {type(exc).__name__}: {first_line(exc)}"
            self.reports.count("points_failed")
            self.reports.report(job.frame.topic or job.camera, "points", why)
            for target in msg.target_results:
                target.has_point, target.note = False, why

    def _publish_markers(self, msg: Any) -> None:
        pub = self.node.marker_pub
        if pub is None or pub.get_subscription_count() == 0:
            return
        try:
            pub.publish(spatial.markers(msg))
        except Exception as exc:
            self.reports.report("markers", "publish", f"markers not published: {type(exc).__name__}: {first_line(exc)}")

    def _decode(self, job: Job) -> Any:
        """The job's frame as RGB. When the latest frame does not decode, the newest good one (still
        fresh enough) is analysed instead: a camera's occasional corrupt frame costs no answer."""
        while True:
            try:
                return job.frame.rgb()
            except ValueError as exc:
                failed = job.frame
                self.reports.count("frames_undecodable")
                self.reports.report(failed.topic or failed.camera, "undecodable", str(exc))
                frames = self.node.frames
                fallback = None if job.by_stamp or frames is None else frames.latest(job.camera)
                if fallback is None or fallback is failed or self.requests.age_error(fallback):
                    raise
                job.frame = fallback

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
            except Exception as exc:  # goal gone (shutdown): the search still ends normally
                self.logger.debug(f"feedback not sent: {exc}")

        return progress

    # ================================================================== RViz images
    def _publish_relevance(self, job: Job, result: Any, image: Any) -> None:
        settings = self.node.params.current
        map_pub, overlay_pub = self.node.map_pub, self.node.overlay_pub
        if map_pub is None or overlay_pub is None or not settings.publish_relevance:
            return
        want_map = map_pub.get_subscription_count() > 0
        want_overlay = overlay_pub.get_subscription_count() > 0
        if not (want_map or want_overlay):
            self.reports.count("relevance_skipped")  # nobody listens: nothing drawn
            return
        try:
            small, scale = viz.downscale(image, settings.overlay_max_side)
            heat = None
            mapping = result.relevance_mapping
            if result.relevance_maps and mapping is not None:
                heat = viz.heat_on_frame(list(result.relevance_maps.values()), mapping, small.shape[1], small.shape[0])
            header = job.frame.header
            frames = self.node.frames
            camera_info = frames.camera_info(job.frame.camera) if frames is not None else None
            # the camera seen through the published (down-scaled) images, for RViz's Camera display
            info = (
                spatial.scaled_camera_info(camera_info, small.shape[1], small.shape[0], header) if camera_info else None
            )
            self.reports.count("relevance_computed")
            if want_map and heat is not None:
                if settings.relevance_encoding == "mono8":
                    map_pub.publish(rgb_to_image(viz.to_mono8(heat), "mono8", header))
                else:
                    map_pub.publish(rgb_to_image(viz.colorize(heat), "rgb8", header))
                self._publish_info(self.node.map_info_pub, info)
            if want_overlay:
                chosen = result.bbox
                candidates = [r.box for r in result.regions]
                overlay = viz.render_overlay(
                    small, scale, heat, candidates, chosen, job.question, result.answer, viz.target_boxes(result)
                )
                overlay_pub.publish(rgb_to_image(overlay, "rgb8", header))
                self._publish_info(self.node.overlay_info_pub, info)
        except Exception as exc:
            self.reports.report(
                "relevance", "publish", f"relevance images not published: {type(exc).__name__}: {first_line(exc)}"
            )

    @staticmethod
    def _publish_info(pub: Any, info: Any) -> None:
        if pub is not None and info is not None:
            pub.publish(info)


__all__ = ["IDLE_POLL_S", "Worker"]
