"""Fine-tuning a trained embedded model on mixed scenes (``RECIPES["mixed-ft"]`` and
``"mixed-ft-vision"``): the scenes it draws and what each of its stages trains."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import torch

from focus_ros.core.config import ModelConfig
from focus_ros.core.models import load_adapter
from focus_ros.eval.scenes import SceneSpec, make_scene
from focus_ros.training.data import STAGE_TASKS, SceneSamples
from focus_ros.training.model import build_model, build_processor_and_tokenizer, grow_heads
from focus_ros.training.recipe import RECIPES
from focus_ros.training.trainer import Trainer

TINY_GATES = {"shape_gate_scenes": 2, "gate_scenes": 2}


def test_mixed_scenes_alternate_the_generators_own_scenes_with_varied_ones():
    cfg = replace(RECIPES["mixed-ft"], train_short_side=(400, 500))
    align = cfg.stages[cfg.stage_index("align")]
    samples = SceneSamples(cfg, align, 7, 4, STAGE_TASKS["align"])
    for k in range(4):
        style = "varied" if k % 2 else "plain"
        expected = make_scene(7, k, SceneSpec(short_side=(400, 500), style=style))
        assert np.array_equal(samples.scene(k).image, expected.image), k
    assert not np.array_equal(samples.scene(1).image, make_scene(7, 1, SceneSpec(short_side=(400, 500))).image)


def _parts(state: dict, prefix: str) -> dict:
    return {k: v.clone() for k, v in state.items() if k.startswith(prefix)}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_finetune_trains_fresh_vision_heads_on_the_saved_tower_then_the_tower_then_realigns_and_tunes(tmp_path):
    base = RECIPES["mixed-ft-vision"]
    assert [s.name for s in base.stages] == ["vision-heads", "vision", "align", "tune-joint"]
    assert base.scene_style == "mixed" and not base.method_prompts  # the saved model's tokenizer stays
    _, tok = build_processor_and_tokenizer()
    start = build_model(tok, base.shape, seed=3)
    grow_heads(start, 4, seed=0)  # a default model has grown its heads
    start.save_pretrained(tmp_path / "start")
    tiny = tuple(
        replace(s, steps=2, scenes_per_step=1, crops_per_scene=2, max_sequences=8, warmup=1) for s in base.stages
    )
    cfg = replace(base, stages=tiny, train_short_side=(400, 500))
    start_from = {"init_from": tmp_path / "start", "checkpoint_every": 1, "progress": False, **TINY_GATES}
    trainer = Trainer(cfg, tmp_path / "work", tmp_path / "model", **start_from)
    tower, projector = "model.vision_tower.", "model.multi_modal_projector."
    first = trainer.model.state_dict()
    t0, p0 = _parts(first, tower), _parts(first, projector)
    h0 = {k: v.clone() for k, v in trainer.heads.state_dict().items()}
    trainer.cfg = replace(cfg, stages=tiny[:1])
    trainer.train()
    assert _same(_parts(trainer.model.state_dict(), tower), t0)  # the tower is read, not trained
    assert not _same(h0, trainer.heads.state_dict())
    trainer.cfg = replace(cfg, stages=tiny[:2])
    trainer.train()
    t1 = _parts(trainer.model.state_dict(), tower)
    assert not _same(t1, t0) and _same(_parts(trainer.model.state_dict(), projector), p0)
    trainer.cfg = cfg
    trainer.train()
    now = trainer.model.state_dict()
    assert _same(_parts(now, tower), t1) and not _same(_parts(now, projector), p0)
    record = json.loads((tmp_path / "model" / "training.json").read_text())
    assert record["init_from"] == str(tmp_path / "start")
    assert set(record["seconds"]) == {"vision-heads", "vision", "align", "tune-joint"}
    adapter = load_adapter(ModelConfig(path=str(tmp_path / "model"), device="cpu", local_files_only=True))
    assert adapter.model.config.text_config.num_attention_heads == base.shape.text_heads + 4


def test_a_run_going_on_from_a_saved_models_last_stage_trains_as_one_run_and_keeps_its_record(tmp_path):
    """How a recipe that adds a stage is made from the model of the recipe before it
    (``--init-from DIR --start-stage N``): the same weights as one run through every stage."""
    base = RECIPES["method-tune-frozen"]
    tiny = tuple(
        replace(s, steps=2, scenes_per_step=1, crops_per_scene=2, max_sequences=8, warmup=1) for s in base.stages[-2:]
    )
    cfg = replace(base, stages=tiny, train_short_side=(400, 500))
    _, tok = build_processor_and_tokenizer(cfg.shape, cfg.method_prompts)
    build_model(tok, cfg.shape, seed=4).save_pretrained(tmp_path / "start")
    opts = {"progress": False, **TINY_GATES}
    whole = Trainer(cfg, tmp_path / "w1", tmp_path / "whole", init_from=tmp_path / "start", **opts)
    whole.train()
    Trainer(
        replace(cfg, stages=tiny[:1]), tmp_path / "w2", tmp_path / "first", init_from=tmp_path / "start", **opts
    ).train()
    rest = Trainer(cfg, tmp_path / "w3", tmp_path / "rest", init_from=tmp_path / "first", start_stage=1, **opts)
    rest.train()
    a, b = whole.model.state_dict(), rest.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    once = json.loads((tmp_path / "whole" / "training.json").read_text())
    record = json.loads((tmp_path / "rest" / "training.json").read_text())
    assert record["metrics"] == once["metrics"] and set(record["seconds"]) == {s.name for s in tiny}
    assert record["init_from"] == str(tmp_path / "first") and once["continues"] is None
    assert record["continues"] == {
        "init_from": str(tmp_path / "start"),
        "vision_from": None,
        "device": "cpu",
        "torch": torch.__version__,
        "stages": 1,
    }
    # a model trained with other settings is still a start, but its record is not this run's
    other = Trainer(
        replace(cfg, seed=cfg.seed + 1),
        tmp_path / "w4",
        tmp_path / "m4",
        **opts,
        init_from=tmp_path / "first",
        start_stage=1,
    )
    assert other.continues is None and other.state.seconds == {}
