"""Model identity over real DDS: which model a running node loads is decided by whoever started it.

A peer on the DDS domain that calls ``set_parameters`` (``ros2 param set``) cannot swap the model
unless the node was started with ``allow_model_change: true``; a hub id fails configure with the
reason unless ``model.allow_download``; a ``~`` path loads; an empty path takes the package's
embedded model even with a ``models/embedded`` planted in the working directory; a directory of
pickled weights is refused. Each refusal says why (the set's reason, ``last_error`` and /rosout).
The pure rules are unit-tested in test/unit/test_core_model_identity.py.
"""

import shutil

import pytest
import torch
from lifecycle_msgs.msg import State, Transition
from rcl_interfaces.msg import Log
from ros_helpers import NodeHarness, RosoutLog
from safetensors.torch import load_file

from focus_ros.core.config import default_model_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HUB_ID = "llava-hf/llava-1.5-7b-hf-typo"


@pytest.fixture
def make_ros():
    made = []

    def make(overrides, configure=False, namespace="focus_identity"):
        # a namespace of its own: see ros_helpers.RosoutLog
        made.append(NodeHarness(overrides, namespace=namespace, configure=configure, activate=configure))
        return made[-1]

    yield make
    for ros in made:
        ros.close()


def _configure(ros) -> bool:
    return ros.transition(Transition.TRANSITION_CONFIGURE)


def test_a_model_path_set_after_cleanup_is_refused_saying_how_to_allow_it(make_ros, miniature_root):
    """Expected: on a node started without allow_model_change, the issue's sequence (deactivate, cleanup,
    `ros2 param set model.path X`) is refused with a reason naming allow_model_change; configure then loads
    the model the node was started with."""
    ros = make_ros({"model.path": str(miniature_root / "llava")}, configure=True)
    assert ros.transition(Transition.TRANSITION_DEACTIVATE) and ros.transition(Transition.TRANSITION_CLEANUP)
    assert ros.state() == State.PRIMARY_STATE_UNCONFIGURED
    for name, value in (("model.path", str(miniature_root / "qwen2_5_vl")), ("model.allow_download", True)):
        (refused,) = ros.set_params({name: value})
        assert not refused.successful
        assert refused.reason.startswith(f"{name}: read-only: the model is fixed at start"), refused.reason
        assert "allow_model_change:=true" in refused.reason
    assert ros.node.get_parameter("model.path").value == str(miniature_root / "llava")
    assert _configure(ros) and ros.node.pipeline.adapter.name == str(miniature_root / "llava")


def test_with_allow_model_change_a_path_set_while_unconfigured_is_what_configure_loads(make_ros, miniature_root):
    """Expected: allow_model_change true (read-only itself): the set is accepted while unconfigured and the
    next configure loads the new miniature (its own family); once loaded, a set is refused until cleanup."""
    ros = make_ros({"model.path": str(miniature_root / "llava"), "allow_model_change": True})
    (ro,) = ros.set_params({"allow_model_change": False})
    assert not ro.successful and "read-only" in ro.reason.lower()
    (ok,) = ros.set_params({"model.path": str(miniature_root / "qwen2_5_vl")})
    assert ok.successful, ok.reason
    assert _configure(ros), ros.node.last_error
    adapter = ros.node.pipeline.adapter
    assert adapter.name == str(miniature_root / "qwen2_5_vl") and adapter.family == "qwen2_5_vl"
    (locked,) = ros.set_params({"model.path": str(miniature_root / "llava")})
    assert not locked.successful and "read-only while a model is loaded" in locked.reason


def test_a_hub_id_without_allow_download_fails_configure_naming_it_and_how_to_allow_it(make_ros):
    """Expected: model.path a hub id (here a typo of one), model.allow_download false (the default):
    configure FAILS before any loader runs, with the id and the way to allow it in last_error and on
    /rosout; the node stays up and unconfigured."""
    ros = make_ros({"model.path": HUB_ID})
    rosout = RosoutLog(ros)
    try:
        assert _configure(ros) is False
        assert ros.state() == State.PRIMARY_STATE_UNCONFIGURED and ros.node.pipeline is None
        error = ros.node.last_error
        assert error.startswith(f"configure failed: model.path {HUB_ID!r} is no local directory"), error
        assert "downloads are off" in error and "model.allow_download true" in error
        assert "allow_download:=true" in error and "model.revision" in error
        rosout.wait("configure failed", HUB_ID, "model.allow_download", level=Log.ERROR)
    finally:
        rosout.close()


def test_an_allowed_hub_id_gets_past_the_gate_to_the_hub_client(make_ros):
    """Expected: with model.allow_download true the same id is no longer refused by the node: the load goes
    to the hub client (local_files_only no longer applies), which here, offline, fails with its own reason."""
    import huggingface_hub.constants

    if not huggingface_hub.constants.HF_HUB_OFFLINE:
        pytest.skip("HF_HUB_OFFLINE is not set: this test would contact a model hub")
    ros = make_ros({"model.path": HUB_ID, "model.allow_download": True, "model.revision": "0" * 40})
    assert _configure(ros) is False
    error = ros.node.last_error
    assert HUB_ID in error and "downloads are off" not in error, error


def test_a_home_relative_model_path_is_expanded_and_loads(make_ros, miniature_root, tmp_path, monkeypatch):
    """Expected: model.path '~/models/llava' with HOME pointing at a folder that holds it configures, and the
    adapter names the expanded path (before: the existence check passed but the loader got '~' as is)."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "llava").symlink_to(miniature_root / "llava")
    ros = make_ros({"model.path": "~/models/llava"})
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _configure(ros), ros.node.last_error
    assert ros.node.pipeline.adapter.name == str(tmp_path / "models" / "llava")


def test_an_empty_path_loads_the_packages_model_not_one_planted_in_the_working_directory(
    make_ros, miniature_root, tmp_path, monkeypatch
):
    """Expected: model.path empty, a loadable ./models/embedded (the LLaVA miniature) in the working
    directory: configure loads the embedded model of the package (its share folder), not the planted one."""
    planted = tmp_path / "models" / "embedded"
    shutil.copytree(miniature_root / "llava", planted)
    monkeypatch.chdir(tmp_path)
    shipped = default_model_path()
    assert shipped != str(planted)
    ros = make_ros({"model.path": "", "model.device": "cpu"})
    assert _configure(ros), ros.node.last_error
    assert ros.node.pipeline.adapter.name == shipped


def test_a_directory_with_only_pickled_weights_fails_configure_with_the_reason(make_ros, miniature_root, tmp_path):
    """Expected: the LLaVA miniature with its weights as pytorch_model.bin (the same tensors, pickled) and no
    .safetensors: configure FAILS with 'pickled weights only (pytorch_model.bin) ...: refused'."""
    src, bad = miniature_root / "llava", tmp_path / "bin_only"
    shutil.copytree(src, bad, ignore=shutil.ignore_patterns("*.safetensors"))
    torch.save(load_file(src / "model.safetensors"), bad / "pytorch_model.bin")
    ros = make_ros({"model.path": str(bad)})
    assert _configure(ros) is False
    error = ros.node.last_error
    assert error.startswith(f"configure failed: cannot load model {str(bad)!r}: ValueError: "), error
    assert "pickled weights only (pytorch_model.bin)" in error and "safetensors" in error
