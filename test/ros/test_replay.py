"""focus_ros.ros.replay and ``focus-replay`` over real DDS: the bundled demo bag (test/data/demo_bag)
is played into subscribers of a private rclpy context: every message (colour, depth, camera_info,
questions), in order, with its original stamps and the bag's timing; topic filter, remap, a short
wait for topics nobody subscribes; /clock for use_sim_time nodes, sqlite3 bags;
recording of answers into a bag that rosbags reads back with the right definitions; clean stops
(stop event, SIGINT) and clear errors for bad bags."""

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import rclpy
from builtin_interfaces.msg import Duration
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import sample_rgb, stamp_ns, wait_for
from rosbags.highlevel import AnyReader
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest
from std_msgs.msg import String

from focus_ros.bags.demo import (
    CAMERA_INFO_TOPIC,
    COMPRESSED_TOPIC,
    DEPTH_TOPIC,
    QUESTION_TOPIC,
    START_NS,
    load_ground_truth,
    write_demo_bag,
)
from focus_ros.cli.replay import main as replay_main
from focus_ros.msg import FocusResult, Region
from focus_ros.ros.image_msgs import numpy_to_image
from focus_ros.ros.replay import SUBSCRIBER_SETTLE_S, BagError, focus_typestore, replay

BUNDLED = Path(__file__).resolve().parents[1] / "data" / "demo_bag"
TRUTH = load_ground_truth(BUNDLED)
FRAME_STAMPS = [
    START_NS + s * round(TRUTH.seconds_per_scene * 1e9) + k * round(1e9 / TRUTH.rate)
    for s in range(TRUTH.n_scenes)
    for k in range(TRUTH.frames_per_scene)
]
N_Q = len(TRUTH.questions)  # 3 a scene: shape, relation, count
# Every frame has its colour image, registered depth image and camera_info, all with its stamp.
FRAME_TOPICS = (COMPRESSED_TOPIC, DEPTH_TOPIC, CAMERA_INFO_TOPIC)
# Bag order of colour frames and questions: by time, a frame first when both fall on the same instant.
BAG_ORDER = sorted(
    [(t, 0, COMPRESSED_TOPIC) for t in FRAME_STAMPS] + [(q.time_ns, 1, QUESTION_TOPIC) for q in TRUTH.questions]
)
N_MESSAGES = len(FRAME_TOPICS) * len(FRAME_STAMPS) + N_Q
PUBLISHED = {COMPRESSED_TOPIC: len(FRAME_STAMPS), DEPTH_TOPIC: len(FRAME_STAMPS)}
PUBLISHED |= {CAMERA_INFO_TOPIC: len(FRAME_STAMPS), QUESTION_TOPIC: N_Q}
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


class Graph:
    """A test node in a private context, spun in a background thread, recording what arrives."""

    def __init__(self):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("replay_test", context=self.context)
        self.sim_node = rclpy.create_node(
            "replay_test_sim_time", context=self.context, parameter_overrides=[Parameter("use_sim_time", value=True)]
        )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.sim_node)
        self._lock = threading.Lock()
        self.received: list[tuple[float, str, object]] = []
        # Every topic of the bag has a subscriber, so wait_subscribers never waits out its timeout.
        for topic, cls in (
            (COMPRESSED_TOPIC, CompressedImage),
            (DEPTH_TOPIC, Image),
            (CAMERA_INFO_TOPIC, CameraInfo),
            (QUESTION_TOPIC, String),
            ("/remapped/question", String),
        ):
            self.node.create_subscription(cls, topic, lambda m, t=topic: self._on(t, m), RELIABLE)
        # Best effort, as rclpy's own TimeSource subscribes /clock.
        self.node.create_subscription(
            Clock,
            "/clock",
            lambda m: self._on("/clock", m),
            QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT),
        )
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _on(self, topic, msg):
        with self._lock:
            self.received.append((time.monotonic(), topic, msg))

    def take(self, topic=None):
        """What arrived so far (on ``topic``), and forget it."""
        with self._lock:
            got, self.received = self.received, []
        return [r for r in got if topic is None or r[1] == topic]

    def close(self):
        self.executor.shutdown()
        self._thread.join(timeout=5)
        self.node.destroy_node()
        self.sim_node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture(scope="module")
def graph():
    g = Graph()
    yield g
    g.close()


@pytest.fixture(autouse=True)
def _fresh(graph):
    graph.take()
    yield


