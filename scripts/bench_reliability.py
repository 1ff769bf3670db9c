#!/usr/bin/env python3
"""Reliability benchmark: a 4K camera at 30 Hz for 60 s while questions arrive every 0.5 s through the
topic, the service and the action at once. Does every question get exactly one answer or error,
does the node's memory stay flat, and how long does an ``ask`` take while the stream runs?

    source scripts/env.sh
    python scripts/bench_reliability.py [--seconds 60] [--model models/miniatures/llava] [--json out.json]

Three processes on one machine, like a robot: the installed ``focus_node`` executable (autostart,
config/focus.yaml, the question settings below), a camera process publishing rgb8 frames
(best effort, as drivers do), and this process asking questions and listening on ``answer``. The
node and the camera use the shipped large-frame Fast DDS profile (README "ROS 2 node").

Prints one table: questions sent vs answered per channel (OK / BUSY / other; an action goal that
finds the queue full is rejected instead, with no result), how many results each question got on
``answer`` (must be exactly one), the node's resident memory (VmRSS from
/proc) after a warm-up and at the end, its peak, and p50 / p95 of the ``ask`` service round trip.
With the random-weight miniature the answers are meaningless and the model is fast, so the load
is mostly the node's own (frames, queue, DDS); pass --model for a real checkpoint. Exit code 1
when a question was lost or answered twice, or the node did not stop cleanly. test_reliability_load.py
runs a few seconds of it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = ("topic", "service", "action")
REJECTED = "goal rejected"  # Question.note of an action goal the node rejected (full queue): no result


# ----------------------------------------------------------------------------- the camera process
def camera_main(args: argparse.Namespace) -> int:
    """Publish ``width x height`` rgb8 frames at ``rate`` Hz until SIGINT; print what was sent as JSON."""
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Image

    from focus_ros.ros.image_msgs import numpy_to_image

    stop = []
    # Our own SIGINT handling: the loop ends and the count is printed, whatever it was doing.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    node = rclpy.create_node("bench_camera")
    qos = qos_profile_sensor_data
    if args.reliable_frames:
        qos = QoSProfile(depth=qos.depth, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(Image, args.topic, qos)
    frame = np.zeros((args.height, args.width, 3), np.uint8)
    frame[args.height // 3 : args.height // 2, args.width // 2 : args.width * 2 // 3] = (220, 30, 30)
    msg = numpy_to_image(frame, "rgb8")
    msg.header.frame_id = "bench_cam"
    sent = skipped = 0
    period = 1.0 / args.rate
    start = time.monotonic()
    slot = 0
    try:
        while not stop:
            delay = start + slot * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -period:  # behind: drop the missed slots, never burst to catch up
                missed = int(-delay / period)
                skipped += missed
                slot += missed
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            sent += 1
            slot += 1
    finally:
        print(json.dumps({"sent": sent, "skipped": skipped, "seconds": round(time.monotonic() - start, 2)}), flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


# ----------------------------------------------------------------------------- helpers
def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory of ``pid`` from /proc: total (VmRSS), private (RssAnon) and shared-memory pages
    (RssShmem: mapped Fast DDS segments, bounded by their size)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssShmem"):
                out[key] = int(value.split()[0]) / 1024.0
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _installed_node() -> tuple[Path, Path, Path]:
    from ament_index_python.packages import get_package_prefix, get_package_share_directory

    exe = Path(get_package_prefix("focus_ros")) / "lib" / "focus_ros" / "focus_node"
    share = Path(get_package_share_directory("focus_ros"))
    return exe, share / "config" / "focus.yaml", share / "config" / "fastdds_large_frames.xml"


class Question:
    """One question and what came back for it, to its caller and on the answer topic."""

    def __init__(self, index: int, channel: str):
        self.channel = channel
        self.text = f"Q{index:05d} via {channel}: what colour is the red cup?"
        self.sent = time.monotonic()
        self.caller_status: int | None = None  # from the service response / action result
        self.latency: float | None = None  # service round trip, seconds
        self.published: list[int] = []  # statuses seen on the answer topic
        self.note = ""


# ----------------------------------------------------------------------------- the run
def run(args: argparse.Namespace) -> dict:
    import rclpy
    from rclpy.action import ActionClient
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from focus_ros.action import Query
    from focus_ros.msg import FocusResult
    from focus_ros.srv import Ask

    exe, params, profile = _installed_node()
    logdir = Path(tempfile.mkdtemp(prefix="focus_bench_reliability_"))
    dds = dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(profile))
    node_cmd = [
        str(exe),
        "--ros-args",
        "--params-file",
        str(params),
        "-p",
        f"model.path:={args.model}",
        "-p",
        "autostart:=true",
        "-p",
        "search.target_extraction:=rule",
        "-p",
        f"search.max_steps:={args.max_steps}",
        "-p",
        "search.overrun:=false",
        "-p",
        f"queue_size:={args.queue_size}",
        "-p",
        "max_frame_age:=5.0",
        *(["-p", "qos.image.reliability:=reliable"] if args.reliable_frames else []),
        "--log-level",
        "warn",
    ]
    node_log = open(logdir / "focus_node.log", "w")
    node = subprocess.Popen(node_cmd, stdout=node_log, stderr=subprocess.STDOUT, env=dds)
    camera = None
    ctx = Context()
    rclpy.init(context=ctx)
    client = rclpy.create_node("bench_reliability_client", context=ctx)
    executor = MultiThreadedExecutor(num_threads=4, context=ctx)
    executor.add_node(client)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    lock = threading.Lock()
    by_text: dict[str, Question] = {}
    sentinel_seen = threading.Event()

    def on_answer(msg: FocusResult) -> None:
        if msg.camera == "bench_sentinel":
            sentinel_seen.set()
            return
        with lock:
            q = by_text.get(msg.question)
            if q is not None:
                q.published.append(int(msg.status))

    client.create_subscription(
        FocusResult, "/focus/answer", on_answer, QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    )
    qpub = client.create_publisher(
        String, "/focus/question", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    )
    ask = client.create_client(Ask, "/focus/ask")
    query = ActionClient(client, Query, "/focus/query")
    result: dict = {"args": vars(args)}
    try:
        if not ask.wait_for_service(timeout_sec=120.0):
            raise RuntimeError(f"/focus/ask never appeared; node log: {logdir / 'focus_node.log'}")
        assert query.wait_for_server(timeout_sec=30.0), "no query action server"
        while qpub.get_subscription_count() == 0:
            time.sleep(0.05)
        camera = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--camera",
                "--width",
                str(args.width),
                "--height",
                str(args.height),
                "--rate",
                str(args.rate),
                "--topic",
                "/focus/image",
                *(["--reliable-frames"] if args.reliable_frames else []),
            ],
            stdout=subprocess.PIPE,
            stderr=open(logdir / "camera.log", "w"),
            env=dds,
            text=True,
        )

        def call(question: Question | None, text: str, camera_name: str = "") -> None:
            future = ask.call_async(Ask.Request(question=text, camera=camera_name))

            def done(f) -> None:
                if question is not None:
                    question.latency = time.monotonic() - question.sent
                    question.caller_status = int(f.result().result.status)

            future.add_done_callback(done)
            return future

        # warm-up: until a frame has reached the node and been answered, then a few seconds more
        deadline = time.monotonic() + 60.0
        while True:
            fut = call(None, "warm-up: what colour is the red cup?")
            while not fut.done():
                time.sleep(0.01)
            if fut.result().success:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no frame answered within 60 s: {fut.result().message}")
            time.sleep(0.2)
        time.sleep(args.warmup)
        mem_before = memory_mb(node.pid)
        samples: list[tuple[float, dict]] = []

        questions: list[Question] = []
        pending: list = []
        t_start = time.monotonic()
        next_round = t_start
        index = 0
        while time.monotonic() - t_start < args.seconds:
            now = time.monotonic()
            if now < next_round:
                time.sleep(min(next_round - now, 0.05))
                continue
            next_round += args.interval
            samples.append((now - t_start, memory_mb(node.pid)))
            for channel in CHANNELS:  # the three at once
                index += 1
                q = Question(index, channel)
                with lock:
                    by_text[q.text] = q
                questions.append(q)
                if channel == "topic":
                    qpub.publish(String(data=q.text))
                elif channel == "service":
                    pending.append(call(q, q.text))
                else:
                    goal_future = query.send_goal_async(Query.Goal(question=q.text))

                    def accepted(f, q=q) -> None:
                        handle = f.result()
                        if not handle.accepted:
                            q.note = REJECTED
                            q.caller_status = -1
                            return

                        def finished(rf, q=q) -> None:
                            q.caller_status = int(rf.result().result.result.status)

                        handle.get_result_async().add_done_callback(finished)

                    goal_future.add_done_callback(accepted)
        mem_end = memory_mb(node.pid)
        samples.append((time.monotonic() - t_start, mem_end))
        # Drain: every caller's result, then a sentinel refused at once flushes the answer topic
        # (reliable, in order), so each question's count there is final.
        drain_deadline = time.monotonic() + args.drain
        while time.monotonic() < drain_deadline and any(
            q.caller_status is None for q in questions if q.channel != "topic"
        ):
            time.sleep(0.05)
        # A rejected goal (the queue was full) has no result at all, on 'answer' neither.
        while time.monotonic() < drain_deadline and any(not q.published for q in questions if q.note != REJECTED):
            time.sleep(0.05)
        call(None, "sentinel", camera_name="bench_sentinel")
        sentinel_seen.wait(30.0)
        mem_drained = memory_mb(node.pid)
    finally:
        if camera is not None:
            camera.send_signal(signal.SIGINT)
            try:
                cam_out, _ = camera.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                camera.kill()
                cam_out, _ = camera.communicate()
        if node.poll() is None:
            node.send_signal(signal.SIGINT)
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
        node_log.close()
        executor.shutdown()
        spinner.join(timeout=10.0)  # no callback may run while the entities go away
        query.destroy()
        client.destroy_node()
        rclpy.try_shutdown(context=ctx)

    cam = json.loads((cam_out or "{}").strip().splitlines()[-1] if (cam_out or "").strip() else "{}")
    per_channel = {}
    for channel in CHANNELS:
        qs = [q for q in questions if q.channel == channel]
        statuses = [q.published[0] if q.published else None for q in qs]
        rejected = [q for q in qs if q.note == REJECTED]
        per_channel[channel] = {
            "sent": len(qs),
            "answered": sum(1 for q in qs if len(q.published) == 1 and q.note != REJECTED),
            "rejected": sum(1 for q in rejected if not q.published),  # a rejected goal published is a bug
            "ok": statuses.count(FocusResult.STATUS_OK),
            "not_found": statuses.count(FocusResult.STATUS_NOT_FOUND),  # answered, no target confirmed
            "busy": statuses.count(FocusResult.STATUS_BUSY),
            "error": statuses.count(FocusResult.STATUS_ERROR),
            "canceled": statuses.count(FocusResult.STATUS_CANCELED),
            "unanswered": sum(1 for q in qs if not q.published and q.note != REJECTED),
            "answered_twice": sum(1 for q in qs if len(q.published) > 1),
            "caller_mismatch": sum(
                1 for q in qs if channel != "topic" and q.published and q.caller_status != q.published[0]
            ),
        }
    lat_all = [q.latency for q in questions if q.channel == "service" and q.latency is not None]
    answered = (FocusResult.STATUS_OK, FocusResult.STATUS_NOT_FOUND)
    lat_ok = [
        q.latency for q in questions if q.channel == "service" and q.latency is not None and q.caller_status in answered
    ]
    # A long run is judged from minute 1 on, past the fill-up of stores and queues; a shorter one from warm-up.
    mem_minute_1 = next((m for t, m in samples if t >= 60.0), mem_before)
    result.update(
        {
            "channels": per_channel,
            "camera": cam,
            "node_exit_code": node.returncode,
            "sentinel_seen": sentinel_seen.is_set(),
            "memory_mb": {
                key: {
                    "before": round(mem_before[key], 1),
                    "end_of_stream": round(mem_end[key], 1),
                    "after_drain": round(mem_drained[key], 1),
                    "peak_sampled": round(max(m[key] for _, m in samples), 1),
                    "growth": round(mem_end[key] - mem_before[key], 1),
                    # the second half alone: a leak keeps growing there, warming up does not
                    "growth_second_half": round(
                        mem_end[key] - next(m[key] for t, m in samples if t >= args.seconds / 2), 1
                    ),
                    "at_minute_1": round(mem_minute_1[key], 1),
                    "growth_from_minute_1": round(mem_end[key] - mem_minute_1[key], 1),
                }
                for key in ("VmRSS", "RssAnon", "RssShmem")
            },
            "memory_series": [(round(t, 1), round(m["VmRSS"], 1), round(m["RssAnon"], 1)) for t, m in samples],
            "ask_latency_ms": {
                "p50_all": round(percentile(lat_all, 0.5) * 1e3, 1),
                "p95_all": round(percentile(lat_all, 0.95) * 1e3, 1),
                "p50_ok": round(percentile(lat_ok, 0.5) * 1e3, 1),
                "p95_ok": round(percentile(lat_ok, 0.95) * 1e3, 1),
                "n_all": len(lat_all),
                "n_ok": len(lat_ok),
            },
            "node_log": str(logdir / "focus_node.log"),
        }
    )
    return result


def print_table(r: dict) -> None:
    a = r["args"]
    print(
        f"\nfocus_ros reliability benchmark: {a['width']}x{a['height']} rgb8 at {a['rate']:g} Hz "
        f"({'reliable' if a.get('reliable_frames') else 'best effort'}) "
        f"for {a['seconds']:g} s, "
        f"questions every {a['interval']:g} s through topic + service + action, queue_size {a['queue_size']}, "
        f"model {Path(a['model']).name}, {os.cpu_count()} CPU cores\n"
    )
    print(
        "| channel | sent | answered exactly once | ok | not found | busy | error | canceled | goal rejected "
        "| unanswered | twice |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for ch, c in r["channels"].items():
        print(
            f"| {ch} | {c['sent']} | {c['answered']} | {c['ok']} | {c['not_found']} | {c['busy']} | {c['error']} "
            f"| {c['canceled']} | {c['rejected']} "
            f"| {c['unanswered']} | {c['answered_twice']} |"
        )
    mem, lat, cam = r["memory_mb"], r["ask_latency_ms"], r["camera"]
    print("\n| measurement | value |\n|---|---|")
    print(
        f"| camera frames published | {cam.get('sent', '?')} in {cam.get('seconds', '?')} s "
        f"({cam.get('skipped', '?')} slots skipped by the publisher) |"
    )
    for key, what in (("VmRSS", "resident, total"), ("RssAnon", "resident, private (RssAnon)")):
        m = mem[key]
        print(
            f"| node memory {what}, MiB: after warm-up -> end of stream (growth; in the 2nd half) | "
            f"{m['before']} -> {m['end_of_stream']} ({m['growth']:+}; {m['growth_second_half']:+}) |"
        )
        if a["seconds"] > 60:
            print(
                f"| node memory {what}, MiB: at minute 1 -> end of stream (growth) | "
                f"{m['at_minute_1']} -> {m['end_of_stream']} ({m['growth_from_minute_1']:+}) |"
            )
        print(
            f"| node memory {what}, MiB: peak sampled / after the queue drained | "
            f"{m['peak_sampled']} / {m['after_drain']} |"
        )
    print(
        f"| ask round trip while streaming, all {lat['n_all']} calls: p50 / p95 (ms) "
        f"| {lat['p50_all']} / {lat['p95_all']} |"
    )
    print(
        f"| ask round trip while streaming, {lat['n_ok']} answered OK: p50 / p95 (ms) "
        f"| {lat['p50_ok']} / {lat['p95_ok']} |"
    )
    print(f"| node exit code after SIGINT | {r['node_exit_code']} |")


def healthy(r: dict) -> bool:
    """Every question answered exactly once (or, a goal, rejected), callers agree with the topic, clean stop."""
    return (
        r["node_exit_code"] == 0
        and r["sentinel_seen"]
        and all(c["answered"] + c["rejected"] == c["sent"] and not c["caller_mismatch"] for c in r["channels"].values())
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the measured run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of stream before measuring")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between question rounds")
    parser.add_argument("--rate", type=float, default=30.0, help="camera frames per second")
    parser.add_argument("--width", type=int, default=3840)
    parser.add_argument("--height", type=int, default=2160)
    parser.add_argument("--model", default=str(ROOT / "models" / "miniatures" / "llava"))
    parser.add_argument("--max-steps", type=int, default=2, help="search.max_steps of the node")
    parser.add_argument("--queue-size", type=int, default=4)
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait for outstanding answers")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--reliable-frames",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="camera publishes and node subscribes reliable (default: on ROS 2 Jazzy only, whose Fast DDS loses "
        "best-effort 4K frames between processes; sensor-data best effort elsewhere)",
    )
    parser.add_argument("--camera", action="store_true", help=argparse.SUPPRESS)  # the camera process
    parser.add_argument("--topic", default="/focus/image", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.camera:
        return camera_main(args)
    if args.reliable_frames is None:
        from focus_ros.ros.distro import ros_distro

        args.reliable_frames = ros_distro() == "jazzy"  # Jazzy: see focus_ros/ros/distro.py
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if "ROS_LOG_DIR" not in os.environ:
        os.environ["ROS_LOG_DIR"] = tempfile.mkdtemp(prefix="focus_bench_log_")
    result = run(args)
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    ok = healthy(result)
    if not ok:
        print(
            f"\nFAILED: a question was lost or answered twice, or the node did not stop cleanly; node log: "
            f"{result['node_log']}",
            file=sys.stderr,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
