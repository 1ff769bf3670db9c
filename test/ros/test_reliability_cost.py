"""Reliability, cost bounds: what one question may cost is bounded, over real DDS, on the embedded model.

- ``search.max_targets``: a question naming more targets searches the first ones; the result says so.
- ``max_question_seconds``: a question not answered in time ends with STATUS_ERROR and "deadline",
  whichever channel asked it and whether it was running or waiting in the queue; the node goes on.
- The ``search.*`` ranges refuse settings that would make one question run for hours.
- ``max_question_tokens``: a question too long for the model's tokenizer is refused before queuing.

"Exactly one" is counted on the ``answer`` topic after a flush (ros_helpers.AnswerLog).
"""

import pytest
from action_msgs.msg import GoalStatus
from rclpy.parameter import Parameter
from ros_helpers import LONG_SEARCH, AnswerLog, NodeHarness, sample_rgb, wait_for
from std_msgs.msg import String

from focus_ros.core.config import SEARCH_LIMITS, default_model_path
from focus_ros.msg import FocusResult

ANSWERED = (FocusResult.STATUS_OK, FocusResult.STATUS_NOT_FOUND)
QUICK = {
    "search.target_extraction": "rule",  # the embedded model lists two targets at most; the rule parser all
    "search.max_steps": 2,
    "search.overrun": False,
    "search.verify_batch": 0,
    "search.top_k_anchors": 20,
    "search.nms_iou": 0.3,
    "search.min_anchor_distance": 2,
    "search.max_grid_side": 0,
    "search.s_min": 1,
    "search.s_max": 1,
    "search.max_targets": 4,
    "max_question_seconds": 60.0,
    "max_question_tokens": 256,
    "max_frame_age": 0.0,  # one frame serves the whole module
}
COLOURS = ("red", "blue", "green", "yellow", "purple", "white", "black")
SEVEN = f"Where are the {', the '.join(f'{c} object' for c in COLOURS[:-1])} and the {COLOURS[-1]} object?"
# LONG_SEARCH with s_max set before s_min: parameters apply one by one and QUICK's s_max is 1.
LONG = {k: LONG_SEARCH[k] for k in sorted(LONG_SEARCH, key=lambda k: k != "search.s_max")}


def long_question(tag: str) -> str:
    """Three targets (rule extraction lists them all), each with ~200 candidates verified one by one with
    LONG_SEARCH: several seconds even on a fast, idle machine, so a 2 s deadline lands mid-search. The
    tag makes the targets new to the frame memo, which would otherwise reuse an earlier question's passes."""
    return f"Where are the tiny {tag} screw, the small {tag} nut and the thin {tag} washer?"


@pytest.fixture(scope="module")
def ros():
    harness = NodeHarness({"model.path": default_model_path(), **QUICK}, namespace="focus_cost")
    harness.publish_frame(sample_rgb(640, 480, seed=71), frame_id="cost_cam")
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def answers(ros):
    log = AnswerLog(ros)
    yield log
    log.close()


@pytest.fixture(autouse=True)
def quick(ros):
    assert all(r.successful for r in ros.node.set_parameters([Parameter(k, value=v) for k, v in QUICK.items()]))
    yield


def one_result(answers, question, timeout=60.0):
    wait_for(lambda: answers.for_question(question), timeout)
    answers.flush()
    (result,) = answers.for_question(question)
    return result


def publish_question(ros, question):
    ros.publisher(String, ros.name("question"), reliable=True).publish(String(data=question))


def assert_deadline(result, queued=False):
    assert result.status == FocusResult.STATUS_ERROR and result.answer == "", (result.status, result.error)
    assert result.error.startswith("deadline passed: not answered within max_question_seconds 2 s"), result.error
    assert ("waiting in the queue" if queued else "in the search") in result.error, result.error
    assert result.latency.sec >= 2  # not before its deadline


