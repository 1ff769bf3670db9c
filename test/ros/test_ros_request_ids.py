"""Request ids over real DDS: the real node (the embedded model) echoes the caller's ``request_id`` in
``FocusResult.request_id`` on the ``ask`` service, the ``query`` action and the ``request`` topic, makes
a UUID4 when it is empty (always for the plain ``question`` topic), and every BUSY / ERROR / CANCELED
reply carries the id too. No result ever leaves with ``STATUS_UNSET``.

One node (queue_size 1) serves the module; a long search keeps its worker busy where a test needs a
full queue, and is cancelled afterwards.
"""

import uuid

import pytest
from action_msgs.msg import GoalStatus
from rclpy.parameter import Parameter
from ros_helpers import LONG_SEARCH, AnswerLog, NodeHarness, sample_rgb, wait_for
from std_msgs.msg import Header, String

from focus_ros.action import Query
from focus_ros.core.config import default_model_path
from focus_ros.msg import FocusResult, Question
from focus_ros.srv import Ask

QUESTION = "What shape is the red object?"
BASE = {
    "search.max_steps": 2,
    "search.overrun": False,
    "prefill_on_arrival": False,
    "max_frame_age": 0.0,  # frames are reused across a slow (shared, 2-core) test run
}
# LONG_SEARCH with s_max set before s_min: parameters apply one by one and the model's s_max is 1.
LONG = {k: LONG_SEARCH[k] for k in sorted(LONG_SEARCH, key=lambda k: k != "search.s_max")}
QUICK: dict = {}  # the LONG_SEARCH keys at the node's start values (filled by the ros fixture)


@pytest.fixture(scope="module")
def ros():
    harness = NodeHarness({"model.path": default_model_path(), "queue_size": 1, **BASE}, namespace="focus_ids")
    QUICK.update({k: harness.node.get_parameter(k).value for k in LONG_SEARCH})
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def answers(ros):
    log = AnswerLog(ros)
    yield log
    log.close()


@pytest.fixture(autouse=True)
def base_settings(ros):
    results = ros.node.set_parameters([Parameter(k, value=v) for k, v in {**BASE, **QUICK}.items()])
    assert all(r.successful for r in results)
    yield


def is_uuid4(text):
    try:
        return uuid.UUID(text).version == 4 and str(uuid.UUID(text)) == text
    except ValueError:
        return False


def ask(ros, question, request_id="", camera="", timeout=60.0):
    req = Ask.Request(question=question, camera=camera, request_id=request_id)
    return ros.result_of(ros.service_client(Ask, ros.name("ask")).call_async(req), timeout)


def send_goal(ros, question, request_id="", camera=""):
    """An accepted Query goal: (handle, result future, feedback list)."""
    feedback = []
    goal = Query.Goal(question=question, camera=camera, request_id=request_id)
    handle = ros.result_of(
        ros.action_client().send_goal_async(goal, feedback_callback=lambda fb: feedback.append(fb.feedback)), 10.0
    )
    assert handle.accepted
    return handle, handle.get_result_async(), feedback


def publish_request(ros, question, request_id="", camera="", stamp=None):
    msg = Question(header=Header(frame_id="asker"), request_id=request_id, question=question, camera=camera)
    if stamp is not None:
        msg.header.stamp = stamp
    ros.publisher(Question, ros.name("request"), reliable=True).publish(msg)


def one_answer(answers, question, timeout=60.0):
    """The one result published on ``answer`` for ``question`` (counted exactly after a flush)."""
    wait_for(lambda: answers.for_question(question), timeout)
    answers.flush()
    (result,) = answers.for_question(question)
    assert result.status != FocusResult.STATUS_UNSET
    return result


def long_goal(ros):
    """A goal that keeps the worker busy until cancelled: (handle, result future)."""
    assert all(r.successful for r in ros.set_params(LONG))
    handle, result, feedback = send_goal(ros, "Where is the tiny screw? (long)", request_id="long-goal")
    wait_for(lambda: any(f.stage == "verify" for f in feedback), 60.0)
    assert all(r.successful for r in ros.set_params(QUICK))  # later questions are quick again
    return handle, result


