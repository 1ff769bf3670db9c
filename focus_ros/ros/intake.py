"""Camera intake: each raw or compressed image message is checked and stored, nothing else.

The callbacks run on the executor, one mutually exclusive group per camera, and must cost almost
nothing per frame: a raw frame is kept as a zero-copy view of its message, a compressed one as
received, and both are converted to RGB only when a question needs them
(:mod:`focus_ros.ros.frame_store`). A frame that cannot be used is dropped with a warning
throttled per topic and problem; the camera keeps its last good frame.

Registered depth images (``depth/image``) are kept the same way, as zero-copy views, and paired
with the colour frames by stamp (within ``depth.stamp_tolerance``); ``camera_info`` is checked (a
usable calibration) and kept as the camera's latest. Every camera's frames received and dropped
are counted per camera (``<camera>/frames_received``, ``<camera>/frames_dropped``, and the same
for ``depth`` and ``camera_info``) for /diagnostics.

Bounds, all checked before a frame is stored: a message whose data is above ``max_frame_bytes``
is dropped from its length alone (raw, compressed and depth); a frame whose longer side is above
``max_image_side`` from its header; a frame stamped more than ``future_stamp_tolerance`` ahead of
the node's clock is dropped, since ``max_frame_age`` would take it as fresh for ever. That last
check is skipped while the node's clock reads 0 (``use_sim_time`` before the first ``/clock``):
there is nothing to compare with yet, and questions are answered without an age check then too.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ..io.images import (
    ImageError,
    check_frame_bytes,
    check_frame_size,
    compressed_size,
    compressed_to_rgb,
    image_to_rgb,
    image_view,
)
from .frame_store import Added, DepthImage, Frame
from .reports import Reports, first_line
from .spatial import camera_model, depth_view
from .stamps import MessageInfo, arrival_ns, stamp_ns, stamp_text

if TYPE_CHECKING:
    from .focus_node import FocusNode


class FrameIntake:
    """The image subscriptions' callbacks of a :class:`~focus_ros.ros.focus_node.FocusNode`.

    Reads the node's frame store (None while unconfigured: frames are ignored), settings snapshot
    and clock; ``wake`` tells the worker that the default camera has a new frame to prefill."""

    def __init__(self, node: FocusNode, reports: Reports, wake: Callable[[], None]):
        self.node = node
        self.reports = reports
        self.wake = wake

    def on_image(self, camera: str, topic: str, msg: Image, info: MessageInfo) -> None:
        self._guarded(topic, self._take_image, camera, topic, msg, arrival_ns(info))

    def on_compressed(self, camera: str, topic: str, msg: CompressedImage, info: MessageInfo) -> None:
        self._guarded(topic, self._take_compressed, camera, topic, msg, arrival_ns(info))

    def on_depth(self, camera: str, topic: str, msg: Image, info: MessageInfo) -> None:
        self._guarded(topic, self._take_depth, camera, topic, msg)

    def on_camera_info(self, camera: str, topic: str, msg: CameraInfo, info: MessageInfo) -> None:
        self._guarded(topic, self._take_camera_info, camera, topic, msg)

    def _guarded(self, topic: str, handler: Callable[..., None], *args: Any) -> None:
        """Run an intake handler; an unexpected exception is reported and the frame dropped. An
        exception escaping a callback would end the executor's spin, and with it the node."""
        try:
            handler(*args)
        except Exception as exc:
            self.reports.count("intake_errors")
            self.reports.report(
                topic,
                "intake_error",
                f"frame dropped after an unexpected error: "
                f"{type(exc).__name__}: {first_line(exc)}\n"
                f"{traceback.format_exc()}",
            )

    def _take_image(self, camera: str, topic: str, msg: Image, arrived_ns: int) -> None:
        settings = self.node.params.current
        try:
            # Before the data is looked at: a huge frame costs nothing beyond its message. The
            # header's size first: for a raw frame it is as cheap as the length, and says more.
            check_frame_size(int(msg.width), int(msg.height), settings.max_image_side)
            check_frame_bytes(msg.data, settings.max_frame_bytes)
            self._check_stamp(msg.header.stamp, settings.future_stamp_tolerance)
            view = image_view(msg)
        except ImageError as exc:
            self._reject(camera, topic, exc)
            return
        self._store(
            Frame(
                camera,
                stamp_ns(msg.header.stamp),
                msg.header.frame_id,
                decode=partial(image_to_rgb, msg, view),
                source="raw",
                encoding=msg.encoding,
                width=view.width,
                height=view.height,
                header=msg.header,
                topic=topic,
                received_ns=self.node.get_clock().now().nanoseconds,
                arrived_ns=arrived_ns,
            )
        )

    def _take_compressed(self, camera: str, topic: str, msg: CompressedImage, arrived_ns: int) -> None:
        settings = self.node.params.current
        try:
            check_frame_bytes(msg.data, settings.max_frame_bytes)  # before the header probe reads anything
            self._check_stamp(msg.header.stamp, settings.future_stamp_tolerance)
            width, height = compressed_size(msg)  # header only: a decompression bomb is never decoded
            check_frame_size(width, height, settings.max_image_side)
        except ImageError as exc:
            self._reject(camera, topic, exc)
            return
        self._store(
            Frame(
                camera,
                stamp_ns(msg.header.stamp),
                msg.header.frame_id,
                decode=partial(compressed_to_rgb, msg),
                source="compressed",
                encoding=msg.format,
                width=width,
                height=height,
                header=msg.header,
                topic=topic,
                received_ns=self.node.get_clock().now().nanoseconds,
                arrived_ns=arrived_ns,
            )
        )

    def _take_depth(self, camera: str, topic: str, msg: Image) -> None:
        frames = self.node.frames
        count = self.reports.count
        count(f"{camera}/depth_received")
        settings = self.node.params.current
        try:
            check_frame_size(int(msg.width), int(msg.height), settings.max_image_side)
            check_frame_bytes(msg.data, settings.max_frame_bytes)
            array, unit = depth_view(msg)
        except ImageError as exc:
            count(f"{camera}/depth_dropped")
            count(f"depth_rejected_{exc.kind}")
            self.reports.report(topic, f"depth_{exc.kind}", f"depth image dropped: {exc}")
            return
        if frames is None:
            return
        depth = DepthImage(camera, stamp_ns(msg.header.stamp), msg.header.frame_id, array, unit, msg.encoding, topic)
        if not depth.stamp_ns:
            count(f"{camera}/depth_dropped")
            self.reports.report(topic, "depth_stamp_zero", "depth image dropped: it has no stamp (0) to pair it by")
            return
        frames.add_depth(depth, int(settings.depth_stamp_tolerance * 1e9))

    def _take_camera_info(self, camera: str, topic: str, msg: CameraInfo) -> None:
        self.reports.count(f"{camera}/camera_info_received")
        try:
            camera_model(msg)
        except ValueError as exc:
            self.reports.count(f"{camera}/camera_info_dropped")
            self.reports.report(topic, "camera_info", f"camera_info ignored: {exc}")
            return
        frames = self.node.frames
        if frames is not None:
            frames.set_camera_info(camera, msg)

    def _check_stamp(self, stamp: Any, tolerance: float) -> None:
        """ImageError (``stamp_future``) when ``stamp`` is more than ``tolerance`` seconds ahead of the
        node's clock (0: never). Not while that clock reads 0 (sim time before the first /clock)."""
        frame_ns = stamp_ns(stamp)
        if tolerance <= 0 or not frame_ns:
            return
        now = self.node.get_clock().now().nanoseconds
        if now and frame_ns - now > tolerance * 1e9:
            raise ImageError(
                "stamp_future",
                f"its stamp {stamp_text(frame_ns)} is {(frame_ns - now) / 1e9:.3f} s ahead of this node's clock "
                f"({stamp_text(now)}), more than future_stamp_tolerance {tolerance:g} s (are the camera's "
                f"clock and this machine's in sync?)",
            )

    def _reject(self, camera: str, topic: str, exc: ImageError) -> None:
        self.reports.count(f"{camera}/frames_dropped")
        self.reports.count(f"{camera}/frames_received")
        if exc.kind != "stamp_future":  # a well-formed frame from a clock out of sync
            self.reports.count("frames_malformed")
        self.reports.count(f"frames_rejected_{exc.kind}")
        self.reports.report(topic, exc.kind, f"frame dropped: {exc}; camera {camera!r} keeps its last good frame")
        self.reports.count("frames_received")

    def _store(self, frame: Frame) -> None:
        frames = self.node.frames
        if frames is None:
            return
        count, report = self.reports.count, self.reports.report
        topic = frame.topic
        previous = frames.latest(frame.camera, usable_only=False)
        newest = frames.newest_stamp(frame.camera)
        settings = self.node.params.current
        added = frames.add(frame, int(settings.depth_stamp_tolerance * 1e9) if settings.depth_enabled else None)
        count(f"{frame.camera}/frames_received")
        if added is Added.OUT_OF_ORDER:
            count(f"{frame.camera}/frames_dropped")
            count("frames_out_of_order")
            report(
                topic,
                "stamp_backwards",
                f"frame dropped: its stamp {stamp_text(frame.stamp_ns)} is "
                f"{(newest - frame.stamp_ns) / 1e9:.3f} s older than the newest frame "
                f"({stamp_text(newest)}), out of order; camera {frame.camera!r} keeps its latest frame",
            )
        elif added is Added.CLOCK_RESET:
            count("clock_resets")
            report(
                topic,
                "clock_reset",
                f"stamp jumped back {(newest - frame.stamp_ns) / 1e9:.1f} s (from {stamp_text(newest)} to "
                f"{stamp_text(frame.stamp_ns)}): the sender's clock was reset (bag loop, simulator "
                f"restart?); the older frames of camera {frame.camera!r} are forgotten",
            )
        if not frame.stamp_ns:
            count("frames_unstamped")
            report(
                topic,
                "stamp_zero",
                "frame has no stamp (0): its age is taken from its arrival and it cannot be asked for by stamp",
            )
        if (
            added
            and previous is not None
            and previous.width
            and frame.width
            and (previous.width, previous.height) != (frame.width, frame.height)
        ):
            count("resolution_changes")
            report(
                topic,
                "resolution",
                f"resolution changed from {previous.width}x{previous.height} to {frame.width}x{frame.height}",
                info=True,
            )
        count("frames_received")
        if added and frame.camera == settings.cameras[0] and settings.prefill_on_arrival:
            self.wake()


__all__ = ["FrameIntake"]
