"""The embedded default model: the training script's machinery on a few steps, the committed
model's abilities on held-out scenes (seed never used in training), and that it is the default."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from focus_ros.core.config import EMBEDDED_MODEL, ModelConfig, build_configs, default_model_path
from focus_ros.core.embedded import (RECIPES, StageConfig, Sequencer, TrainConfig, Trainer, build_model,
                                     build_processor_and_tokenizer, init_matching_attention,
                                     release_matching_heads, word_ids)
from focus_ros.core.embedded_eval import _unique, heldout_scenes, layer_ranges, pointing, window
from focus_ros.core.bench import normalise_answer
from focus_ros.core.geometry import crop
from focus_ros.core.models import load_adapter
from focus_ros.core.scenes import TEMPLATES

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / EMBEDDED_MODEL
HELDOUT = TrainConfig().heldout_seed


@pytest.fixture(scope="module")
def adapter():
    return load_adapter(ModelConfig(path=str(MODEL), family="llava", device="cpu", local_files_only=True))


@pytest.fixture(scope="module")
def scenes():
    return heldout_scenes(HELDOUT, 16)


def test_a_few_training_steps_of_every_stage_save_a_model_that_loads_and_a_rerun_resumes(tmp_path):
    tiny = tuple(StageConfig(s.name, steps=2, lr=s.lr, scenes_per_step=1, crops_per_scene=2, frames=s.frames,
                             max_sequences=8, warmup=1, symbolic=s.symbolic) for s in TrainConfig().stages)
    cfg = replace(TrainConfig(), stages=tiny, train_short_side=(400, 500))
    out = Trainer(cfg, tmp_path / "work", tmp_path / "model", checkpoint_every=1, progress=False).train()
    record = json.loads((out / "training.json").read_text())
    assert set(record["seconds"]) == {s.name for s in tiny}
    assert {"gate_vision", "gate_align"} <= set(record["metrics"])
    a = load_adapter(ModelConfig(path=str(out), device="cpu", local_files_only=True))   # from_pretrained
    assert a.family == "llava" and a.num_layers == cfg.shape.text_layers
    again = Trainer(cfg, tmp_path / "work", tmp_path / "model2", progress=False)
    assert again.state.stage_index == len(tiny)          # resumed from the last checkpoint: nothing left to train


def test_the_existence_first_recipes_train_their_symbolic_stage_between_alignment_and_tuning(tmp_path):
    assert [s.release_heads for s in RECIPES["existence-release"].stages] == [0, 0, 0, 2, 0]
    base = RECIPES["existence-release"]
    assert [s.name for s in base.stages] == ["vision", "align", "exist-symbolic", "tune-crops", "tune"]
    tiny = tuple(StageConfig(s.name, steps=2, lr=s.lr, scenes_per_step=1, crops_per_scene=2, frames=s.frames,
                             max_sequences=8, warmup=1, symbolic=s.symbolic, release_heads=s.release_heads)
                 for s in base.stages)
    cfg = replace(base, stages=tiny, train_short_side=(400, 500))
    trainer = Trainer(cfg, tmp_path / "work", tmp_path / "model", checkpoint_every=1, progress=False)
    trainer.train()
    assert 0.0 <= trainer.state.metrics["exist-symbolic"]["acc_exists_symbolic"] <= 1.0
    assert load_adapter(ModelConfig(path=str(tmp_path / "model"), device="cpu", local_files_only=True))


def test_the_matching_initialisation_makes_a_colour_word_attend_to_the_slots_holding_it_in_the_heads_given_it():
    import torch

    _, tok = build_processor_and_tokenizer()
    shape = TrainConfig().shape
    seq = Sequencer(tok, shape.grid ** 2)
    colour_words, _ = word_ids(tok)
    ids, _ = seq.image_qa("Is there a red object in the image?", "Yes")
    ids_t = torch.tensor([ids])
    slots = torch.nonzero(ids_t[0] == seq.image_id).flatten()
    red = ids.index(colour_words[1])                       # ' red' in the question
    shares = {}
    for gain, heads, release in ((0.0, 0, 0), (2.0, 0, 0), (2.0, 2, 0), (2.0, 0, 2)):
        model = build_model(tok, shape, seed=1)
        model.config.text_config._attn_implementation = "eager"
        if gain:
            init_matching_attention(model, gain, len(ids) + 8, seed=1, heads=heads)
        if release:
            release_matching_heads(model, build_model(tok, shape, seed=1), release)
        lm = model.model.language_model
        x = lm.embed_tokens(ids_t).detach().clone()
        labels = torch.zeros(len(slots), dtype=torch.long)
        labels[100:104] = 1                                # four slots hold the aligned ' red' embedding
        x[0, slots] = lm.embed_tokens.weight[torch.tensor(colour_words)[labels]].detach()
        with torch.no_grad():
            att = lm(inputs_embeds=x, output_attentions=True).attentions[0][0]     # [heads, L, L]
        shares[gain, heads, release] = att[:, red, slots[100:104]].sum(-1)        # per head
    assert shares[0.0, 0, 0].max() < 0.1                   # random start: ~4/256 of the attention
    assert shares[2.0, 0, 0].mean() > 0.4                  # matching start: about half (0.52)
    for given in (shares[2.0, 2, 0], shares[2.0, 0, 2]):   # two heads given it / two released again
        assert given[:2].mean() > 0.4 and given[2:].max() < 0.1


def test_the_committed_model_is_small_and_records_how_it_was_trained():
    size = sum(f.stat().st_size for f in MODEL.iterdir())
    assert size < 25 * 2 ** 20
    record = json.loads((MODEL / "training.json").read_text())
    assert [s["name"] for s in record["config"]["stages"]] == ["vision", "align", "tune-crops", "tune"]


def test_the_model_reads_the_shape_on_crops_where_the_target_fills_a_third_of_the_side(adapter, scenes):
    """Measured 0.83 at this scale on 120 held-out crops (scripts/eval_embedded_model.py); chance is
    1/6. 16 crops at >= 0.5 leaves room for sampling noise and still fails a model that cannot read."""
    rng = np.random.default_rng(0)
    right = 0
    for scene in scenes:
        o = _unique(scene)[0][0]
        box = window(o.box, 1 / 3, "centred", rng, scene.width, scene.height)
        prefix = adapter.prefill_image(crop(scene.image, box))
        reply = adapter.decode(adapter.extend(prefix, adapter.question_text(TEMPLATES["shape"].format(color=o.color))), 4)
        right += normalise_answer(reply, "shape") == o.shape
    assert right / len(scenes) >= 0.5


def test_focus_relevance_points_at_the_asked_colour_far_more_often_than_at_a_random_object(adapter, scenes):
    """Pointing (argmax cell of the FOCUS relevance map on the true box) with the model's own layer
    range; measured ~0.5 against ~0.13 for a random object on 100 held-out frames."""
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


def test_every_tool_defaults_to_the_embedded_model():
    assert Path(default_model_path()) == MODEL
    from focus_ros.cli import bench, common
    import argparse

    p = argparse.ArgumentParser()
    common.add_model_flags(p)
    args = p.parse_args([])
    model, search = common.configs_from_args(args)
    assert Path(model.path) == MODEL and model.family == "llava"
    assert Path(bench.default_model()) == MODEL
    settings = json.loads((MODEL / "focus_settings.json").read_text())["search"]
    assert (search.layer_start, search.layer_end) == (settings["layer_start"], settings["layer_end"])
