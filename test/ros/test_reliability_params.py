"""Reliability of the parameters: every one is described with its range or allowed values, and an
invalid ``ros2 param set`` (here: the node's real set_parameters services over DDS) is refused with a
reason, changes nothing, and leaves the node answering.

Already proven elsewhere, not repeated: s_max < s_min, a bad method / target_extraction / relevance
encoding, a negative max_frame_age and read-only queue_size / model.path refused
(test_ros_params.py, test_node_questions.py); model.* settable only while unconfigured
(test_reliability_faults.py).
"""

import pytest
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import SetParametersAtomically
from rclpy.parameter import Parameter
from ros_helpers import NodeHarness, sample_rgb

from focus_ros.ros.params import all_specs

QUESTION = "What colour is the red cup?"


def quick_node(model_path, **kwargs):
    """A node on ``model_path`` with the cheapest search: rule targets, one crop."""
    settings = {"search.target_extraction": "rule", "search.max_steps": 1, "search.overrun": False}
    return NodeHarness({"model.path": str(model_path), **settings, "max_frame_age": 0.0}, **kwargs)


@pytest.fixture(scope="module")
def ros(miniature_root):
    harness = quick_node(miniature_root / "llava")
    harness.publish_frame(sample_rgb(320, 240, seed=95), frame_id="params_cam")
    yield harness
    harness.close()


def test_every_number_has_a_range_and_every_closed_string_its_allowed_values(ros):
    """Expected: `ros2 param describe` shows a range for each int/double parameter and the allowed values
    for each string parameter that has a fixed set."""
    specs = {s.name: s for s in all_specs()}
    for desc in ros.node.describe_parameters(list(specs)):
        if desc.type == ParameterType.PARAMETER_INTEGER:
            assert desc.integer_range, desc.name
        elif desc.type == ParameterType.PARAMETER_DOUBLE:
            assert desc.floating_point_range, desc.name
        if specs[desc.name].choices:
            assert desc.additional_constraints.startswith("one of: "), desc.name
            for choice in specs[desc.name].choices:
                assert choice in desc.additional_constraints, desc.name
    (method,) = ros.node.describe_parameters(["method"])
    assert "one of: vanilla, focus, zoom, attention, random" in method.additional_constraints


@pytest.mark.parametrize(
    "name, value, reason",
    [
        ("search.nms_iou", 1.5, "out of range"),  # descriptor range
        ("max_image_side", 1, "out of range"),
        ("max_question_length", 0, "out of range"),
        ("overlay_max_side", 100000, "out of range"),
        ("search.max_steps", "four", "Wrong parameter type"),  # descriptor type
        ("publish_relevance", "yes", "Wrong parameter type"),
        ("method", "magic", "method must be one of"),  # allowed values
        ("search.answer_view", "zoomed", "search.answer_view must be one of"),
        ("search.layer_start", 0.9, "selects no layer of this model's 4"),  # checked against the loaded model
        ("search.layer_end", 0.2, "selects no layer of this model's 4"),
        ("cameras", ["front", "rear"], "read-only"),  # sizes the executor / topics
        ("qos.image.depth", 5, "read-only"),
        ("model.device", "cuda", "read-only: the model is fixed at start"),  # without allow_model_change
    ],
)
def test_an_invalid_set_through_the_parameter_service_is_refused_with_its_reason(ros, name, value, reason):
    """Expected: refused with a reason naming the problem; the value is unchanged; the node still answers."""
    before = ros.node.get_parameter(name).value
    (result,) = ros.set_params({name: value})
    assert not result.successful
    assert reason in result.reason, result.reason
    assert ros.node.get_parameter(name).value == before
    assert ros.ask(QUESTION).success


def test_an_atomic_set_with_one_invalid_value_applies_none_of_them(ros):
    """Expected: set_parameters_atomically(max_steps=3, nms_iou=2.0) is refused as a whole; max_steps keeps its
    value."""
    cli = ros.service_client(SetParametersAtomically, ros.name("focus_node/set_parameters_atomically"))
    req = SetParametersAtomically.Request(
        parameters=[
            Parameter("search.max_steps", value=3).to_parameter_msg(),
            Parameter("search.nms_iou", value=2.0).to_parameter_msg(),
        ]
    )
    result = ros.result_of(cli.call_async(req), 10.0).result
    assert not result.successful and "search.nms_iou" in result.reason
    assert ros.node.get_parameter("search.max_steps").value == 1


def test_a_whole_number_for_a_floating_point_parameter_is_accepted(ros):
    """Expected: `ros2 param set ... max_frame_age 30` (sent as an integer) sets 30.0 rather than failing on
    the type; a valid layer range for the loaded model is accepted."""
    try:
        (result,) = ros.set_params({"max_frame_age": 30})
        assert result.successful, result.reason
        assert ros.node.get_parameter("max_frame_age").value == 30.0
        (layers,) = ros.set_params({"search.layer_start": 2})  # an index: layers 2..3 of 4
        assert layers.successful, layers.reason
        assert ros.ask(QUESTION).success
    finally:
        ros.set_params({"max_frame_age": 0.0, "search.layer_start": 0.4375})


def test_relevance_tiles_are_accepted_for_a_llava_model_and_the_question_answers(ros):
    """Expected: `ros2 param set search.relevance_tiles 2` on a LLaVA-family node applies to the next
    question, which answers."""
    try:
        (result,) = ros.set_params({"search.relevance_tiles": 2})
        assert result.successful, result.reason
        assert ros.ask(QUESTION).success
    finally:
        ros.set_params({"search.relevance_tiles": 1})


def test_relevance_tiles_are_refused_at_set_time_for_a_model_with_its_own_views(miniature_root):
    """Expected: on a OneVision node the same set is refused with the reason (every question would
    otherwise end in an error); the value stays 1 and the node still answers."""
    harness = quick_node(miniature_root / "llava_onevision", namespace="params_ov")
    try:
        harness.publish_frame(sample_rgb(320, 240, seed=96), frame_id="params_ov_cam")
        (result,) = harness.set_params({"search.relevance_tiles": 2})
        assert not result.successful
        assert "relevance_tiles 2 needs a model with one square grid" in result.reason, result.reason
        assert harness.node.get_parameter("search.relevance_tiles").value == 1
        assert harness.ask(QUESTION).success
    finally:
        harness.close()