def test_replay_delivers_every_message_in_order_with_original_stamps_and_bag_timing(graph):
    stats = replay(BUNDLED, rate=4.0, wait_subscribers=10.0, context=graph.context)
    wait_for(lambda: len(graph.received) >= N_MESSAGES, 10.0)
    time.sleep(0.2)
    got = graph.take()
    assert stats.published == PUBLISHED
    assert stats.loops == 1 and stats.questions == N_Q and not stats.interrupted
    # Colour frames and questions interleave as in the bag (a question is about the frames before it).
    # A frame's depth and camera_info share its instant and travel on their own topics, so they are
    # checked per topic: DDS orders samples within a topic, not across topics.
    assert [t for _, t, _ in got if t in (COMPRESSED_TOPIC, QUESTION_TOPIC)] == [topic for _, _, topic in BAG_ORDER]
    for topic in FRAME_TOPICS:
        frames = [m for _, t, m in got if t == topic]
        assert [stamp_ns(m.header) for m in frames] == FRAME_STAMPS, topic
        assert {m.header.frame_id for m in frames} == {"camera_optical_frame"}, topic
    assert {m.format for _, t, m in got if t == COMPRESSED_TOPIC} == {"jpeg"}
    depths = [m for _, t, m in got if t == DEPTH_TOPIC]
    assert {(m.encoding, m.width, m.height) for m in depths} == {("16UC1", TRUTH.depth["width"], TRUTH.depth["height"])}
    infos = [m for _, t, m in got if t == CAMERA_INFO_TOPIC]
    assert {(m.width, m.height, tuple(m.k)) for m in infos} == {
        (TRUTH.camera["width"], TRUTH.camera["height"], tuple(TRUTH.camera["k"]))
    }
    assert [m.data for _, t, m in got if t == QUESTION_TOPIC] == [q.question for q in TRUTH.questions]
    # Arrival times follow the bag time / 4 (generous bounds: a loaded 2-core machine).
    question_times = iter(q.time_ns for q in TRUTH.questions)
    t0 = got[0][0]
    for arrived, topic, msg in got:
        bag_ns = (next(question_times) if topic == QUESTION_TOPIC else stamp_ns(msg.header)) - START_NS
        assert abs((arrived - t0) - bag_ns / 4e9) < 0.5, topic
    assert 3.0 < stats.playback_s < 5.0


def test_topics_filter_plays_only_the_chosen_topics(graph):
    stats = replay(BUNDLED, rate=20.0, topics=[QUESTION_TOPIC], wait_subscribers=10.0, context=graph.context)
    wait_for(lambda: len(graph.received) >= N_Q, 10.0)
    time.sleep(0.3)
    got = graph.take()
    assert stats.published == {QUESTION_TOPIC: N_Q}
    assert [t for _, t, _ in got] == [QUESTION_TOPIC] * N_Q


def test_remap_renames_bag_topics(graph):
    stats = replay(
        BUNDLED,
        rate=20.0,
        topics=[QUESTION_TOPIC],
        remap=["/focus/question:=/remapped/question"],
        wait_subscribers=10.0,
        context=graph.context,
    )
    wait_for(lambda: len(graph.received) >= N_Q, 10.0)
    time.sleep(0.3)
    got = graph.take()
    assert stats.published == {"/remapped/question": N_Q} and stats.questions == N_Q
    assert [(t, m.data) for _, t, m in got] == [("/remapped/question", q.question) for q in TRUTH.questions]


def test_wait_subscribers_gives_topics_nobody_subscribes_only_a_short_settle_after_the_first_match(graph):
    # A node subscribes all its topics at once; a bag topic it does not take (depth nobody remapped,
    # depth.enabled false) must not hold playback for the whole --wait-subscribers time.
    stats = replay(
        BUNDLED,
        rate=20.0,
        topics=[QUESTION_TOPIC, COMPRESSED_TOPIC],
        remap=[f"{COMPRESSED_TOPIC}:=/nobody/listens"],
        wait_subscribers=120.0,
        context=graph.context,
    )
    assert stats.published == {QUESTION_TOPIC: N_Q, "/nobody/listens": len(FRAME_STAMPS)}
    assert SUBSCRIBER_SETTLE_S <= stats.wall_s < SUBSCRIBER_SETTLE_S + 15.0


def test_clock_publishes_bag_time_that_use_sim_time_nodes_follow(graph):
    stats = replay(
        BUNDLED, rate=10.0, topics=[QUESTION_TOPIC], clock_hz=50.0, wait_subscribers=10.0, context=graph.context
    )
    time.sleep(0.3)
    clock = [m.clock.sec * 1_000_000_000 + m.clock.nanosec for _, _, m in graph.take("/clock")]
    assert stats.published == {QUESTION_TOPIC: N_Q}
    assert len(clock) >= 20
    assert all(b >= a for a, b in zip(clock, clock[1:]))
    assert START_NS <= clock[0] and clock[-1] <= BAG_ORDER[-1][0]  # the bag's last message
    assert clock[-1] >= TRUTH.questions[-1].time_ns - 500_000_000
    sim_now = graph.sim_node.get_clock().now().nanoseconds
    assert START_NS <= sim_now <= BAG_ORDER[-1][0]


