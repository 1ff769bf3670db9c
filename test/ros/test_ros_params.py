"""The node's parameters: declared once with descriptions and ranges, documented in the YAML, validated."""

import re
from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.context import Context
from rclpy.parameter import Parameter

from focus_ros.core.config import parameter_table
from focus_ros.ros.focus_node import FocusNode
from focus_ros.ros.params import all_specs, undocumented_core_parameters

REPO = Path(__file__).resolve().parents[2]
YAML = REPO / "config" / "focus.yaml"


@pytest.fixture
def make_node():
    made = []

    def make(overrides=None, args=None):
        ctx = Context()
        rclpy.init(context=ctx, args=args)
        node = FocusNode(
            namespace="focus_params_test",
            context=ctx,
            parameter_overrides=[Parameter(k, value=v) for k, v in (overrides or {}).items()],
        )
        made.append((node, ctx))
        return node

    yield make
    for node, ctx in made:
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_every_parameter_is_declared_with_a_description_and_start_up_settings_are_read_only(make_node):
    node = make_node()
    names = [s.name for s in all_specs()]
    assert len(names) == len(set(names))
    assert set(parameter_table()) <= set(names)
    for desc in node.describe_parameters(names):
        assert len(desc.description) > 15, desc.name
        if desc.name.startswith("qos.") or desc.name in ("cameras", "queue_size", "frame_store_size"):
            assert desc.read_only, desc.name
        if desc.name.startswith(("search.", "model.")):
            # model.* is settable while unconfigured (test_reliability_params.py proves the refusal otherwise)
            assert not desc.read_only, desc.name
        if desc.name.startswith("model."):
            assert "only while the node is unconfigured" in desc.additional_constraints, desc.name
    (steps,) = node.describe_parameters(["search.max_steps"])
    assert steps.integer_range[0].from_value == 1
    (age,) = node.describe_parameters(["max_frame_age"])
    assert age.floating_point_range[0].from_value == 0.0


def test_every_core_setting_has_a_node_description():
    assert undocumented_core_parameters() == []


def test_the_yaml_documents_every_parameter_and_loads_into_the_node(make_node):
    text = YAML.read_text()
    params = yaml.safe_load(text)["/**"]["ros__parameters"]
    for spec in all_specs():
        group, _, leaf = spec.name.rpartition(".")
        documented = re.search(rf"^\s*#?\s*{re.escape(leaf)}:\s*\S.*#", text, re.M)
        assert documented, f"{spec.name} is not documented in {YAML.name}"
        node = params
        for part in group.split(".") if group else []:
            node = node[part]
        if not spec.name.startswith("search.") or leaf in node:
            assert leaf in node, f"{spec.name} missing from {YAML.name}"
    node = make_node(args=["--ros-args", "--params-file", str(YAML)])
    assert node.get_parameter("qos.image.reliability").value == "best_effort"
    assert node.get_parameter("cameras").value == ["camera"]
    assert node.get_parameter("model.path").value == ""


def test_family_paper_defaults_apply_unless_the_user_set_the_search_value(make_node, miniature_root):
    onevision = str(miniature_root / "llava_onevision")
    _, search = make_node({"model.path": onevision}).params.configs()
    assert search.max_steps == 4 and search.layer_start == 0.5 and search.answer_view == "global+crop"
    _, search = make_node({"model.path": onevision, "search.max_steps": 6}).params.configs()
    assert search.max_steps == 6 and search.layer_start == 0.5


@pytest.mark.parametrize(
    "name, value, reason",
    [
        ("search.s_max", 1, "s_max"),
        ("search.target_extraction", "magic", "target_extraction must be one of"),
        ("search.max_steps", 0, ""),
        ("method", "guess", "method must be one of"),
        ("model.family", "gpt", "model.family must be one of"),
        ("queue_size", 9, "read-only"),
        ("relevance_encoding", "bgr8", "one of"),
        ("max_frame_age", -1.0, ""),
    ],
)
def test_invalid_values_are_refused_with_a_reason(make_node, name, value, reason):
    node = make_node()
    before = node.get_parameter(name).value
    (result,) = node.set_parameters([Parameter(name, value=value)])
    assert not result.successful
    assert reason.lower() in result.reason.lower()
    assert node.get_parameter(name).value == before


def test_a_valid_search_change_is_accepted_and_marked_as_the_users(make_node):
    node = make_node()
    (result,) = node.set_parameters([Parameter("search.max_steps", value=3)])
    assert result.successful and node.params.search_changed
    assert "search.max_steps" in node.params.user_set
    assert node.params.search_config().max_steps == 3
