"""Reliability across the lifecycle: deactivate / activate, the shutdown transition and SIGINT of the
installed executable, each while questions are running and queued on every channel. Every one of
them gets exactly one result (CANCELED, with the reason) and nothing hangs.

Already proven elsewhere: a deactivate cancels one running service call, and cleanup releases the
model (test_node_lifecycle.py); the executable exits 0 on SIGINT when idle (test_node_executable.py).
"""

import os
import signal
import subprocess
import threading

import pytest
import rclpy
from action_msgs.msg import GoalStatus
from ament_index_python.packages import get_package_prefix, get_package_share_directory
from lifecycle_msgs.msg import State, Transition
from rclpy.action import ActionClient
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import LONG_SEARCH, AnswerLog, NodeHarness, encode_rgb, sample_rgb, wait_for
from sensor_msgs.msg import Image
from std_msgs.msg import String

from focus_ros.action import Query
from focus_ros.msg import FocusResult
from focus_ros.ros.image_msgs import numpy_to_image
from focus_ros.srv import Ask

SEARCH = {"search.target_extraction": "rule", "search.overrun": False, "max_frame_age": 0.0, **LONG_SEARCH}


@pytest.fixture
def ros(miniature_root):
    harness = NodeHarness({"model.path": str(miniature_root / "llava"), "queue_size": 4, **SEARCH})
    harness.publish_frame(sample_rgb(640, 480, seed=90), frame_id="lifecycle_cam")
    yield harness
    harness.close()


def _in_flight(ros, answers, tag):
    """A running goal plus a queued service call, topic question and goal; returns what to check."""
    running, feedback = ros.send_goal(f"Where is the tiny screw? ({tag}, running)")
    running_result = running.get_result_async()
    wait_for(lambda: any(f.stage == "verify" for f in feedback), 30.0)
    service_q, topic_q, action_q = (
        f"What colour is the red cup? ({tag}, queued {c})" for c in ("service", "topic", "action")
    )
    service = ros.ask_async(service_q)
    ros.publisher(String, ros.name("question"), reliable=True).publish(String(data=topic_q))
    queued_goal, _ = ros.send_goal(action_q)
    queued_result = queued_goal.get_result_async()
    wait_for(lambda: len(ros.node.requests.queue) == 3, 10.0)
    return {
        "running": running_result,
        "service": service,
        "action": queued_result,
        "questions": [f"Where is the tiny screw? ({tag}, running)", service_q, topic_q, action_q],
    }


def _all_canceled_once(ros, answers, flight, reason):
    for key in ("running", "action"):
        response = ros.result_of(flight[key], 30.0)
        assert response.status == GoalStatus.STATUS_ABORTED  # stopped by the node, not by its client
        assert response.result.result.status == FocusResult.STATUS_CANCELED
        assert response.result.result.error == f"not answered: {reason}"
    service = ros.result_of(flight["service"], 30.0)
    assert not service.success and service.result.status == FocusResult.STATUS_CANCELED
    assert service.message == f"not answered: {reason}"
    wait_for(lambda: all(answers.for_question(q) for q in flight["questions"]), 30.0)
    for q in flight["questions"]:
        (result,) = answers.for_question(q)  # exactly one, published before the stop
        assert result.status == FocusResult.STATUS_CANCELED and result.error == f"not answered: {reason}"


def test_deactivate_with_questions_in_flight_cancels_each_once_and_activate_answers_again(ros):
    """Expected: deactivate -> the running and the 3 queued questions (service, topic, action) each get one
    CANCELED 'not answered: the node is deactivating'; activate -> the next question is answered."""
    answers = AnswerLog(ros)
    try:
        flight = _in_flight(ros, answers, "deactivate")
        assert ros.transition(Transition.TRANSITION_DEACTIVATE)
        _all_canceled_once(ros, answers, flight, "the node is deactivating")
        assert ros.state() == State.PRIMARY_STATE_INACTIVE
        assert ros.transition(Transition.TRANSITION_ACTIVATE)
        assert all(r.successful for r in ros.set_params({"search.max_steps": 1}))
        header = ros.publish_frame(sample_rgb(320, 240, seed=91), frame_id="after_activate")
        res = ros.ask("What colour is the red cup? (after activate)")
        assert res.success and res.result.header == header, res.message
        answers.flush()
        assert len(answers.for_question("What colour is the red cup? (after activate)")) == 1
    finally:
        answers.close()