def test_sqlite3_bags_replay_like_mcap(graph, tmp_path):
    case = write_demo_bag(tmp_path, storage="sqlite3")
    stats = replay(case / "sqlite3", rate=20.0, wait_subscribers=10.0, context=graph.context)
    wait_for(lambda: len(graph.received) >= N_MESSAGES, 10.0)
    time.sleep(0.2)
    got = graph.take()
    assert stats.published == PUBLISHED
    for topic in FRAME_TOPICS:
        assert [stamp_ns(m.header) for _, t, m in got if t == topic] == FRAME_STAMPS, topic


def _focus_result(question: str, frame: CompressedImage | None, n: int) -> FocusResult:
    msg = FocusResult(
        question=question,
        answer=f"answer {n}",
        targets=["green object", "cup"],
        question_type=FocusResult.TYPE_SINGLE,
        confidence=0.75,
        forward_passes=7 + n,
        tokens_prefilled=123,
        latency=Duration(sec=1, nanosec=5),
        model="models/embedded",
        method="focus",
        camera="front",
        status=FocusResult.STATUS_OK,
        error="",
    )
    if frame is not None:
        msg.header = frame.header
    msg.regions = [
        Region(
            roi=RegionOfInterest(x_offset=10, y_offset=20, height=30, width=40, do_rectify=False),
            target="green object",
            confidence=0.5,
            relevance=0.25,
        )
    ]
    msg.selected_roi = RegionOfInterest(x_offset=625, y_offset=664, height=15, width=15)
    return msg


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_record_writes_answers_with_their_definitions_and_stops_once_every_question_is_answered(
    graph, tmp_path, storage
):
    """A test node answers each replayed question about the latest frame on /focus/answer; the
    recorder stops as soon as every question has its answer (well before its 30 s timeout)."""
    from ament_index_python.packages import get_package_share_directory

    answer_pub = graph.node.create_publisher(FocusResult, "/focus/answer", 10)
    overlay_pub = graph.node.create_publisher(Image, "/focus/relevance_overlay", 1)
    overlay = numpy_to_image(sample_rgb(64, 48, seed=3), "rgb8")
    frames: list = []
    waiting: list[str] = []
    sent: list[FocusResult] = []

    def answer(question: str) -> bool:
        # Like the node: about a frame of the question's scene. Frames and questions travel on two
        # topics, so under load a question can arrive before its scene's first frame: it waits.
        truth = next(q for q in TRUTH.questions if q.question == question)
        frame = next((f for f in reversed(frames) if truth.covers(stamp_ns(f.header))), None)
        if frame is None:
            return False
        sent.append(_focus_result(question, frame, len(sent)))
        overlay_pub.publish(overlay)
        answer_pub.publish(sent[-1])
        return True

    def on_frame(msg):
        frames.append(msg)
        waiting[:] = [q for q in waiting if not answer(q)]

    def on_question(msg):
        if not answer(msg.data):
            waiting.append(msg.data)

    subs = [
        graph.node.create_subscription(CompressedImage, COMPRESSED_TOPIC, on_frame, RELIABLE),
        graph.node.create_subscription(String, QUESTION_TOPIC, on_question, RELIABLE),
    ]
    out = tmp_path / "answers"
    try:
        stats = replay(
            BUNDLED,
            rate=10.0,
            wait_subscribers=10.0,
            record=out,
            record_timeout=30.0,
            record_storage=storage,
            context=graph.context,
        )
    finally:
        for sub in subs:
            graph.node.destroy_subscription(sub)
        graph.node.destroy_publisher(answer_pub)
        graph.node.destroy_publisher(overlay_pub)
    assert stats.questions == N_Q and stats.answers == N_Q and len(sent) == N_Q
    # The overlay subscription is best effort when it starts before any publisher: one may be missing.
    assert stats.recorded["/focus/answer"] == N_Q and 1 <= stats.recorded["/focus/relevance_overlay"] <= N_Q
    assert stats.wall_s < 20.0 and stats.record_path == out
    assert sorted(f.suffix for f in out.iterdir()) == sorted([".yaml", ".mcap" if storage == "mcap" else ".db3"])

    share = Path(get_package_share_directory("focus_ros"))
    installed_hash = json.loads((share / "msg" / "FocusResult.json").read_text())["type_hashes"][0]["hash_string"]
    store = focus_typestore()
    with AnyReader([out]) as reader:
        conns = {c.topic: c for c in reader.connections}
        assert conns["/focus/answer"].msgtype == "focus_ros/msg/FocusResult"
        assert conns["/focus/answer"].digest == installed_hash
        assert conns["/focus/relevance_overlay"].msgtype == "sensor_msgs/msg/Image"
        records = [
            (t, raw, reader.deserialize(raw, c.msgtype))
            for c, t, raw in reader.messages()
            if c.topic == "/focus/answer"
        ]
        images = [
            reader.deserialize(raw, c.msgtype)
            for c, _, raw in reader.messages()
            if c.topic == "/focus/relevance_overlay"
        ]
    assert len(images) == stats.recorded["/focus/relevance_overlay"]
    for img in images:
        assert (img.width, img.height, img.encoding) == (64, 48, "rgb8")
        assert bytes(img.data) == bytes(overlay.data)
    times = [t for t, _, _ in records]
    assert all(b >= a for a, b in zip(times, times[1:])) and abs(times[0] / 1e9 - time.time()) < 60
    for (_, raw, from_bag), want in zip(records, sent):
        again = store.deserialize_cdr(raw, "focus_ros/msg/FocusResult")
        for got in (from_bag, again):
            assert (got.question, got.answer, list(got.targets), got.question_type) == (
                want.question,
                want.answer,
                want.targets,
                want.question_type,
            )
            assert (got.header.frame_id, got.header.stamp.sec, got.header.stamp.nanosec) == (
                want.header.frame_id,
                want.header.stamp.sec,
                want.header.stamp.nanosec,
            )
            region = got.regions[0]
            assert (region.roi.x_offset, region.roi.width, region.target) == (10, 40, "green object")
            assert region.confidence == pytest.approx(0.5) and region.relevance == pytest.approx(0.25)
            assert (got.selected_roi.x_offset, got.selected_roi.y_offset, got.selected_roi.width) == (625, 664, 15)
            assert got.confidence == pytest.approx(0.75)
            assert (got.forward_passes, got.tokens_prefilled, got.latency.sec, got.latency.nanosec) == (
                want.forward_passes,
                123,
                1,
                5,
            )
            assert (got.model, got.method, got.camera, got.status, got.error) == (
                "models/embedded",
                "focus",
                "front",
                FocusResult.STATUS_OK,
                "",
            )
        # Each answer is about its question's scene (the frame its header names).
        assert TRUTH.for_answer(from_bag.question, stamp_ns(from_bag.header)) is not None