# ----------------------------------------------------------------------------- max_targets
def test_a_question_naming_seven_targets_searches_max_targets_and_says_which_were_left_out(ros, answers):
    """Expected (max_targets 4): answered; ``targets`` lists all 7, ``target_results`` the first 4; the service
    message is the answer followed by the note naming the 3 left out; the same on the answer topic, once."""
    res = ros.ask(SEVEN)
    assert res.success, res.message
    result = res.result
    assert list(result.targets) == [f"{c} object" for c in COLOURS]
    assert [t.phrase for t in result.target_results] == [f"{c} object" for c in COLOURS[:4]]
    assert {r.target for r in result.regions} <= set(result.targets[:4])
    assert res.message.startswith(f"{result.answer} (the question names 7 targets; searched the first 4 "), res.message
    assert "(search.max_targets 4), not: purple object, white object, black object" in res.message
    published = one_result(answers, SEVEN)
    assert [t.phrase for t in published.target_results] == [t.phrase for t in result.target_results]


def test_a_lower_max_targets_set_at_run_time_applies_to_the_next_question(ros):
    assert all(r.successful for r in ros.set_params({"search.max_targets": 1}))
    res = ros.ask(SEVEN)
    assert res.success and [t.phrase for t in res.result.target_results] == ["red object"], res.message
    assert "searched the first 1 (search.max_targets 1)" in res.message


# ----------------------------------------------------------------------------- max_question_seconds
@pytest.mark.parametrize("channel", ["topic", "service", "action"])
def test_a_long_question_past_max_question_seconds_ends_error_deadline_and_the_next_is_answered(ros, answers, channel):
    """Expected (max_question_seconds 2, a ~14 s search): STATUS_ERROR "deadline passed ... in the search",
    exactly one result, after at least 2 s (an action goal is aborted with it); then a quick question is
    answered."""
    assert all(r.successful for r in ros.set_params({**LONG, "max_question_seconds": 2.0}))
    question = long_question(f"{channel}-deadline")
    if channel == "topic":
        publish_question(ros, question)
        result = one_result(answers, question, 60.0)
    elif channel == "service":
        res = ros.ask(question)
        assert not res.success and res.message == res.result.error
        result = one_result(answers, question)
    else:
        handle, feedback = ros.send_goal(question)
        goal = ros.result_of(handle.get_result_async(), 60.0)
        assert goal.status == GoalStatus.STATUS_ABORTED
        # it reported progress before it was stopped (assert_deadline: stopped "in the search"; which
        # stage the 2 s end in depends on how busy the machine is)
        assert feedback
        result = goal.result.result
        assert one_result(answers, question).error == result.error
    assert_deadline(result)
    assert all(r.successful for r in ros.set_params({k: QUICK[k] for k in LONG_SEARCH}))
    after = ros.ask("What shape is the red object?")
    assert after.success, after.message


def test_questions_waiting_past_their_deadline_end_error_deadline_without_running(ros, answers):
    """Expected: behind a long goal asked without a deadline (max_question_seconds 0), a service call and a
    topic question asked with 2 s wait in the queue; the service call ends STATUS_ERROR "deadline passed ...
    waiting in the queue" at its deadline while the goal still runs; the topic question ends the same
    once the goal is canceled, without being searched; each has exactly one result."""
    assert all(r.successful for r in ros.set_params({**LONG, "max_question_seconds": 0.0}))
    handle, feedback = ros.send_goal(long_question("no-deadline"))
    running = handle.get_result_async()
    wait_for(lambda: any(f.stage == "verify" for f in feedback), 60.0)
    quick = {k: QUICK[k] for k in LONG_SEARCH}
    assert all(r.successful for r in ros.set_params({**quick, "max_question_seconds": 2.0}))
    topic_q, service_q = "What shape is the blue object? (queued topic)", "What shape is the red object? (queued)"
    publish_question(ros, topic_q)
    wait_for(lambda: len(ros.node.requests.queue) == 1, 10.0)
    res = ros.ask(service_q)
    assert_deadline(res.result, queued=True)
    assert not running.done(), "the queued call was answered at its deadline, not when its turn came"
    ros.result_of(handle.cancel_goal_async(), 10.0)
    assert ros.result_of(running, 60.0).status == GoalStatus.STATUS_CANCELED  # no deadline: canceled by its client
    assert_deadline(one_result(answers, topic_q), queued=True)  # taken off the queue, never searched
    assert one_result(answers, service_q).error == res.result.error