def test_the_shutdown_transition_with_questions_in_flight_cancels_each_once(ros):
    """Expected: shutdown (from active) -> the running and the 3 queued questions each get one CANCELED 'not
    answered: the node is shutting down'; the node ends finalized with its model released."""
    answers = AnswerLog(ros)
    try:
        flight = _in_flight(ros, answers, "shutdown")
        assert ros.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
        _all_canceled_once(ros, answers, flight, "the node is shutting down")
        assert ros.state() == State.PRIMARY_STATE_FINALIZED
        assert ros.node.pipeline is None
    finally:
        answers.close()


# ----------------------------------------------------------------------------- SIGINT of the executable
class _Client:
    """A client node in its own context: the executable under test is another process."""

    def __init__(self):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("focus_sigint_test", context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.results: list = []
        self.node.create_subscription(
            FocusResult,
            "/focus/answer",
            self.results.append,
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE),
        )

    def done(self, future, timeout=60.0):
        event = threading.Event()
        future.add_done_callback(lambda _f: event.set())
        assert event.wait(timeout), "no result"
        return future.result()

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=5.0)


def test_sigint_to_the_executable_with_questions_in_flight_cancels_each_once_and_exits_0(miniature_root, tmp_path):
    """Expected: SIGINT while a goal runs and a service call and a topic question wait -> each gets one
    CANCELED 'not answered: the node is shutting down' (callers and 'answer'), then the process exits 0."""
    exe = os.path.join(get_package_prefix("focus_ros"), "lib", "focus_ros", "focus_node")
    params = os.path.join(get_package_share_directory("focus_ros"), "config", "focus.yaml")
    cmd = [
        exe,
        "--ros-args",
        "--params-file",
        params,
        "-p",
        f"model.path:={miniature_root / 'llava'}",
        "-p",
        "autostart:=true",
    ] + [a for k, v in SEARCH.items() for a in ("-p", f"{k}:={str(v).lower()}")]
    log = open(tmp_path / "focus_node.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    client = _Client()
    try:
        ask = client.node.create_client(Ask, "/focus/ask")
        assert ask.wait_for_service(timeout_sec=120.0), (tmp_path / "focus_node.log").read_text()
        query = ActionClient(client.node, Query, "/focus/query")
        assert query.wait_for_server(timeout_sec=30.0)
        camera = client.node.create_publisher(Image, "/focus/image", QoSProfile(depth=1))
        questions = client.node.create_publisher(
            String, "/focus/question", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )
        wait_for(lambda: camera.get_subscription_count() > 0 and questions.get_subscription_count() > 0, 30.0)
        frame = numpy_to_image(encode_rgb(sample_rgb(640, 480, seed=92), "rgb8"), "rgb8")

        attempts = []

        def running_goal():
            frame.header.stamp = client.node.get_clock().now().to_msg()
            camera.publish(frame)  # best effort: resend until the node has one
            attempts.append(f"Where is the tiny screw? (sigint, attempt {len(attempts)})")
            feedback = []
            handle = client.done(
                query.send_goal_async(
                    Query.Goal(question=attempts[-1]), feedback_callback=lambda fb: feedback.append(fb.feedback)
                )
            )
            result = handle.get_result_async()
            try:
                wait_for(lambda: result.done() or any(f.stage == "verify" for f in feedback), 10.0)
            except TimeoutError:
                return None
            return None if result.done() else result  # done at once: "no frame yet"

        goal_result = wait_for(running_goal, 60.0, interval=0.0)
        service = ask.call_async(Ask.Request(question="What colour is the red cup? (sigint, service)"))
        questions.publish(String(data="What colour is the red cup? (sigint, topic)"))
        # A call refused at once, sent after both: once it is back, the node has taken the other two.
        marker = client.done(ask.call_async(Ask.Request(question="marker", camera="marker")))
        assert "unknown camera 'marker'" in marker.message
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, (tmp_path / "focus_node.log").read_text()
        goal = client.done(goal_result)
        assert goal.status == GoalStatus.STATUS_ABORTED
        assert goal.result.result.error == "not answered: the node is shutting down"
        answer = client.done(service)
        assert answer.result.status == FocusResult.STATUS_CANCELED
        assert answer.message == "not answered: the node is shutting down"
        asked = [
            "What colour is the red cup? (sigint, service)",
            "What colour is the red cup? (sigint, topic)",
            attempts[-1],
        ]
        wait_for(lambda: all(any(r.question == q for r in client.results) for q in asked), 10.0)
        for q in asked:
            (result,) = [r for r in client.results if r.question == q]  # exactly one
            assert result.status == FocusResult.STATUS_CANCELED
            assert result.error == "not answered: the node is shutting down"
        assert "stopping: answering pending questions with CANCELED" in (tmp_path / "focus_node.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        client.close()