def test_record_timeout_bounds_the_wait_for_answers_that_never_come(graph, tmp_path):
    out = tmp_path / "silence"
    stats = replay(BUNDLED, rate=20.0, topics=[QUESTION_TOPIC], record=out, record_timeout=1.0, context=graph.context)
    assert stats.questions == N_Q and stats.answers == 0
    assert stats.wall_s - stats.playback_s >= 0.9
    with AnyReader([out]) as reader:
        assert {c.topic for c in reader.connections} == {"/focus/answer", "/focus/relevance_overlay"}
        assert reader.message_count == 0


def test_stop_event_ends_a_looping_replay_and_closes_the_recorded_bag(graph, tmp_path):
    stop = threading.Event()
    timer = threading.Timer(2.0, stop.set)
    timer.start()
    out = tmp_path / "looped"
    try:
        stats = replay(BUNDLED, rate=20.0, loop=True, record=out, context=graph.context, stop_event=stop)
    finally:
        timer.cancel()
    assert stats.interrupted and stats.loops >= 1
    assert stats.published[QUESTION_TOPIC] >= N_Q * stats.loops
    with AnyReader([out]) as reader:
        assert {c.topic for c in reader.connections} == {"/focus/answer", "/focus/relevance_overlay"}


def test_cli_stops_cleanly_on_sigint_and_closes_the_recorded_bag(graph, tmp_path):
    out = tmp_path / "sigint"
    proc = subprocess.Popen(
        ["focus-replay", str(BUNDLED), "--loop", "--rate", "20", "--record", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        wait_for(lambda: graph.take(QUESTION_TOPIC) or proc.poll() is not None, 30.0, 0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "interrupted" in stdout and f"recorded 0 messages to {out}" in stdout
    with AnyReader([out]) as reader:
        assert reader.message_count == 0 and len(reader.connections) == 2


def test_cli_exits_2_with_a_clear_message_for_a_missing_bag(tmp_path):
    missing = tmp_path / "no_such_bag"
    proc = subprocess.run(["focus-replay", str(missing)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"focus-replay: error: bag not found: {missing}"


def test_cli_exits_2_for_an_unreadable_bag(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metadata.yaml").write_text("rosbag2_bagfile_information: [")
    assert replay_main([str(bad)]) == 2
    assert f"focus-replay: error: cannot read bag {bad}" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="not a rosbag2 bag"):
        replay(tmp_path / "empty")
