"""The question's type drives type-2 handling, existence prompts stay singular, and ``model.dtype:
auto`` picks how each family ships on CUDA."""

from pathlib import Path

import pytest
import torch

from focus_ros.core.config import EMBEDDED_MODEL, ModelConfig, build_configs
from focus_ros.core.geometry import union_all
from focus_ros.core.models import load_adapter
from focus_ros.core.models.base import resolve_device_dtype
from focus_ros.core.pipeline import FocusPipeline
from focus_ros.core.targets import TYPE_ALL, TYPE_SINGLE, Target, for_question_type, singular
from focus_ros.eval.scenes import make_scene

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(
    "plural,one",
    [
        ("red objects", "red object"),
        ("boxes", "box"),
        ("berries", "berry"),
        ("horses", "horse"),
        ("people", "person"),
        ("dishes", "dish"),
        ("blue car", "blue car"),
        ("bus", "bus"),
    ],
)
def test_plural_targets_are_made_singular_for_the_existence_prompt(plural, one):
    assert singular(plural) == one


def test_only_every_instance_targets_ask_in_the_singular():
    assert Target("red objects", TYPE_ALL).existence_phrase == "red object"
    assert Target("glasses", TYPE_SINGLE).existence_phrase == "glasses"


def test_a_counting_question_makes_unmarked_targets_every_instance():
    got = for_question_type([Target("red objects"), Target("table")], TYPE_ALL)
    assert [t.kind for t in got] == [TYPE_ALL, TYPE_ALL]
    marked = [Target("birds", TYPE_ALL), Target("tree")]
    assert for_question_type(marked, TYPE_ALL) == marked  # the model said which one counts
    assert for_question_type([Target("cup")], TYPE_SINGLE) == [Target("cup")]


def test_counting_question_keeps_every_confident_crop_even_when_no_target_is_marked_all():
    """ "Count the yellow objects." gives the rule parser a plain target ("yellow objects", type 1);
    the question's type still makes FOCUS verify it as every-instance and answer from the union of
    every crop above the type-2 threshold."""
    path = str(REPO / EMBEDDED_MODEL)
    model, search = build_configs({"model.path": path, "model.device": "cpu", "search.target_extraction": "rule"})
    pipe = FocusPipeline(load_adapter(model), search)
    scene = make_scene(987654, 4)  # four yellow objects
    assert sum(o.color == "yellow" for o in scene.objects) == 4
    result = pipe.run(scene.image, "Count the yellow objects.")
    assert result.question_type == TYPE_ALL and result.targets == ["yellow objects"]
    kept = [r.box for r in result.regions if r.confidence > search.type2_threshold]
    assert len(kept) >= 2
    assert result.bbox == union_all(kept)


@pytest.mark.parametrize(
    "family_dtype,bf16,want",
    [("bfloat16", True, torch.bfloat16), ("bfloat16", False, torch.float16), ("float16", True, torch.float16)],
)
def test_auto_dtype_on_cuda_is_how_the_family_ships(monkeypatch, family_dtype, bf16, want):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    device, dtype = resolve_device_dtype(ModelConfig(path="x", device="auto", dtype="auto"), family_dtype)
    assert (device, dtype) == ("cuda", want)
    assert resolve_device_dtype(ModelConfig(path="x", device="cuda", dtype="float32"), family_dtype)[1] == torch.float32


def test_auto_dtype_on_cpu_is_float32_and_qwen_ships_bfloat16():
    from focus_ros.core.models.llava import LlavaAdapter
    from focus_ros.core.models.qwen2_5_vl import Qwen25VLAdapter

    assert resolve_device_dtype(ModelConfig(path="x", device="cpu", dtype="auto"), "bfloat16")[1] == torch.float32
    assert Qwen25VLAdapter.cuda_dtype == "bfloat16" and LlavaAdapter.cuda_dtype == "float16"
