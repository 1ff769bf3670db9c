"""Lifecycle of the real node driven through its lifecycle services: a failed configure, and
configure / activate / deactivate / cleanup opening and releasing what they should."""

import pytest
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from ros_helpers import NodeHarness, sample_rgb, wait_for

from focus_ros.msg import FocusResult
from focus_ros.srv import Ask

QUESTION = "What colour is the red cup?"


def _transition(ros, transition_id):
    cli = ros.service_client(ChangeState, "/focus/focus_node/change_state")
    return ros.result_of(cli.call_async(ChangeState.Request(transition=Transition(id=transition_id))), 120.0).success


def _state(ros):
    cli = ros.service_client(GetState, "/focus/focus_node/get_state")
    return ros.result_of(cli.call_async(GetState.Request()), 10.0).current_state.id


@pytest.fixture
def make_ros():
    made = []

    def make(overrides):
        made.append(NodeHarness(overrides, configure=False))
        return made[-1]

    yield make
    for ros in made:
        ros.close()


def test_configure_with_a_missing_model_fails_clearly_and_the_node_stays_unconfigured(make_ros, tmp_path):
    missing = tmp_path / "no_such_model"
    ros = make_ros({"model.path": str(missing), "model.local_files_only": True})
    assert _transition(ros, Transition.TRANSITION_CONFIGURE) is False
    assert _state(ros) == State.PRIMARY_STATE_UNCONFIGURED
    assert ros.node.last_error.startswith("configure failed") and str(missing) in ros.node.last_error
    assert ros.node.pipeline is None
    assert not ros.client.create_client(Ask, "/focus/ask").wait_for_service(timeout_sec=0.3)


def test_transitions_load_open_close_and_release_and_a_running_question_still_gets_its_answer(make_ros, miniature_root):
    ros = make_ros(
        {
            "model.path": str(miniature_root / "llava"),
            "search.target_extraction": "rule",
            "search.max_steps": 300,
            "search.top_k_anchors": 300,
            "search.nms_iou": 1.0,
            "search.min_anchor_distance": 1,
            "search.s_min": 2,
            "search.s_max": 3,
            "max_frame_age": 0.0,
        }
    )
    assert _transition(ros, Transition.TRANSITION_CONFIGURE)
    assert _state(ros) == State.PRIMARY_STATE_INACTIVE and ros.node.pipeline is not None
    # the effective settings are visible as parameters after configure
    assert ros.node.get_parameter("search.layer_start").value == 0.4375
    ask = ros.client.create_client(Ask, "/focus/ask")
    assert not ask.wait_for_service(timeout_sec=0.3)  # inactive: no service yet

    assert _transition(ros, Transition.TRANSITION_ACTIVATE)
    assert _state(ros) == State.PRIMARY_STATE_ACTIVE
    assert ask.wait_for_service(timeout_sec=10.0)
    ros.publish_frame(sample_rgb(640, 480, seed=40))
    running = ros.ask_async(QUESTION)  # a long search (hundreds of candidates)
    wait_for(lambda: ros.node.stats["questions"] >= 1 and len(ros.node.requests.queue) == 0, 10.0)

    assert _transition(ros, Transition.TRANSITION_DEACTIVATE)  # stops it between two stages
    res = ros.result_of(running, 30.0)
    assert not res.success and res.result.status == FocusResult.STATUS_CANCELED
    assert "deactivating" in res.message
    assert _state(ros) == State.PRIMARY_STATE_INACTIVE
    wait_for(lambda: not ask.service_is_ready(), 10.0)

    assert _transition(ros, Transition.TRANSITION_CLEANUP)
    assert _state(ros) == State.PRIMARY_STATE_UNCONFIGURED
    assert ros.node.pipeline is None and ros.node.frames is None
