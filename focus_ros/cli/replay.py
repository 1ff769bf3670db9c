"""``focus-replay``: play a rosbag2 bag (mcap or sqlite3) over DDS with rclpy; optionally record answers.

    focus-replay BAG [--rate R] [--loop] [--topics T ...] [--clock [HZ]] [--delay S]
                 [--wait-subscribers S] [--record OUT] [--record-topics T ...]
                 [--record-storage mcap|sqlite3] [--record-timeout S] [--record-queue N]
                 [--remap FROM:=TO ...]

Like ``ros2 bag play`` (with ``--record``, plus ``ros2 bag record``) where rosbag2 is not
installed: every message is republished as recorded (serialized bytes, original header stamps)
with the bag's timing divided by ``--rate``. BAG is a rosbag2 directory, its .mcap file, or a
directory holding bag directories (the demo bag's ``test/data/demo_bag``: its mcap/ is played).
With ``--record OUT`` the answers (default ``/focus/answer`` and ``/focus/relevance_overlay``)
are written to a new bag until the bag is done, then until ``--record-timeout`` s pass or as
many answers as questions arrived. Ctrl-C stops and closes the recorded bag properly. The
recorded counts are messages written to the bag; messages dropped because the writer fell more
than --record-queue messages behind are counted and reported. A writer error (disk full, file
too large) stops recording and playback, is reported with its reason, and exits with status 3.
Exit status: 0 done, 1 other errors, 2 missing/unreadable bag or bad arguments,
3 recording failed (the counts say what the bag holds).

Needs rclpy and the bag's message packages (source the ROS 2 / focus_ros workspace).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from ..bags.io import STORAGES

RECORD_QUEUE_SIZE = 200  # focus_ros.ros.replay's default (that module needs rclpy; --help must not)
EXIT_RECORD_FAILED = 3


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``focus-replay``."""
    p = argparse.ArgumentParser(
        prog="focus-replay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("bag", help="rosbag2 directory (mcap or sqlite3) or .mcap file")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0)")
    p.add_argument("--loop", action="store_true", help="start over at the end, until Ctrl-C")
    p.add_argument("--topics", nargs="+", metavar="T", help="bag topics to play (default: all)")
    p.add_argument(
        "--clock",
        nargs="?",
        type=float,
        const=100.0,
        default=0.0,
        metavar="HZ",
        help="publish bag time on /clock at HZ (default 100 when given) for use_sim_time nodes",
    )
    p.add_argument("--delay", type=float, default=0.0, metavar="S", help="seconds to wait before playing")
    p.add_argument(
        "--wait-subscribers",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds until every topic has a subscriber (so nothing is lost to discovery), then play",
    )
    p.add_argument("--record", metavar="OUT", help="record the answers into a new bag directory OUT")
    p.add_argument(
        "--record-topics",
        nargs="+",
        metavar="T",
        help="topics to record, /topic or /topic:pkg/msg/Type (default: /focus/answer /focus/relevance_overlay)",
    )
    p.add_argument("--record-storage", choices=STORAGES, default="mcap")
    p.add_argument(
        "--record-timeout",
        type=float,
        default=0.0,
        metavar="S",
        help="keep recording up to S seconds after the bag is done (default 0; stops earlier "
        "once as many answers as questions arrived)",
    )
    p.add_argument(
        "--record-queue",
        type=int,
        default=RECORD_QUEUE_SIZE,
        metavar="N",
        help=f"messages that may wait for the bag writer (default {RECORD_QUEUE_SIZE}); more are dropped and counted",
    )
    p.add_argument("--answer-topic", default="/focus/answer", help="topic counted as answers (default /focus/answer)")
    p.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="rename bag topics")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="[%(levelname)s] %(name)s: %(message)s"
    )
    try:
        from ..ros.replay import BagError, parse_remap, replay, resolve_bag
    except ImportError as exc:
        print(
            f"focus-replay: error: rclpy or focus_ros messages are not importable ({exc}); source the ROS 2 workspace",
            file=sys.stderr,
        )
        return 2

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        remap = parse_remap(args.remap)
        bag = resolve_bag(args.bag)
        print(f"replaying {bag} at rate {args.rate}" + (" (loop)" if args.loop else ""), file=sys.stderr)
        stats = replay(
            bag,
            rate=args.rate,
            loop=args.loop,
            topics=args.topics,
            clock_hz=args.clock,
            delay=args.delay,
            wait_subscribers=args.wait_subscribers,
            remap=remap,
            record=args.record,
            record_topics=args.record_topics,
            record_storage=args.record_storage,
            record_timeout=args.record_timeout,
            record_queue=args.record_queue,
            answer_topic=args.answer_topic,
            stop_event=stop,
        )
    except (BagError, ValueError) as exc:
        print(f"focus-replay: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as exc:
        print(f"focus-replay: error: {exc}", file=sys.stderr)
        return 1

    total = sum(stats.published.values())
    print(
        f"published {total} messages in {stats.playback_s:.2f} s ({stats.loops} complete pass"
        f"{'' if stats.loops == 1 else 'es'}{', interrupted' if stats.interrupted else ''}):"
    )
    for topic, n in sorted(stats.published.items()):
        print(f"  {topic}: {n}")
    if stats.record_path is not None:
        print(
            f"recorded {sum(stats.recorded.values())} messages to {stats.record_path} "
            f"({stats.answers} answers for {stats.questions} questions):"
        )
        for topic, n in sorted(stats.recorded.items()):
            extra = ""
            if dropped := stats.record_dropped.get(topic, 0):
                extra += f", dropped {dropped} (recording queue full)"
            if lost := stats.record_received.get(topic, 0) - n - dropped:
                extra += f", {lost} received but not written"
            print(f"  {topic}: {n}{extra}")
        if dropped := sum(stats.record_dropped.values()):
            print(f"dropped {dropped} messages: the writer fell {args.record_queue} messages behind (--record-queue)")
        if stats.record_error is not None:
            print(f"focus-replay: error: recording failed, stopped: {stats.record_error}", file=sys.stderr)
            return EXIT_RECORD_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