def test_the_service_echoes_the_callers_request_id_and_makes_a_uuid4_when_it_is_empty(ros, answers):
    ros.publish_frame(sample_rgb(320, 240, seed=40), frame_id="ids_service")
    named = ask(ros, f"{QUESTION} (service, named)", request_id="planner-42/grasp#1")
    assert named.success and named.result.request_id == "planner-42/grasp#1"
    assert one_answer(answers, f"{QUESTION} (service, named)").request_id == "planner-42/grasp#1"
    first, second = (ask(ros, f"{QUESTION} (service, empty {i})") for i in range(2))
    assert first.success and second.success
    assert is_uuid4(first.result.request_id) and is_uuid4(second.result.request_id)
    assert first.result.request_id != second.result.request_id
    assert one_answer(answers, f"{QUESTION} (service, empty 0)").request_id == first.result.request_id


def test_the_action_echoes_the_goals_request_id_and_makes_a_uuid4_when_it_is_empty(ros, answers):
    ros.publish_frame(sample_rgb(320, 240, seed=41), frame_id="ids_action")
    _, named, _ = send_goal(ros, f"{QUESTION} (action, named)", request_id="goal-7")
    # queue_size 1: the second goal is accepted only once the worker has taken the first off the queue
    # (a goal that finds the queue full is rejected: test_reliability_exactly_once.py).
    queue = ros.node.requests.queue
    wait_for(lambda: len(queue) + queue.reserved == 0, 30.0)
    _, empty, _ = send_goal(ros, f"{QUESTION} (action, empty)")
    named, empty = ros.result_of(named), ros.result_of(empty)
    assert named.status == GoalStatus.STATUS_SUCCEEDED and named.result.result.request_id == "goal-7"
    assert empty.status == GoalStatus.STATUS_SUCCEEDED and is_uuid4(empty.result.result.request_id)
    assert one_answer(answers, f"{QUESTION} (action, named)").request_id == "goal-7"
    assert one_answer(answers, f"{QUESTION} (action, empty)").request_id == empty.result.result.request_id


def test_the_request_topic_echoes_its_id_and_its_stamp_names_the_frame(ros, answers):
    older = ros.publish_frame(sample_rgb(320, 240, seed=42), frame_id="ids_older")
    newest = ros.publish_frame(sample_rgb(320, 240, seed=43), frame_id="ids_newest")
    publish_request(ros, f"{QUESTION} (request, latest)", request_id="topic-1")
    publish_request(ros, f"{QUESTION} (request, stamped)", request_id="topic-2", stamp=older.stamp)
    publish_request(ros, f"{QUESTION} (request, empty)")
    latest = one_answer(answers, f"{QUESTION} (request, latest)")
    stamped = one_answer(answers, f"{QUESTION} (request, stamped)")
    empty = one_answer(answers, f"{QUESTION} (request, empty)")
    assert latest.request_id == "topic-1" and latest.header == newest  # zero stamp: the newest at arrival
    assert stamped.request_id == "topic-2" and stamped.header == older  # a stamp: that frame
    assert latest.status in (FocusResult.STATUS_OK, FocusResult.STATUS_NOT_FOUND) and latest.answer
    assert is_uuid4(empty.request_id)


def test_a_plain_question_topic_answer_gets_a_generated_uuid4(ros, answers):
    ros.publish_frame(sample_rgb(320, 240, seed=44), frame_id="ids_plain")
    ros.publisher(String, ros.name("question"), reliable=True).publish(String(data=f"{QUESTION} (plain)"))
    result = one_answer(answers, f"{QUESTION} (plain)")
    assert result.status in (FocusResult.STATUS_OK, FocusResult.STATUS_NOT_FOUND) and result.answer
    assert is_uuid4(result.request_id)


