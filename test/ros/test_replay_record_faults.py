"""``focus-replay --record`` when writing goes wrong, over real DDS: the counts it reports are the
messages in the written bag (read back with the package's bag reader), a writer error (a file-size
limit: EFBIG) stops recording and exits 3 with the reason and no more counted than fits, and a
recording queue too small for a burst drops messages that are counted and reported, never silently."""

import os
import re
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import wait_for
from std_msgs.msg import String

from focus_ros.bags.demo import QUESTION_TOPIC
from focus_ros.bags.io import open_bag
from focus_ros.cli import replay as replay_cli
from focus_ros.ros.image_msgs import numpy_to_image
from focus_ros.ros.replay import RECORD_QUEUE_SIZE, replay

BUNDLED = Path(__file__).resolve().parents[1] / "data" / "demo_bag"
FILL_TOPIC, TEXT_TOPIC = "/record_faults/fill", "/record_faults/text"
RECORD_TOPICS = [f"{FILL_TOPIC}:sensor_msgs/msg/Image", f"{TEXT_TOPIC}:std_msgs/msg/String"]
SIDE = 320  # random rgb8 images: 300 KiB each, zstd cannot shrink them
IMAGE_BYTES = SIDE * SIDE * 3
RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)


class Source:
    """A test node in a private context publishing what the recorder records."""

    def __init__(self):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("record_faults_source", context=self.context)
        from sensor_msgs.msg import Image

        self.fill = self.node.create_publisher(Image, FILL_TOPIC, RELIABLE)
        self.text = self.node.create_publisher(String, TEXT_TOPIC, RELIABLE)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        rng = np.random.default_rng(7)
        self.images = [numpy_to_image(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8), "rgb8") for _ in range(4)]

    def close(self):
        self.executor.shutdown()
        self._thread.join(timeout=5)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture(scope="module")
def source():
    s = Source()
    yield s
    s.close()


def _publish_when_subscribed(source, images, texts, period=0.0, until=None):
    """Publish ``images`` fill images and ``texts`` strings (in a thread) once the recorder subscribed."""

    def run():
        if not wait_for(lambda: source.fill.get_subscription_count() and source.text.get_subscription_count(), 30.0):
            return
        time.sleep(0.3)  # discovery is mutual: let the recorder's side match the publishers too
        for i in range(max(images, texts)):
            if until is not None and until():
                return
            if i < images:
                source.fill.publish(source.images[i % len(source.images)])
            if i < texts:
                source.text.publish(String(data=f"text {i}"))
            if period:
                time.sleep(period)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _bag_counts(path: Path) -> dict[str, int]:
    reader = open_bag(path)
    try:
        counts = {c.topic: 0 for c in reader.connections}
        for conn, _, _ in reader.messages():
            counts[conn.topic] += 1
    finally:
        reader.close()
    return counts


def _record_cli(out: Path, *extra: str, fsize: int | None = None) -> subprocess.Popen:
    def limit():
        # Writes beyond the limit fail with EFBIG instead of killing the process with SIGXFSZ.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    cmd = ["focus-replay", str(BUNDLED), "--topics", QUESTION_TOPIC, "--rate", "20", "--record", str(out)]
    cmd += ["--record-topics", *RECORD_TOPICS, "--record-timeout", "15", *extra]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
        preexec_fn=limit if fsize is not None else None,
    )


def _printed_counts(stdout: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"^  (/record_faults/\w+): (\d+)", stdout, re.MULTILINE)}


def _publish_and_finish(proc, source, **publish):
    """Publish into the recording ``proc`` until it ends (killed if it outlives 60 s); its output."""
    try:
        pub = _publish_when_subscribed(source, **publish)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pub.join(timeout=10)
    return stdout, stderr


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_recorded_counts_are_the_messages_in_the_written_bag(source, tmp_path, storage):
    out = tmp_path / "counted"
    pub = _publish_when_subscribed(source, images=12, texts=40, period=0.02)
    stats = replay(
        BUNDLED,
        rate=20.0,
        topics=[QUESTION_TOPIC],
        record=out,
        record_topics=RECORD_TOPICS,
        record_storage=storage,
        record_timeout=8.0,
        context=source.context,
    )
    pub.join(timeout=10)
    assert stats.record_error is None and stats.record_dropped == {FILL_TOPIC: 0, TEXT_TOPIC: 0}
    assert stats.recorded[FILL_TOPIC] > 0 and stats.recorded[TEXT_TOPIC] > 0
    # Every received message was written, and the bag holds exactly what the counts say
    # (12 images span several 1 MiB mcap chunks: counted as each chunk reaches the file).
    assert stats.recorded == stats.record_received
    assert _bag_counts(out) == stats.recorded


def test_writer_error_stops_recording_and_exits_3_with_the_reason_and_no_more_counted_than_fits(source, tmp_path):
    limit = 3 * 2**20
    out = tmp_path / "full"
    t0 = time.monotonic()
    proc = _record_cli(out, fsize=limit)
    stdout, stderr = _publish_and_finish(
        proc, source, images=200, texts=0, period=0.05, until=lambda: proc.poll() is not None
    )
    assert proc.returncode == replay_cli.EXIT_RECORD_FAILED == 3, stderr
    assert "recording failed" in stderr and "File too large" in stderr, stderr
    # The error ended the run well before --record-timeout (15 s after the 2-s bag).
    assert time.monotonic() - t0 < 15.0
    counts = _printed_counts(stdout)
    assert set(counts) == {FILL_TOPIC, TEXT_TOPIC}, stdout
    assert counts[FILL_TOPIC] <= limit // IMAGE_BYTES, stdout
    assert (out / "full.mcap").stat().st_size <= limit
    assert "--record-queue N" in replay_cli.build_parser().format_help() and "3 recording failed" in replay_cli.__doc__


def test_a_full_recording_queue_drops_messages_counted_and_reported(source, tmp_path):
    out = tmp_path / "burst"
    proc = _record_cli(out, "--record-queue", "1")
    stdout, stderr = _publish_and_finish(proc, source, images=40, texts=2000)
    assert proc.returncode == 0, stderr
    dropped = {m[1]: int(m[2]) for m in re.finditer(r"^  (/record_faults/\w+): \d+, dropped (\d+)", stdout, re.M)}
    assert dropped and all(n > 0 for n in dropped.values()), stdout
    assert re.search(rf"^dropped {sum(dropped.values())} messages: .*--record-queue", stdout, re.M), stdout
    assert "recording queue full" in stderr
    assert "received but not written" not in stdout
    assert _bag_counts(out) == _printed_counts(stdout)
    assert RECORD_QUEUE_SIZE == replay_cli.RECORD_QUEUE_SIZE  # the CLI's default (it imports no rclpy for --help)
