"""Reliability, hostile questions: whatever an operator types, through the topic, the service or the
action, the question gets exactly one result: to its caller and on ``answer``.

Each case names its expected outcome. "Exactly one" is counted on the ``answer`` topic after a
flush (see ros_helpers.AnswerLog), never by waiting a while. The topic carries only the question
text, so cases about a camera name or a stamp go through the service and the action only.

Already proven elsewhere, not repeated: the error texts for an unknown camera, a camera without
frames and an unknown stamp over the service (test_node_intake.py), an empty question over the
service (test_node_questions.py). Here they are checked on every channel, exactly once.
"""

import pytest
from action_msgs.msg import GoalStatus
from builtin_interfaces.msg import Time
from ros_helpers import AnswerLog, NodeHarness, sample_rgb, two_camera_params, wait_for
from std_msgs.msg import String

from focus_ros.msg import FocusResult

CHANNELS = ("topic", "service", "action")
ANSWERED = (FocusResult.STATUS_OK, FocusResult.STATUS_NOT_FOUND)  # an answer (NOT_FOUND: from the best view)


@pytest.fixture(scope="module")
def ros(miniature_root):
    # The random-weight miniature's existence confidences mean nothing: threshold 0 confirms every verified
    # target, so an answered question reads STATUS_OK here (NOT_FOUND: test_ros_target_results.py).
    harness = NodeHarness({**two_camera_params(miniature_root, max_frame_age=0.0), "search.exist_threshold": 0.0})
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def answers(ros):
    log = AnswerLog(ros)
    yield log
    log.close()


def ask_via(ros, answers, channel, question, camera="", stamp=None):
    """Ask through ``channel``; return the caller's result after checking it was published exactly once."""
    before = len(answers.for_question(question))
    if channel == "topic":
        ros.publisher(String, ros.name("question"), reliable=True).publish(String(data=question))
        wait_for(lambda: len(answers.for_question(question)) > before, 60.0)
        result = answers.for_question(question)[before]
    elif channel == "service":
        res = ros.ask(question, camera=camera, stamp=stamp)
        result = res.result
        assert res.success == (result.status in ANSWERED)
        if result.status == FocusResult.STATUS_NOT_FOUND:  # the answer, and that no target was confirmed
            assert res.message.startswith(f"{result.answer} (no target was confirmed"), res.message
        else:
            assert res.message == (result.answer if res.success else result.error)
    else:
        from focus_ros.action import Query

        goal = Query.Goal(question=question, camera=camera)
        if stamp is not None:
            goal.stamp = stamp
        handle = ros.result_of(ros.action_client().send_goal_async(goal), 10.0)
        assert handle.accepted
        response = ros.result_of(handle.get_result_async(), 60.0)
        result = response.result.result
        want = GoalStatus.STATUS_SUCCEEDED if result.status in ANSWERED else GoalStatus.STATUS_ABORTED
        assert response.status == want
    answers.flush()
    published = answers.for_question(question)[before:]
    assert len(published) == 1, f"{channel}: {len(published)} results published for one question"
    assert published[0].status == result.status and published[0].error == result.error
    return result


def _error(result, *words):
    assert result.status == FocusResult.STATUS_ERROR and not result.answer, result
    for w in words:
        assert w in result.error, result.error


# The first test runs before any frame exists (module order): keep it first.
@pytest.mark.parametrize("channel", CHANNELS)
def test_a_question_before_any_frame_gets_a_clear_no_frame_yet_error(ros, answers, channel):
    """Expected: ERROR 'no frame yet from camera 'front': nothing received on /focus/front/image, ...'."""
    assert ros.node.frames.received("front") == 0
    _error(
        ask_via(ros, answers, channel, f"What colour is the cup? ({channel}, before any frame)"),
        "no frame yet from camera 'front'",
        "/focus/front/image",
    )