# ----------------------------------------------------------------------------- ranges
@pytest.mark.parametrize(
    "name, value",
    [
        ("search.max_steps", 1000),  # what the ranges allowed before
        ("search.top_k_anchors", 1000),
        ("search.max_overrun_steps", SEARCH_LIMITS["max_overrun_steps"][1] + 1),
        ("search.max_targets", SEARCH_LIMITS["max_targets"][1] + 1),
        ("search.max_targets", 0),
        ("search.verify_batch", SEARCH_LIMITS["verify_batch"][1] + 1),
        ("search.max_grid_side", SEARCH_LIMITS["max_grid_side"][1] + 1),
        ("search.max_new_tokens", SEARCH_LIMITS["max_new_tokens"][1] + 1),
        ("search.max_target_tokens", SEARCH_LIMITS["max_target_tokens"][1] + 1),
        ("max_question_seconds", -1.0),
        ("max_question_tokens", 0),
    ],
)
def test_a_setting_outside_its_cost_range_is_refused_with_the_range_and_changes_nothing(ros, name, value):
    before = ros.node.get_parameter(name).value
    (result,) = ros.set_params({name: value})
    assert not result.successful
    assert f"Parameter {name} out of range" in result.reason and f"value: {value}" in result.reason, result.reason
    assert ros.node.get_parameter(name).value == before
    (desc,) = ros.node.describe_parameters([name])
    bounds = desc.integer_range or desc.floating_point_range
    assert value < bounds[0].from_value or value > bounds[0].to_value


def test_the_top_of_every_search_range_is_accepted_and_long_search_uses_it(ros):
    assert LONG_SEARCH["search.max_steps"] == SEARCH_LIMITS["max_steps"][1]
    tops = {f"search.{n}": high for n, (_, high) in sorted(SEARCH_LIMITS.items(), key=lambda kv: kv[0] != "s_max")}
    assert [r.reason for r in ros.set_params(tops)] == [""] * len(tops)
    assert all(ros.node.get_parameter(k).value == v for k, v in tops.items())


# ----------------------------------------------------------------------------- max_question_tokens
@pytest.mark.parametrize("channel", ["topic", "service"])
def test_a_question_over_max_question_tokens_is_refused_with_its_token_count_and_the_limit(ros, answers, channel):
    """Expected (max_question_tokens 8): ERROR "question is too long: N tokens (max_question_tokens 8)" with N
    what the loaded model's tokenizer makes of it, without searching; a question within the limit is answered."""
    assert all(r.successful for r in ros.set_params({"max_question_tokens": 8}))
    question = f"What shape is the red object in the upper left corner of this picture? ({channel})"
    tokenizer = ros.node.pipeline.adapter.tokenizer
    count = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    assert count > 8
    if channel == "topic":
        publish_question(ros, question)
        result = one_result(answers, question)
    else:
        res = ros.ask(question)
        assert not res.success and res.message == res.result.error
        result = res.result
        assert one_result(answers, question).error == result.error
    assert result.status == FocusResult.STATUS_ERROR
    assert result.error == f"question is too long: {count} tokens (max_question_tokens 8)"
    assert result.forward_passes == 0 and len(result.regions) == 0
    short = "What shape?"
    assert len(tokenizer(short, add_special_tokens=False)["input_ids"]) <= 8
    assert ros.ask(short).success
