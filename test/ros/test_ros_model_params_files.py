"""The per-model parameter files (config/models/*.yaml) load into the real node: layered over
config/focus.yaml exactly as the launch file's ``model_params`` passes them, the node configures
with the file's family and search settings. Real checkpoints are out of reach here, so model.path
points at the random-weight miniature of the file's family (the override a user gives with
``model:=DIR``), on the CPU in float32."""

from pathlib import Path

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
FILES = sorted((REPO / "config" / "models").glob("*.yaml"))


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_every_family_has_a_per_model_file():
    families = {_flatten(YAML(typ="safe").load(f.read_text())["/**"]["ros__parameters"])["model.family"] for f in FILES}
    assert families == {"llava", "llava_onevision", "qwen2_5_vl"}


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_a_per_model_file_layered_over_focus_yaml_configures_the_node_with_its_settings(path, miniature_root):
    import rclpy
    from rclpy.context import Context
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from focus_ros.ros.focus_node import FocusNode

    params = _flatten(YAML(typ="safe").load(path.read_text())["/**"]["ros__parameters"])
    assert params["model.path"] and not Path(params["model.path"]).exists()  # a hub id, by configuration
    context = Context()
    rclpy.init(
        context=context,
        args=["--ros-args", "--params-file", str(REPO / "config" / "focus.yaml"), "--params-file", str(path)],
    )
    node = None
    try:
        overrides = {
            "model.path": str(miniature_root / params["model.family"]),
            "model.device": "cpu",
            "model.dtype": "float32",
        }
        node = FocusNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        # focus.yaml says family "auto": the explicit family proves the per-model file was layered on top
        assert node.get_parameter("model.family").value == params["model.family"] != "auto"
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, node.last_error
        assert node.pipeline.adapter.family == params["model.family"]
        for key, value in params.items():
            if key.startswith("search."):
                assert node.get_parameter(key).value == pytest.approx(value), key
                assert getattr(node.pipeline.search, key.split(".", 1)[1]) == pytest.approx(value), key
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)