@pytest.fixture(scope="module")
def frame(ros):
    return ros.publish_frame(sample_rgb(320, 240, seed=60), camera_topic="front/image", frame_id="questions_cam")


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("question", ["", "   \t\n  "], ids=["empty", "whitespace"])
def test_an_empty_or_blank_question_gets_one_error(ros, answers, frame, channel, question):
    """Expected: ERROR 'question is empty' at once, no model time."""
    _error(ask_via(ros, answers, channel, question), "question is empty")


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_10000_character_question_is_refused_with_the_limit(ros, answers, frame, channel):
    """Expected: ERROR 'question is too long: 10000 characters (max_question_length 2000)', no model time."""
    question = ("Where is the small red cup next to the laptop? " * 250)[:9990] + f" {channel:>8}?"
    assert len(question) == 10_000
    result = ask_via(ros, answers, channel, question)
    _error(result, "question is too long: 10000 characters", "max_question_length 2000")
    assert result.question == question  # echoed whole, so the caller can match it


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize(
    "question",
    [
        "この赤いカップは何色ですか？",
        "Какого цвета чашка на столе? ☕",
        "What colour is the 🐱 on the sofa?",
        "¿Dónde está la taza roja? 👀🤖",
    ],
    ids=["japanese", "russian_emoji", "emoji_target", "spanish_emoji"],
)
def test_non_english_and_emoji_questions_are_answered(ros, answers, frame, channel, question):
    """Expected: OK with an answer about the frame; the question is echoed unchanged."""
    result = ask_via(ros, answers, channel, question)
    assert result.status == FocusResult.STATUS_OK and result.header == frame, result.error
    assert result.question == question


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_question_naming_no_object_is_answered_from_the_whole_frame(ros, answers, frame, channel):
    """Expected: OK, no targets, selected_roi all zero (= the whole frame)."""
    result = ask_via(ros, answers, channel, f"What is happening here ({channel})?")
    assert result.status == FocusResult.STATUS_OK and result.header == frame, result.error
    assert list(result.targets) == [] and not result.regions
    roi = result.selected_roi
    assert (roi.x_offset, roi.y_offset, roi.width, roi.height) == (0, 0, 0, 0)


@pytest.mark.parametrize("channel", ["service", "action"])
def test_a_question_for_an_unknown_camera_gets_one_error_naming_the_known_ones(ros, answers, frame, channel):
    """Expected: ERROR "unknown camera 'side'; this node's cameras: ['front', 'rear']"."""
    _error(
        ask_via(ros, answers, channel, f"What colour is the cup ({channel}, side)?", camera="side"),
        "unknown camera 'side'",
        "['front', 'rear']",
    )


@pytest.mark.parametrize("channel", ["service", "action"])
def test_a_question_for_a_camera_without_frames_gets_no_frame_yet(ros, answers, frame, channel):
    """Expected: ERROR "no frame yet from camera 'rear'" even though 'front' has frames."""
    _error(
        ask_via(ros, answers, channel, f"What colour is the cup ({channel}, rear)?", camera="rear"),
        "no frame yet from camera 'rear'",
    )


@pytest.mark.parametrize("channel", ["service", "action"])
def test_a_stamp_that_is_not_in_the_frame_store_gets_one_error_listing_what_is_stored(ros, answers, frame, channel):
    """Expected: ERROR 'no frame with stamp 12.000000005 from camera 'front' (stored: N frame(s), a .. b)'."""
    _error(
        ask_via(ros, answers, channel, f"What colour is the cup ({channel}, stamp)?", stamp=Time(sec=12, nanosec=5)),
        "no frame with stamp 12.000000005 from camera 'front'",
        "stored: ",
    )


@pytest.mark.parametrize("channel", ["service", "action"])
def test_a_stamp_that_is_in_the_store_is_answered_about_that_frame(ros, answers, frame, channel):
    """Expected (the control case): OK, header = the named frame's, after newer frames arrived."""
    ros.publish_frame(sample_rgb(320, 240, seed=61), camera_topic="front/image", frame_id="newer")
    result = ask_via(ros, answers, channel, f"What colour is the cup ({channel}, named)?", stamp=frame.stamp)
    assert result.status == FocusResult.STATUS_OK and result.header == frame, result.error