def test_an_error_reply_carries_its_request_id_on_every_channel_and_an_aborted_goal_is_never_unset(ros, answers):
    ros.publish_frame(sample_rgb(320, 240, seed=45), frame_id="ids_error")
    service = ask(ros, "error via the service", request_id="err-service", camera="nowhere")
    assert not service.success and service.result.status == FocusResult.STATUS_ERROR
    assert service.result.request_id == "err-service" and "unknown camera" in service.message
    _, goal, _ = send_goal(ros, "error via the action", request_id="err-action", camera="nowhere")
    goal = ros.result_of(goal)
    assert goal.status == GoalStatus.STATUS_ABORTED
    assert goal.result.result.status == FocusResult.STATUS_ERROR and goal.result.result.request_id == "err-action"
    publish_request(ros, "error via the request topic", request_id="err-topic", camera="nowhere")
    topic = one_answer(answers, "error via the request topic")
    assert topic.status == FocusResult.STATUS_ERROR and topic.request_id == "err-topic"
    empty = ask(ros, "   ")  # an empty question: an error with a generated id
    assert empty.result.status == FocusResult.STATUS_ERROR and is_uuid4(empty.result.request_id)


def test_a_busy_reply_carries_its_request_id_and_a_goal_beyond_the_queue_is_rejected(ros, answers):
    ros.publish_frame(sample_rgb(640, 480, seed=46), frame_id="ids_busy")
    handle, long_result = long_goal(ros)
    queued = ros.ask_async(f"{QUESTION} (queued)")
    wait_for(lambda: len(ros.node.requests.queue) == 1, 10.0)
    service = ask(ros, f"{QUESTION} (busy, service)", request_id="busy-service", timeout=30.0)
    busy_goal = Query.Goal(question=f"{QUESTION} (busy, action)", request_id="busy-action")
    rejected = ros.result_of(ros.action_client().send_goal_async(busy_goal), 10.0)
    publish_request(ros, f"{QUESTION} (busy, request)", request_id="busy-request")
    topic = one_answer(answers, f"{QUESTION} (busy, request)", 30.0)
    assert not long_result.done(), "BUSY must come back while the running question still runs"
    assert service.result.status == FocusResult.STATUS_BUSY and service.result.request_id == "busy-service"
    assert not rejected.accepted  # a full queue rejects a goal at once: no result, nothing on answer
    assert topic.status == FocusResult.STATUS_BUSY and topic.request_id == "busy-request"
    ros.result_of(handle.cancel_goal_async(), 10.0)
    cancelled = ros.result_of(long_result, 60.0)
    assert cancelled.status == GoalStatus.STATUS_CANCELED
    assert cancelled.result.result.status == FocusResult.STATUS_CANCELED  # a canceled goal is never UNSET
    assert cancelled.result.result.request_id == "long-goal"
    assert ros.result_of(queued, 60.0).success
    answers.flush()
    assert not [a for a in answers.snapshot() if a.request_id == "busy-action"]


def test_a_goal_cancelled_while_queued_ends_canceled_with_its_id_never_unset(ros, answers):
    ros.publish_frame(sample_rgb(640, 480, seed=47), frame_id="ids_cancel")
    handle, long_result = long_goal(ros)
    queued, queued_result, _ = send_goal(ros, f"{QUESTION} (queued goal)", request_id="queued-goal")
    wait_for(lambda: len(ros.node.requests.queue) == 1, 10.0)
    ros.result_of(queued.cancel_goal_async(), 10.0)
    response = ros.result_of(queued_result, 30.0)
    assert response.status == GoalStatus.STATUS_CANCELED
    result = response.result.result
    assert result.status == FocusResult.STATUS_CANCELED and result.request_id == "queued-goal"
    assert "canceled while waiting in the queue" in result.error
    ros.result_of(handle.cancel_goal_async(), 10.0)
    assert ros.result_of(long_result, 60.0).result.result.status == FocusResult.STATUS_CANCELED
