#!/usr/bin/env python3
"""Benchmark of the ROS side: 12 MP frame conversion, and the ``ask`` service round trip on an idle node.

    source scripts/env.sh
    python scripts/bench_node.py [--model models/miniatures/llava] [--repeats 7]

Prints one table (median / min over the repeats, milliseconds); no assertions. The round trip is
measured from a client node to the real FocusNode over DDS (both in this process, on a
multi-threaded executor), for a request the node refuses at once (pure service + node overhead)
and for real questions with the vanilla and the focus method. With the random-weight miniature the
model time is tiny, so the numbers show the node's own overhead; pass --model for a real one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _times(fn, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _row(rows: list, what: str, ms: list[float], note: str = "") -> None:
    rows.append((what, statistics.median(ms), min(ms), note))


def _frame(width: int, height: int) -> np.ndarray:
    """A natural-looking frame (the bundled sample scaled up), so JPEG sizes are realistic."""
    rng = np.random.default_rng(0)
    sample = cv2.imread(str(ROOT / "test" / "data" / "sample" / "frame.jpg"), cv2.IMREAD_COLOR)
    if sample is None:
        return rng.integers(0, 256, (height, width, 3), np.uint8)
    big = cv2.resize(sample, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    big += rng.normal(0, 6, big.shape).astype(np.int16)  # sensor noise: camera-like JPEG sizes
    return cv2.cvtColor(np.clip(big, 0, 255).astype(np.uint8), cv2.COLOR_BGR2RGB)


def bench_conversions(rows: list, width: int, height: int, repeats: int) -> None:
    from focus_ros.io.images import compressed_to_rgb, image_view, view_to_rgb
    from focus_ros.ros.image_msgs import numpy_to_image, rgb_to_compressed

    rgb = _frame(width, height)
    mp = width * height / 1e6
    rgb_msg = numpy_to_image(rgb, "rgb8")
    bgr_msg = numpy_to_image(np.ascontiguousarray(rgb[..., ::-1]), "bgr8")
    jpeg = rgb_to_compressed(rgb, "jpeg", quality=90)
    tag = f"{width}x{height} ({mp:.0f} MP)"
    _row(
        rows,
        f"intake: zero-copy view, rgb8 {tag}",
        _times(lambda: image_view(rgb_msg), repeats * 20),
        "what every received frame costs",
    )
    _row(rows, f"intake: zero-copy view, bgr8 {tag}", _times(lambda: image_view(bgr_msg), repeats * 20))
    view_rgb, view_bgr = image_view(rgb_msg), image_view(bgr_msg)
    _row(rows, f"to RGB: rgb8 {tag}", _times(lambda: view_to_rgb(view_rgb), repeats * 20), "no copy")
    _row(rows, "reference: full copy of the frame", _times(lambda: view_rgb.array.copy(), repeats))
    _row(
        rows,
        f"to RGB: bgr8 -> RGB {tag}",
        _times(lambda: view_to_rgb(view_bgr), repeats),
        "first question on the frame only",
    )
    _row(
        rows,
        f"to RGB: JPEG decode {tag} ({len(jpeg.data) / 1e6:.1f} MB)",
        _times(lambda: compressed_to_rgb(jpeg), repeats),
        "first question on the frame only",
    )
    _row(
        rows,
        "reference: area resize to 336 px",
        _times(lambda: cv2.resize(rgb, (336, 252), interpolation=cv2.INTER_AREA), repeats),
    )


def bench_round_trip(rows: list, model: str, repeats: int) -> None:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from focus_ros.ros.focus_node import FocusNode
    from focus_ros.ros.image_msgs import rgb_to_image
    from focus_ros.srv import Ask

    ctx = Context()
    rclpy.init(context=ctx)
    node = FocusNode(
        namespace="focus_bench",
        context=ctx,
        parameter_overrides=[
            Parameter("model.path", value=model),
            Parameter("max_frame_age", value=0.0),
            Parameter("search.target_extraction", value="rule"),
        ],
    )
    node.get_logger().set_level(rclpy.logging.LoggingSeverity.ERROR)  # no line per question
    client = rclpy.create_node("focus_bench_client", context=ctx)
    executor = MultiThreadedExecutor(num_threads=node.executor_threads() + 2, context=ctx)
    executor.add_node(node)
    executor.add_node(client)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    try:
        assert node.trigger_configure().name == "SUCCESS", node.last_error
        assert node.trigger_activate().name == "SUCCESS", node.last_error
        ask = client.create_client(Ask, "/focus_bench/ask")
        assert ask.wait_for_service(timeout_sec=10.0)

        def call(question: str, camera: str = "") -> Ask.Response:
            fut = ask.call_async(Ask.Request(question=question, camera=camera))
            done = threading.Event()
            fut.add_done_callback(lambda _f: done.set())
            done.wait(600.0)
            return fut.result()

        _row(
            rows,
            "ask round trip, refused at once (unknown camera)",
            _times(lambda: call("q?", camera="nowhere"), repeats * 10),
            "service + node overhead, no model",
        )
        pub = client.create_publisher(Image, "/focus_bench/image", qos_profile_sensor_data)
        while pub.get_subscription_count() == 0:
            time.sleep(0.01)
        question = "What is on the table?"
        for label, (w, h) in (("640x480", (640, 480)), ("4000x3000", (4000, 3000))):
            msg = rgb_to_image(_frame(w, h), "bgr8")

            def deliver() -> None:
                before = node.stats["frames_received"]
                msg.header.stamp = client.get_clock().now().to_msg()  # noqa: B023 (called in this iteration)
                pub.publish(msg)  # noqa: B023
                while node.stats["frames_received"] == before:
                    time.sleep(0.0005)

            _row(
                rows,
                f"frame {label} bgr8: publish -> stored in the node",
                _times(deliver, repeats),
                "same process, real DDS (rclpy copies in and out)",
            )
            for method in ("vanilla", "focus"):
                node.set_parameters([Parameter("method", value=method)])
                res = call(question)
                assert res.success, res.message
                _row(
                    rows,
                    f"ask round trip, {method}, {label} bgr8 frame, warm prefix",
                    _times(lambda: call(question), repeats, warmup=0),
                    f"{res.result.forward_passes} passes, model {Path(model).name}",
                )
            cold = []
            for _ in range(repeats):  # a new frame each time: convert + prefill in the answer
                deliver()
                t0 = time.perf_counter()
                res = call(question)
                cold.append((time.perf_counter() - t0) * 1e3)
            _row(
                rows,
                f"ask round trip, focus, {label} bgr8 frame, new frame",
                cold,
                f"{res.result.forward_passes} passes incl. the frame's prefill",
            )
    finally:
        node.release()
        executor.shutdown()
        node.destroy_node()
        client.destroy_node()
        rclpy.try_shutdown(context=ctx)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "miniatures" / "llava"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if "ROS_LOG_DIR" not in os.environ:
        os.environ["ROS_LOG_DIR"] = tempfile.mkdtemp(prefix="focus_bench_log_")

    rows: list = []
    bench_conversions(rows, args.width, args.height, args.repeats)
    bench_round_trip(rows, args.model, args.repeats)
    import torch

    print(
        f"\nfocus_ros node benchmark: {os.cpu_count()} CPU cores, torch {torch.__version__} "
        f"({'cuda' if torch.cuda.is_available() else 'cpu'}), OpenCV {cv2.__version__}, repeats {args.repeats}\n"
    )
    width = max(len(r[0]) for r in rows)
    print(f"| {'measurement'.ljust(width)} | median ms |  min ms | note |")
    print(f"|{'-' * (width + 2)}|----------:|--------:|------|")
    for what, med, low, note in rows:
        print(f"| {what.ljust(width)} | {med:9.4f} | {low:7.4f} | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
