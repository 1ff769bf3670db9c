"""The committed embedded model: its abilities on held-out scenes (a seed never used in training),
how it was trained, and that it is every tool's default."""

from __future__ import annotations

import filecmp
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from focus_ros.core.config import EMBEDDED_MODEL, ModelConfig, build_configs, default_model_path
from focus_ros.core.geometry import crop
from focus_ros.core.models import load_adapter
from focus_ros.eval.bench import normalise_answer
from focus_ros.eval.scenes import TEMPLATES
from focus_ros.training.gates import (
    heldout_scenes,
    pointing,
    unique_scene,
    window,
)
from focus_ros.training.recipe import RECIPES, StageConfig, TrainConfig, with_defaults

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / EMBEDDED_MODEL
HELDOUT = TrainConfig().heldout_seed


@pytest.fixture(scope="module")
def adapter():
    return load_adapter(ModelConfig(path=str(MODEL), family="llava", device="cpu", local_files_only=True))


@pytest.fixture(scope="module")
def scenes():
    return heldout_scenes(HELDOUT, 16)


def test_the_committed_model_is_small_and_records_how_it_was_trained():
    size = sum(f.stat().st_size for f in MODEL.iterdir())
    assert size < 25 * 2**20
    record = json.loads((MODEL / "training.json").read_text())
    # made by the training script's default recipe as it stands, every setting included: its first seven
    # stages in one run from scratch, the eighth going on from that run's model (`--init-from DIR
    # --start-stage 7`, which trains as one run would, and carries that run's record); `python
    # scripts/train_embedded_model.py` makes this model in one run
    default = RECIPES["default"]
    assert [StageConfig(**s) for s in record["config"]["stages"]] == list(default.stages)
    saved = json.loads(json.dumps(asdict(default)))  # tuples as the record holds them: lists
    # settings added since the model was trained count at their defaults (as a resume compares them)
    recorded = json.loads(json.dumps(with_defaults(TrainConfig, record["config"])))
    assert {k: v for k, v in recorded.items() if k != "stages"} == {k: v for k, v in saved.items() if k != "stages"}
    assert record["config"]["mixed_precision"] is True
    assert set(record["seconds"]) == {s.name for s in default.stages}
    assert record["vision_from"] is None
    earlier = record.get("continues") or {"stages": 0, "init_from": None, "vision_from": None}
    if earlier["stages"]:  # the run that went on from the seven stages' model recorded it
        assert earlier["stages"] == len(default.stages) - 1
    else:
        assert record["init_from"] is None
    assert earlier["init_from"] is None and earlier["vision_from"] is None
    config = json.loads((MODEL / "config.json").read_text())["text_config"]
    assert config["num_attention_heads"] == TrainConfig().shape.text_heads + 4  # grown in stage 5


def test_the_model_answers_the_existence_prompt_on_crops_that_hold_or_lack_the_colour(adapter, scenes):
    """FOCUS's verification: Yes/No logits of its own existence prompt, balanced present/absent
    (absent colours mostly elsewhere in the frame). Measured 0.995 on 200 held-out crops; a
    constant answer scores 0.5, and 32 answers at >= 0.85 still fail it."""
    from focus_ros.training.gates import existence_gate

    gate = existence_gate(adapter, scenes)["exists_crops"]
    assert gate.n == 2 * len(scenes) and gate.value >= 0.85


def test_the_model_reads_the_shape_on_crops_where_the_target_fills_a_third_of_the_side(adapter, scenes):
    """Measured 0.955 at this scale on 200 held-out crops (scripts/eval_embedded_model.py); chance is
    1/6. 16 crops at >= 0.75 leaves room for sampling noise (a 0.955 reader misses 5 or more of 16 with
    probability 0.0005) and still fails a model that cannot read."""
    rng = np.random.default_rng(0)
    right = 0
    for scene in scenes:
        o = unique_scene(scene)[0][0]
        box = window(o.box, 1 / 3, "centred", rng, scene.width, scene.height)
        prefix = adapter.prefill_image(crop(scene.image, box))
        reply = adapter.decode(
            adapter.extend(prefix, adapter.question_text(TEMPLATES["shape"].format(color=o.color))), 4
        )
        right += normalise_answer(reply, "shape") == o.shape
    assert right / len(scenes) >= 0.75


def test_focus_relevance_points_at_the_asked_colour_far_more_often_than_at_a_random_object(adapter, scenes):
    """Pointing (argmax cell of the FOCUS relevance map on the true box) with the model's own layer
    range (layer 0); measured 0.47 against 0.146 for a random object on 100 held-out frames."""
    _, search = build_configs({"model.path": str(MODEL)})
    rng_name = "chosen"
    gates = pointing(adapter, scenes, {rng_name: (search.layer_start, search.layer_end)})
    hit, base = gates[f"pointing_{rng_name}"].value, gates[f"random_{rng_name}"].value
    assert hit >= 2 * base and hit >= 0.25


def test_the_model_lists_the_question_target_through_the_papers_extraction_prompt(adapter):
    from focus_ros.core.pipeline import FocusPipeline

    _, search = build_configs({"model.path": str(MODEL)})
    pipe = FocusPipeline(adapter, search)
    targets, source = pipe.extract_targets("What shape is the purple object?")
    assert source == "model" and [t.phrase for t in targets] == ["purple object"]


def _is_the_committed_model(path) -> bool:
    """The committed model, found in the installed share folder (first: symlinks or a copy) or this checkout."""
    return filecmp.cmp(Path(path) / "model.safetensors", MODEL / "model.safetensors", shallow=False)


def test_every_tool_defaults_to_the_embedded_model():
    assert _is_the_committed_model(default_model_path())
    import argparse

    from focus_ros.cli import bench, common

    p = argparse.ArgumentParser()
    common.add_model_flags(p)
    args = p.parse_args([])
    model, search = common.configs_from_args(args)
    assert _is_the_committed_model(model.path) and model.family == "llava"
    assert _is_the_committed_model(bench.default_model())
    settings = json.loads((MODEL / "focus_settings.json").read_text())["search"]
    assert (search.layer_start, search.layer_end) == (settings["layer_start"], settings["layer_end"])
