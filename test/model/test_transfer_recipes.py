"""The recipes that train the embedded model for transfer: which stages see which scenes and prompts,
and what each stage trains (no training run: the stages' data and trainable parameters)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from focus_ros.core.config import EMBEDDED_MODEL
from focus_ros.training.data import STAGE_TASKS, SceneSamples
from focus_ros.training.model import build_model, build_processor_and_tokenizer
from focus_ros.training.recipe import RECIPES
from focus_ros.training.trainer import _set_trainable

REPO = Path(__file__).resolve().parents[2]


def samples(cfg, name, n):
    """The first ``n`` items the loader draws for stage ``name`` of ``cfg``."""
    stage = cfg.stage(name)
    return SceneSamples(cfg, stage, cfg.stage_seed(cfg.stage_index(name)), n, STAGE_TASKS[stage.task])


def test_the_curriculum_recipe_trains_the_tower_on_plain_then_mixed_scenes_and_asks_method_prompts_last():
    cfg = replace(RECIPES["curriculum"], train_short_side=(400, 500))
    names = [s.name for s in cfg.stages]
    assert names[:3] == ["vision", "vision-mixed", "align"] and names[-1] == "tune-joint"
    assert cfg.stages[1].task == "vision" and cfg.scene_style == "plain" and cfg.method_prompts
    # the second vision stage trains the tower, as the first does
    _, tokenizer = build_processor_and_tokenizer(cfg.shape, cfg.method_prompts)
    model = build_model(tokenizer, cfg.shape, cfg.seed)
    heads = torch.nn.Linear(1, 1)
    first, _ = _set_trainable(model, heads, cfg.stages[0], cfg.shape.text_heads)
    second, _ = _set_trainable(model, heads, cfg.stages[1], cfg.shape.text_heads)
    tower = {id(p) for p in model.model.vision_tower.parameters()}
    assert [id(p) for p in first] == [id(p) for p in second] and tower <= {id(p) for p in second}

    def styles(stage, n=4):
        data = samples(cfg, stage.name, n)
        return [data.scene(i).background != "plain" for i in range(n)], data

    assert styles(cfg.stages[0])[0] == [False] * 4
    assert styles(cfg.stages[1])[0] == [False, True, False, True]  # plain and varied scenes in turn
    for name, asks in (("tune", False), ("tune-joint", True)):
        _, data = styles(cfg.stage(name), 6)
        kinds = {kind for i in range(6) for _, kind, _, _ in data[i]["questions"]}
        assert any(k.startswith("zoom_") for k in kinds) == asks, name


def test_plain_then_mixed_trains_the_lm_on_plain_scenes_before_the_tower_and_projector_see_mixed_ones():
    cfg = replace(RECIPES["plain-then-mixed"], train_short_side=(400, 500))
    names = [s.name for s in cfg.stages]
    assert names[-3:] == ["vision-mixed", "align-mixed", "tune-joint"] and names.count("tune-joint") == 1
    assert [s.task for s in cfg.stages[-3:]] == ["vision", "align", "tune-joint"] and cfg.method_prompts
    _, tokenizer = build_processor_and_tokenizer(cfg.shape, cfg.method_prompts)
    model = build_model(tokenizer, cfg.shape, cfg.seed)
    heads = torch.nn.Linear(1, 1)

    def trained(name):
        return {id(p) for p in _set_trainable(model, heads, cfg.stage(name), cfg.shape.text_heads)[0]}

    # the second tower and alignment stages train what the first ones trained: nothing of the LM
    assert trained("vision-mixed") == trained("vision") and trained("align-mixed") == trained("align")
    assert not trained("align-mixed") & trained("tune")
    for name, varied, asks in (("tune", False, False), ("vision-mixed", True, False), ("tune-joint", True, True)):
        data = samples(cfg, name, 6)
        assert any(data.scene(i).background != "plain" for i in range(6)) == varied, name
        if cfg.stage(name).task != "vision":
            kinds = {kind for i in range(6) for _, kind, _, _ in data[i]["questions"]}
            assert any(k.startswith("zoom_") for k in kinds) == asks, name


def test_method_tune_asks_the_baselines_prompts_only_after_the_default_with_the_defaults_tokenizer():
    cfg = replace(RECIPES["method-tune"], train_short_side=(400, 500))
    assert cfg.stages[:-1] == RECIPES["full-bf16"].stages and not cfg.method_prompts
    data = samples(cfg, cfg.stages[-1].name, 6)
    questions = [(kind, text) for i in range(6) for _, kind, text, _ in data[i]["questions"]]
    assert any(kind.startswith("zoom_") for kind, _ in questions)
    assert any(data.scene(i).background != "plain" for i in range(6))
    # the default's tokenizer (not trained on these prompts) still encodes every one of them
    _, tokenizer = build_processor_and_tokenizer(cfg.shape, cfg.method_prompts)
    for _, text in questions:
        assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


def test_method_tune_frozen_keeps_the_lm_layer_that_focus_reads_and_trains_the_layers_above():
    cfg = replace(RECIPES["method-tune-frozen"], train_short_side=(400, 500))
    stage, unfrozen = cfg.stages[-1], RECIPES["method-tune"].stages[-1]
    assert cfg.stages[:-1] == RECIPES["full-bf16"].stages and RECIPES["default"] == RECIPES["method-tune-frozen"]
    assert replace(stage, frozen_layers=0, mixed_precision=None) == unfrozen and stage.mixed_precision is False
    _, tokenizer = build_processor_and_tokenizer(cfg.shape, cfg.method_prompts)
    model = build_model(tokenizer, cfg.shape, cfg.seed)
    heads = torch.nn.Linear(1, 1)
    trained = {id(p) for p in _set_trainable(model, heads, stage, cfg.shape.text_heads)[0]}
    everything = {id(p) for p in _set_trainable(model, heads, unfrozen, cfg.shape.text_heads)[0]}
    layers = model.model.language_model.layers
    first = {id(p) for p in layers[0].parameters()}
    assert first and first <= everything and not first & trained
    assert trained == everything - first and {id(p) for p in layers[1].parameters()} <= trained
    # a stage that trains only grown heads keeps the frozen layers as well
    grown = {id(p) for p in _set_trainable(model, heads, replace(stage, new_heads_only=True), cfg.shape.text_heads)[0]}
    assert grown and not grown & first
    # the committed model's FOCUS layer range lies inside the frozen layers
    search = json.loads((REPO / EMBEDDED_MODEL / "focus_settings.json").read_text())["search"]
    assert search["layer_end"] * len(layers) <= stage.frozen_layers
