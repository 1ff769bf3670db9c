"""Replay a rosbag2 bag over DDS with rclpy, optionally recording the answers it provokes.

What ``ros2 bag play`` (and ``ros2 bag record``) do, for installs without rosbag2: the bag is
read with ``rosbags`` (mcap or sqlite3) and every message's serialized CDR bytes are published
as they are, on its topic, at the bag's timing scaled by ``rate``. One node, ``focus_replay``:
a ``SingleThreadedExecutor`` spins it in a background thread (``/clock`` timer, recording
subscriptions) while the calling thread publishes, sleeping until each message is due on the
monotonic clock.

Publishers are reliable, volatile, keep-last 10 (images keep-last 2): reliable writers reach
best-effort readers too. ``/clock`` (``clock_hz`` > 0) carries bag time like ``ros2 bag play
--clock``, so nodes with ``use_sim_time`` see the bag's stamps as "now".

Recording (``record``) writes a new bag of ``record_topics`` with receive-time log stamps, from
raw (bytes) subscriptions: images best effort (which matches every publisher), everything else
reliable. Message definitions come from the rosbags typestore plus this package's ``msg/*.msg``
(and any other package's installed ``.msg``), so the recorded bag carries the same definitions
and type hashes as ``ros2 bag record`` would write. After the bag is played, recording goes on
until ``record_timeout`` s pass or as many messages arrived on ``answer_topic`` as questions
(``std_msgs/String`` on topics ending in ``question``) were published, whichever comes first.
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from ..bags.io import STORAGES, BagError, bag_writer, ensure_type, focus_typestore, offered_qos, open_bag, resolve_bag

logger = logging.getLogger(__name__)

NODE_NAME = "focus_replay"
ANSWER_TOPIC = "/focus/answer"
DEFAULT_RECORD_TOPICS: dict[str, str] = {
    ANSWER_TOPIC: "focus_ros/msg/FocusResult",
    "/focus/relevance_overlay": "sensor_msgs/msg/Image",
}
IMAGE_TYPES = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"})
QUESTION_TYPE = "std_msgs/msg/String"
ANSWER_GRACE_S = 1.0  # recording goes on this long after the last answer
# wait_subscribers: once one topic has a subscriber, the others get this long more. A node creates
# its subscriptions together as it activates, so a topic still without one by then has none coming
# (depth or camera_info nobody remapped, a node with depth.enabled false): do not wait the full time.
SUBSCRIBER_SETTLE_S = 5.0


@dataclass
class ReplayStats:
    """What a replay did."""

    published: dict[str, int] = field(default_factory=dict)  # messages per (remapped) topic
    loops: int = 0  # complete passes over the bag
    questions: int = 0  # String messages on *question topics
    wall_s: float = 0.0  # whole call, set-up and recording tail included
    playback_s: float = 0.0  # first to last publication
    recorded: dict[str, int] = field(default_factory=dict)  # messages written (in the bag) per recorded topic
    answers: int = 0  # of them, on the answer topic
    record_path: Path | None = None
    record_received: dict[str, int] = field(default_factory=dict)  # arrived per recorded topic
    record_dropped: dict[str, int] = field(default_factory=dict)  # lost to a full recording queue
    record_error: str | None = None  # why the writer failed (recording stopped there); None: no error
    interrupted: bool = False  # stop_event ended it


# ----------------------------------------------------------------------------- types
def message_class(msgtype: str) -> Any:
    """The rclpy message class of ``pkg/msg/Name`` (or ``pkg/Name``), e.g. ``sensor_msgs.msg.Image``."""
    parts = msgtype.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise BagError(f"not a message type name: {msgtype!r}")
    pkg, kind, name = parts
    try:
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ImportError, AttributeError) as exc:
        raise BagError(
            f"message type {msgtype} is not available in this environment ({exc}); "
            f"install or source the package that defines it"
        ) from exc


# ----------------------------------------------------------------------------- bag
def parse_remap(items: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["FROM:=TO", ...]`` (or a mapping) as ``{FROM: TO}``, names made absolute."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            if ":=" not in item:
                raise ValueError(f"remap must be FROM:=TO, got {item!r}")
            src, dst = item.split(":=", 1)
            pairs.append((src, dst))
    out = {}
    for src, dst in pairs:
        src, dst = _absolute(src.strip()), _absolute(dst.strip())
        if src == "/" or dst == "/":
            raise ValueError(f"empty topic name in remap {src}:={dst}")
        out[src] = dst
    return out


def _absolute(name: str) -> str:
    return name if name.startswith("/") else "/" + name


def _parse_record_topics(topics: Iterable[str] | Mapping[str, str | None] | None) -> dict[str, str | None]:
    """``{topic: type or None}`` from ``["/t", "/t:pkg/msg/Type", ...]``; None: the defaults."""
    if topics is None:
        return dict(DEFAULT_RECORD_TOPICS)
    if isinstance(topics, Mapping):
        return {_absolute(k): v for k, v in topics.items()}
    out: dict[str, str | None] = {}
    for item in topics:
        name, _, msgtype = item.partition(":")
        name = _absolute(name.strip())
        out[name] = msgtype.strip() or DEFAULT_RECORD_TOPICS.get(name)
    return out


def _publisher_qos(msgtype: str) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=2 if msgtype in IMAGE_TYPES else 10,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


# ----------------------------------------------------------------------------- recorder
# Messages the subscription callbacks may queue ahead of the writer. The writer normally keeps up
# (an mcap chunk is 1 MiB, compressed in milliseconds); 200 covers seconds of answers and overlays
# through a disk stall while bounding memory to 200 of the largest messages.
RECORD_QUEUE_SIZE = 200
WRITER_POLL_S = 0.1  # how soon the writer sees new topics and the end of recording when idle


class Recorder:
    """Writes what raw subscriptions receive into a new bag (receive-time log stamps).

    Topics with a known type are subscribed at once; the others when their type shows up in the
    graph (checked by a timer on the node). Callbacks (on the node's executor thread) only queue
    the bytes: one writer thread owns the rosbags Writer, because a sqlite3 connection may only
    be used by the thread that opened it, and so that compressing a chunk never stalls the
    executor. The queue holds at most ``queue_size`` messages; a message arriving when it is full
    is dropped and counted in ``dropped``, never silently.

    Counts: ``received`` (arrived in a callback), ``dropped`` (queue full), ``counts`` (written:
    in the bag file). Storages buffer: an mcap message is in the file once its 1 MiB chunk is
    (flushed), a sqlite3 message once the bag is closed (rosbags commits then), so ``counts`` grows
    in steps and is final after :meth:`close`. A writer error (disk full, file too large) ends
    recording: ``error`` holds it, nothing more is queued, ``counts`` keeps what reached the file
    before it (the bag itself may lack its index then)."""

    def __init__(
        self,
        node: Any,
        path: str | Path,
        topics: Mapping[str, str | None],
        storage: str = "mcap",
        answer_topic: str = ANSWER_TOPIC,
        queue_size: int = RECORD_QUEUE_SIZE,
        on_failure: Callable[[], None] | None = None,
    ):
        if storage not in STORAGES:
            raise ValueError(f"record storage must be one of {STORAGES}, got {storage!r}")
        if queue_size < 1:
            raise ValueError(f"record queue size must be >= 1, got {queue_size}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"record output exists already: {self.path}")
        self.node = node
        self.answer_topic = _absolute(answer_topic)
        self.store = focus_typestore()
        self.queue_size = queue_size
        self.counts: dict[str, int] = {}  # written (in the file)
        self.received: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.error: Exception | None = None
        self.failed = threading.Event()  # set with error
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._closed = False
        self._closing = threading.Event()
        self._subs: list = []
        self._pending: dict[str, str | None] = {}
        self._new_topics: list[tuple[str, str, int]] = []  # for the writer thread to add, in order
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        opened = threading.Event()
        self._thread = threading.Thread(
            target=self._write_loop, args=(storage, opened), name="focus_replay_record", daemon=True
        )
        self._thread.start()
        opened.wait()
        if self.error is not None:
            raise BagError(f"cannot record to {self.path}: {self.error}")
        for topic, msgtype in topics.items():
            if msgtype:
                self._subscribe(topic, msgtype)
            else:
                self._pending[topic] = None
        self._timer = node.create_timer(0.2, self._resolve_pending) if self._pending else None

    @property
    def answers(self) -> int:
        """Messages received on the answer topic so far (the writer may still hold some)."""
        with self._lock:
            return self.received.get(self.answer_topic, 0)

    def _write_loop(self, storage: str, opened: threading.Event) -> None:
        try:
            writer = bag_writer(self.path, storage)
            writer.open()
        except Exception as exc:  # reported by __init__ as a BagError
            self.error = exc
            opened.set()
            return
        opened.set()
        conns: dict[str, Any] = {}
        unflushed: dict[str, int] = {}  # handed to the writer, not yet known to be in the file
        mark = _flush_mark(writer)
        try:
            while True:
                # Read before draining: once closing is set nothing more is subscribed or queued,
                # so an empty queue then means done (topics added meanwhile still get their connection).
                closing = self._closing.is_set()
                with self._lock:
                    new, self._new_topics = self._new_topics, []
                for topic, msgtype, depth in new:
                    conns[topic] = writer.add_connection(
                        topic, msgtype, typestore=self.store, offered_qos_profiles=[offered_qos(depth)]
                    )
                try:
                    topic, stamp, data = self._queue.get(timeout=WRITER_POLL_S)
                except queue.Empty:
                    if closing:
                        break
                    continue
                writer.write(conns[topic], stamp, data)
                unflushed[topic] = unflushed.get(topic, 0) + 1
                if (now := _flush_mark(writer)) != mark:
                    mark = now
                    _flush(writer)  # the closed chunk reaches the file before it is counted
                    self._commit(unflushed)
            writer.close()
            self._commit(unflushed)
        except Exception as exc:  # disk full, file too large, ...: stop recording, keep the counts true
            self._fail(exc)
            _abandon(writer)

    def _commit(self, unflushed: dict[str, int]) -> None:
        with self._lock:
            for topic, n in unflushed.items():
                self.counts[topic] += n
        unflushed.clear()

    def _fail(self, exc: Exception) -> None:
        with self._lock:
            self.error = exc
            self._closed = True  # the callbacks queue nothing more
        self.failed.set()
        logger.error("recording to %s failed, recording stopped: %s", self.path, exc)
        if self._on_failure is not None:
            self._on_failure()

    def _subscribe(self, topic: str, msgtype: str) -> None:
        if not ensure_type(self.store, msgtype):
            logger.warning("not recording %s: no message definition of %s", topic, msgtype)
            return
        cls = message_class(msgtype)
        image = msgtype in IMAGE_TYPES
        # Like `ros2 bag record`: reliable when every publisher offers it (a large best-effort image
        # loses fragments; on Jazzy, whose Fast DDS loses fragmented best-effort messages between
        # processes, nearly all of them), best effort for images only when a publisher offers
        # nothing else. A topic with no publisher seen yet is the node's own (relevance images,
        # reliable) more often than a best-effort camera: reliable.
        offered = [i.qos_profile.reliability for i in self.node.get_publishers_info_by_topic(topic)]
        reliable = not image or all(r == ReliabilityPolicy.RELIABLE for r in offered)
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=5 if image else 100,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.VOLATILE,
        )
        with self._lock:
            self.counts[topic] = self.received[topic] = self.dropped[topic] = 0
            self._new_topics.append((topic, msgtype, 2 if image else 10))
        self._subs.append(self.node.create_subscription(cls, topic, partial(self._on_message, topic), qos, raw=True))
        logger.info("recording %s (%s, %s)", topic, msgtype, "reliable" if reliable else "best effort")

    def _resolve_pending(self) -> None:
        known = dict(self.node.get_topic_names_and_types())
        for topic in list(self._pending):
            types = known.get(topic)
            if types:
                del self._pending[topic]
                self._subscribe(topic, types[0])
        if not self._pending and self._timer is not None:
            self._timer.cancel()

    def _on_message(self, topic: str, data: bytes) -> None:
        stamp = time.time_ns()
        with self._lock:
            if self._closed:
                return
            self.received[topic] += 1
            try:
                self._queue.put_nowait((topic, stamp, data))
            except queue.Full:
                self.dropped[topic] += 1
                first = self.dropped[topic] == 1
            else:
                return
        if first:  # every drop is counted and reported at the end; the log says when they start
            logger.warning("recording queue full (%d): dropping messages on %s", self.queue_size, topic)

    def close(self) -> None:
        """Stop recording, write what is queued and finish the bag (index, metadata.yaml); idempotent."""
        with self._lock:
            if self._closing.is_set():
                return
            self._closed = True
            self._closing.set()
        self._thread.join()
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        if self._timer is not None:
            self.node.destroy_timer(self._timer)


def _flush_mark(writer: Any) -> int:
    """How many chunks the mcap storage has written to its file (0 for sqlite3, which commits at close)."""
    return len(getattr(getattr(writer, "storage", None), "chunks", ()) or ())


def _flush(writer: Any) -> None:
    bio = getattr(getattr(writer, "storage", None), "bio", None)
    if bio is not None:
        bio.flush()  # raises the disk's error (EFBIG, ENOSPC) now, not at close


def _abandon(writer: Any) -> None:
    """Release a failed writer's file; what is already in it stays."""
    storage = getattr(writer, "storage", None)
    try:
        if storage is not None and hasattr(storage, "abort"):
            storage.abort()
    except Exception as exc:  # the disk that failed may fail again: nothing more to save
        logger.debug("closing the failed bag %s: %s", getattr(storage, "path", "?"), exc)


# ----------------------------------------------------------------------------- replay
class _BagClock:
    """Bag time as a function of the monotonic clock (what /clock publishes)."""

    def __init__(self, start_ns: int, end_ns: int, rate: float):
        self.start_ns, self.end_ns, self.rate = start_ns, end_ns, rate
        self._anchor: tuple[int, int] | None = None  # (monotonic ns, bag ns); None: paused at start

    def run_from(self, mono_ns: int, bag_ns: int) -> None:
        self._anchor = (mono_ns, bag_ns)

    def now(self) -> int:
        anchor = self._anchor
        if anchor is None:
            return self.start_ns
        return min(self.end_ns, anchor[1] + int((time.monotonic_ns() - anchor[0]) * self.rate))


def replay(
    bag: str | Path,
    *,
    rate: float = 1.0,
    loop: bool = False,
    topics: Iterable[str] | None = None,
    clock_hz: float = 0.0,
    delay: float = 0.0,
    wait_subscribers: float = 0.0,
    remap: Iterable[str] | Mapping[str, str] | None = None,
    record: str | Path | None = None,
    record_topics: Iterable[str] | Mapping[str, str | None] | None = None,
    record_storage: str = "mcap",
    record_timeout: float = 0.0,
    record_queue: int = RECORD_QUEUE_SIZE,
    answer_topic: str = ANSWER_TOPIC,
    context: Context | None = None,
    stop_event: threading.Event | None = None,
) -> ReplayStats:
    """Publish every message of ``bag`` (mcap or sqlite3 rosbag2) over DDS at its timing / ``rate``.

    ``topics``: bag topics to play (default all). ``loop``: start over at the end until
    ``stop_event`` is set (stamps are published as recorded). ``clock_hz`` > 0: publish bag time
    on ``/clock`` at that rate. ``delay``: seconds to wait before the first message.
    ``wait_subscribers``: wait up to that long until every publisher has a subscriber (once one
    has, the others get ``SUBSCRIBER_SETTLE_S`` more).
    ``remap``: ``FROM:=TO`` items or a mapping, applied to bag topic names. ``record``: path of a
    new bag of ``record_topics`` (``/topic`` or ``/topic:pkg/msg/Type``; default ``/focus/answer``
    and ``/focus/relevance_overlay``) in ``record_storage``, kept open after playback for up to
    ``record_timeout`` s or until as many messages arrived on ``answer_topic`` as questions were
    published; at most ``record_queue`` received messages wait for the writer (more are
    dropped and counted in ``record_dropped``). A writer error (disk full) stops recording and
    playback: ``record_error`` says why, ``recorded`` counts what reached the bag. ``context``: an
    initialised rclpy Context to run in (default: a private one, shut down at the end).
    ``stop_event``: set it to stop early (the recorded bag is closed properly); it is also set when
    recording fails. Raises BagError for a missing or unreadable bag, ValueError for bad arguments.
    """
    t_call = time.monotonic()
    if not rate > 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    if clock_hz < 0 or delay < 0 or wait_subscribers < 0 or record_timeout < 0:
        raise ValueError("clock_hz, delay, wait_subscribers and record_timeout must be >= 0")
    if record_queue < 1:
        raise ValueError(f"record_queue must be >= 1, got {record_queue}")
    remaps = parse_remap(remap)
    stop = stop_event or threading.Event()
    stats = ReplayStats()

    reader = open_bag(bag)
    try:
        connections = list(reader.connections)
        if topics is not None:
            wanted = {_absolute(t) for t in topics}
            missing = wanted - {c.topic for c in connections}
            if missing:
                logger.warning("topics not in the bag: %s", ", ".join(sorted(missing)))
            connections = [c for c in connections if c.topic in wanted]
        if not connections:
            raise BagError(f"nothing to replay in {resolve_bag(bag)} (no matching topics)")
        classes = {c.msgtype: message_class(c.msgtype) for c in connections}

        own_context = context is None
        if own_context:
            context = Context()
            # args=[]: rcl would otherwise parse sys.argv (the CLI's own --remap) as ROS arguments.
            rclpy.init(args=[], context=context, signal_handler_options=SignalHandlerOptions.NO)
        node = executor = thread = recorder = None
        try:
            node = rclpy.create_node(NODE_NAME, context=context)
            publishers: dict[tuple[str, str], Any] = {}
            out_topic: dict[int, str] = {}
            for c in connections:
                name = remaps.get(c.topic, c.topic)
                out_topic[c.id] = name
                if (name, c.msgtype) not in publishers:
                    publishers[(name, c.msgtype)] = node.create_publisher(
                        classes[c.msgtype], name, _publisher_qos(c.msgtype)
                    )
            pub_of = {c.id: publishers[(out_topic[c.id], c.msgtype)] for c in connections}
            is_question = {
                c.id: c.msgtype == QUESTION_TYPE and out_topic[c.id].endswith("question") for c in connections
            }

            bag_start = reader.start_time
            bag_clock = _BagClock(bag_start, max(bag_start, reader.end_time - 1), rate)
            if clock_hz > 0:
                from rclpy.time import Time
                from rosgraph_msgs.msg import Clock

                clock_pub = node.create_publisher(Clock, "/clock", QoSProfile(depth=1))
                node.create_timer(
                    1.0 / clock_hz, lambda: clock_pub.publish(Clock(clock=Time(nanoseconds=bag_clock.now()).to_msg()))
                )
            if record is not None:
                recorder = Recorder(
                    node,
                    record,
                    _parse_record_topics(record_topics),
                    record_storage,
                    answer_topic,
                    record_queue,
                    on_failure=stop.set,  # a writer error ends the run: playing on provokes answers nobody records
                )
                stats.record_path = recorder.path

            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            thread = threading.Thread(target=executor.spin, name="focus_replay_spin", daemon=True)
            thread.start()

            if wait_subscribers > 0:
                _wait_for_subscribers(publishers, wait_subscribers, stop)
            if delay > 0:
                stop.wait(delay)

            t_first = None
            while not stop.is_set():
                t0 = time.monotonic_ns()
                bag_clock.run_from(t0, bag_start)
                for conn, timestamp, data in reader.messages(connections=connections):
                    due = t0 + (timestamp - bag_start) / rate
                    wait_s = (due - time.monotonic_ns()) / 1e9
                    if wait_s > 0 and stop.wait(wait_s):
                        break
                    pub_of[conn.id].publish(bytes(data))
                    t_first = t_first or time.monotonic()
                    topic = out_topic[conn.id]
                    stats.published[topic] = stats.published.get(topic, 0) + 1
                    stats.questions += is_question[conn.id]
                else:
                    stats.loops += 1
                    logger.info("bag played (%d pass%s)", stats.loops, "" if stats.loops == 1 else "es")
                if not loop:
                    break
            if t_first is not None:
                stats.playback_s = time.monotonic() - t_first

            if recorder is not None and not stop.is_set():
                deadline = time.monotonic() + record_timeout
                while time.monotonic() < deadline and not stop.is_set():
                    if stats.questions and recorder.answers >= stats.questions:
                        # what follows the last answer (its relevance overlay) is still in flight
                        stop.wait(min(ANSWER_GRACE_S, max(0.0, deadline - time.monotonic())))
                        break
                    stop.wait(min(0.02, max(0.0, deadline - time.monotonic())))
            stats.interrupted = stop.is_set() and not (recorder is not None and recorder.failed.is_set())
        finally:
            if executor is not None:
                executor.shutdown(timeout_sec=5.0)
            if thread is not None:
                thread.join(timeout=5.0)
            if recorder is not None:
                recorder.close()
                stats.recorded = dict(recorder.counts)
                stats.record_received = dict(recorder.received)
                stats.record_dropped = dict(recorder.dropped)
                stats.record_error = None if recorder.error is None else _describe(recorder.error)
                stats.answers = stats.recorded.get(recorder.answer_topic, 0)
            if node is not None:
                node.destroy_node()
            if own_context:
                rclpy.try_shutdown(context=context)
    finally:
        reader.close()
    stats.wall_s = time.monotonic() - t_call
    return stats


def _describe(exc: Exception) -> str:
    """An error as one line: its type and message (e.g. ``OSError: [Errno 27] File too large``)."""
    return f"{type(exc).__name__}: {exc}"


def _wait_for_subscribers(
    publishers: Mapping[tuple[str, str], Any],
    timeout: float,
    stop: threading.Event,
    settle: float = SUBSCRIBER_SETTLE_S,
) -> None:
    """Wait until every publisher has a matched subscription, at most ``timeout`` s, and at most
    ``settle`` s after the first publisher got one."""
    deadline = time.monotonic() + timeout
    first_matched = False
    while True:
        lonely = sorted(name for (name, _), pub in publishers.items() if pub.get_subscription_count() == 0)
        if not lonely:
            return
        if not first_matched and len(lonely) < len(publishers):
            first_matched = True
            deadline = min(deadline, time.monotonic() + settle)
        if time.monotonic() >= deadline or stop.is_set():
            logger.warning("starting although no subscriber matched on: %s", ", ".join(lonely))
            return
        stop.wait(0.02)


__all__ = [
    "ANSWER_TOPIC",
    "DEFAULT_RECORD_TOPICS",
    "SUBSCRIBER_SETTLE_S",
    "RECORD_QUEUE_SIZE",
    "BagError",
    "ReplayStats",
    "Recorder",
    "replay",
    "open_bag",
    "resolve_bag",
    "message_class",
    "focus_typestore",
    "parse_remap",
]
