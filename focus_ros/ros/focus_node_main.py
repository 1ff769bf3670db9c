"""``ros2 run focus_ros focus_node``: spin the FOCUS lifecycle node on a multi-threaded executor.

    ros2 run focus_ros focus_node --ros-args --params-file config/focus.yaml \
        -p model.path:=/models/llava-1.5-7b-hf -p autostart:=true

The node starts unconfigured (a lifecycle manager or launch file drives it) unless ``autostart``
(parameter, or ``--autostart``) is set: then it configures and activates at once and exits with
an error if the model cannot be loaded. Namespace ``focus`` unless ``--ros-args -r __ns:=/other``.

SIGINT / SIGTERM stop it gracefully: every question still queued or running is answered with
``STATUS_CANCELED`` ("the node is shutting down") while the node is still on the graph, then it
leaves. rclpy's own signal handler would shut the context down first, and those callers would
wait for an answer that can no longer be sent. A second signal ends the process at once.

Memory: camera frames are large, short-lived buffers allocated by several threads (DDS intake,
the worker). glibc's malloc raises its mmap threshold after the first such buffer is freed and
from then on carves them out of per-thread heaps, which fragment: under a high-resolution stream
the node's memory grows by gigabytes before it levels off. :func:`bound_heap_growth` fixes the
threshold at 1 MiB, so every frame-sized buffer is mapped on its own and returned to the system
when freed. The price is a page fault per page of every new frame buffer, paid while rclpy holds
the GIL, so questions under such a stream are slower (docs/reliability.md has the measurements,
scripts/bench_reliability.py repeats them). An explicit ``MALLOC_MMAP_THRESHOLD_`` in the
environment is left alone (e.g. ``MALLOC_MMAP_THRESHOLD_=33554432`` for speed over memory).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import signal
import sys
import threading

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import remove_ros_args

from .focus_node import DEFAULT_NAMESPACE, FocusNode

_M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
MMAP_THRESHOLD_BYTES = 1 << 20


def bound_heap_growth() -> bool:
    """Fix glibc's mmap threshold (see the module doc); True when set. No-op elsewhere."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        return bool(ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # pragma: no cover - a libc without mallopt
        return False


def _spin(executor: MultiThreadedExecutor, stop: threading.Event) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    finally:
        stop.set()  # the executor ended on its own (context shut down): leave too


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="focus_node",
        description="FOCUS visual question answering lifecycle node (ROS 2). "
        "Parameters: --ros-args --params-file FILE -p name:=value (see config/focus.yaml).",
    )
    parser.add_argument("--autostart", action="store_true", help="configure and activate right away")
    opts = parser.parse_args(remove_ros_args(args)[1:])
    bound_heap_growth()

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        signal.signal(signum, signal.SIG_DFL)  # a second Ctrl-C / SIGTERM does not wait

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    node = FocusNode(namespace=DEFAULT_NAMESPACE)
    executor = MultiThreadedExecutor(num_threads=node.executor_threads())
    executor.add_node(node)
    # The executor spins in its own thread from the start, so the node's services (parameters,
    # lifecycle state) answer while autostart loads the model, and the main thread stays free to
    # receive signals.
    spinner = threading.Thread(target=_spin, args=(executor, stop), name="focus_executor", daemon=True)
    spinner.start()
    code = 0
    try:
        if opts.autostart or node.params.current.autostart:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal(f"{node.last_error or 'configure failed'}; exiting (autostart)")
                code = 1
            elif not stop.is_set() and node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal(f"{node.last_error or 'activate failed'}; exiting (autostart)")
                code = 1
        while code == 0 and not stop.wait(0.5):  # a timed wait: signals interrupt it on every platform
            pass
    except KeyboardInterrupt:  # a signal arriving before the handlers were set
        pass
    finally:
        if code == 0:
            node.get_logger().info("stopping: answering pending questions with CANCELED, then leaving")
        # Still spinning here: the CANCELED answers and responses of the release actually go out.
        node.release()
        executor.shutdown()
        spinner.join(timeout=5.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
