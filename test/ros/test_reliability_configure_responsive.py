"""The node answers its lifecycle and parameter services while configure loads a model.

``change_state`` runs a transition to its end in the node's default callback group; ``get_state``
and the parameter reads have a group of their own (FocusNode._answer_queries_during_transitions),
so ``ros2 lifecycle get`` and ``ros2 param get`` answer during a model load instead of waiting for it
(parameter sets still wait: configure writes the effective search.* values back at its end).
The load is a real, genuinely slow ``from_pretrained``: the LLaVA miniature with 800 text layers
(several seconds on a CPU: transformers builds and fills every module), not a sleep.
"""

import json
import shutil

import pytest
import torch
import transformers
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import GetParameters
from ros_helpers import NodeHarness, wait_for

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SLOW_LAYERS = 800  # from_pretrained time grows with the module count: ~5 s on one core, 1.5 MB per layer
ANSWER_S = 1.0


@pytest.fixture(scope="module")
def slow_model(miniature_root, tmp_path_factory):
    """The LLaVA miniature's processor and config with SLOW_LAYERS text layers of random weights."""
    path = tmp_path_factory.mktemp("slow") / "llava_deep"
    shutil.copytree(miniature_root / "llava", path, ignore=shutil.ignore_patterns("*.safetensors"))
    config = json.loads((path / "config.json").read_text())
    config["text_config"]["num_hidden_layers"] = SLOW_LAYERS
    (path / "config.json").write_text(json.dumps(config))
    with torch.device("meta"):  # no random init of 800 layers: filled below, once, cheaply
        model = transformers.LlavaForConditionalGeneration(transformers.AutoConfig.from_pretrained(path))
    model = model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=generator)
    model.save_pretrained(path)
    del model
    return path


@pytest.fixture
def ros(slow_model):
    harness = NodeHarness(
        {"model.path": str(slow_model), "model.device": "cpu"}, namespace="focus_responsive", configure=False
    )
    yield harness
    harness.close()


def test_get_state_and_a_parameter_get_answer_within_1_s_while_configure_loads_a_model(ros, slow_model):
    """Expected: with configure running (change_state called, the model loading), get_state answers within
    1 s with 'configuring' and a parameter get within 1 s with the value; change_state had not answered
    when they did; then configure succeeds."""
    get_state = ros.service_client(GetState, ros.name("focus_node/get_state"))
    get_params = ros.service_client(GetParameters, ros.name("focus_node/get_parameters"))
    change = ros.service_client(ChangeState, ros.name("focus_node/change_state"))
    configuring = change.call_async(ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE)))
    wait_for(lambda: ros.node._model_busy, 30.0)  # on_configure has started: the load is under way

    state = ros.result_of(get_state.call_async(GetState.Request()), ANSWER_S).current_state
    values = ros.result_of(get_params.call_async(GetParameters.Request(names=["model.path"])), ANSWER_S).values
    assert not configuring.done(), "configure ended before the queries: the load was not slow enough to tell"

    assert state.id == State.TRANSITION_STATE_CONFIGURING, state.label
    assert [v.string_value for v in values] == [str(slow_model)]
    assert ros.result_of(configuring, 300.0).success, ros.node.last_error
    assert ros.state() == State.PRIMARY_STATE_INACTIVE
    assert ros.node.pipeline.adapter.num_layers == SLOW_LAYERS
