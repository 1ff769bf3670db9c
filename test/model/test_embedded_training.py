"""The embedded model's training: the training script's machinery on a few steps, its losses,
recipes and gates (the committed model itself: test_embedded_committed_model.py)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from focus_ros.core.config import EMBEDDED_MODEL, ModelConfig
from focus_ros.core.models import load_adapter
from focus_ros.eval.scenes import SceneObject, SceneSpec, make_scene
from focus_ros.training.data import (
    STAGE_TASKS,
    SceneSamples,
    Sequencer,
    ViewObject,
    collate,
    patch_targets,
    processor_fill,
    render_view,
    symbolic_questions,
)
from focus_ros.training.gates import (
    heldout_scenes,
    matching_attention_share,
    shape_gate_from,
    shape_windows,
)
from focus_ros.training.losses import align_loss, lm_loss, symbolic_loss, vision_loss
from focus_ros.training.model import (
    Heads,
    build_model,
    build_processor_and_tokenizer,
    grow_heads,
    init_matching_attention,
    release_matching_heads,
    vision_features,
    word_ids,
)
from focus_ros.training.recipe import RECIPES, StageConfig, TrainConfig
from focus_ros.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / EMBEDDED_MODEL
HELDOUT = TrainConfig().heldout_seed
# The training gates on two held-out scenes each: the tests check the run, not the gates' numbers.
TINY_GATES = {"shape_gate_scenes": 2, "gate_scenes": 2}


def test_a_few_training_steps_of_every_stage_save_a_model_that_loads_and_a_rerun_resumes(tmp_path):
    tiny = tuple(
        replace(s, steps=2, scenes_per_step=1, crops_per_scene=2, max_sequences=8, warmup=1)
        for s in RECIPES["reuse-fp32"].stages
    )
    cfg = replace(RECIPES["reuse-fp32"], stages=tiny, train_short_side=(400, 500))
    out = Trainer(cfg, tmp_path / "work", tmp_path / "model", checkpoint_every=1, progress=False, **TINY_GATES).train()
    record = json.loads((out / "training.json").read_text())
    assert set(record["seconds"]) == {s.name for s in tiny}
    assert sorted(p.name for p in (tmp_path / "work").glob("after-*.pt")) == sorted(f"after-{s.name}.pt" for s in tiny)
    assert {"gate_vision", "gate_align"} <= set(record["metrics"])
    by_scale = {k: v for k, v in record["metrics"]["gate_vision"].items() if k.startswith("crops_shape_majority_")}
    assert sorted(by_scale) == sorted(f"crops_shape_majority_1/{k}" for k in (8, 6, 4, 3, 2))
    assert all(0.0 <= v <= 1.0 for v in by_scale.values())
    a = load_adapter(ModelConfig(path=str(out), device="cpu", local_files_only=True))  # from_pretrained
    assert a.family == "llava" and a.num_layers == cfg.shape.text_layers
    assert a.model.config.text_config.num_attention_heads == cfg.shape.text_heads + 4  # grown in stage 5
    again = Trainer(cfg, tmp_path / "work", tmp_path / "model2", progress=False)
    assert again.state.stage_index == len(tiny)  # resumed from the last checkpoint: nothing left to train
    assert again.model.config.text_config.num_attention_heads == cfg.shape.text_heads + 4


@pytest.mark.parametrize("steps_done", [2, 3])  # mid-stage; after the last step, before the stage's gate
def test_a_run_stopped_by_its_time_budget_checkpoints_and_resumes_to_the_same_weights(tmp_path, steps_done):
    """A lent GPU's lease or a session's end stops training between steps; the next run goes on from
    the checkpoint and ends where one uninterrupted run ends (vision and align draw no random questions)."""
    tiny = tuple(
        replace(s, steps=3, scenes_per_step=1, crops_per_scene=2, warmup=1) for s in RECIPES["reuse-fp32"].stages[:2]
    )  # vision, align
    cfg = replace(RECIPES["reuse-fp32"], stages=tiny, train_short_side=(400, 500))
    gates = dict(**TINY_GATES, progress=False, checkpoint_every=100)
    whole = Trainer(cfg, tmp_path / "whole", tmp_path / "m1", **gates)
    assert whole.train() == tmp_path / "m1"
    asked = []

    def after_some_steps() -> bool:  # asked before the stage, then after each step
        asked.append(1)
        return len(asked) > steps_done

    first = Trainer(cfg, tmp_path / "cut", tmp_path / "m2", **gates)
    assert first.train(stop=after_some_steps) is None
    assert not (tmp_path / "m2").exists()
    saved = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["state"]
    assert (saved["stage_index"], saved["step"]) == (0, steps_done)  # saved though checkpoint_every is 100
    assert "gate_vision" not in saved["metrics"]
    with pytest.raises(ValueError, match="seed: "):  # another --seed must not go on with these weights
        Trainer(replace(cfg, seed=cfg.seed + 1), tmp_path / "cut", tmp_path / "m2", **gates)
    with pytest.raises(ValueError, match="stage 1 vision: lr"):  # nor another setting of the stage begun
        Trainer(cfg.with_stage("vision", lr=1e-4), tmp_path / "cut", tmp_path / "m2", **gates)
    rest = Trainer(cfg, tmp_path / "cut", tmp_path / "m2", **gates)
    assert (rest.state.stage_index, rest.state.step) == (0, steps_done)
    assert rest.train(stop=lambda: False) == tmp_path / "m2"
    record = json.loads((tmp_path / "m2" / "training.json").read_text())
    uninterrupted = json.loads((tmp_path / "m1" / "training.json").read_text())["metrics"]
    assert record["metrics"]["gate_vision"] == uninterrupted["gate_vision"]
    assert record["metrics"]["vision"] == uninterrupted["vision"]  # the moving averages went on too
    a, b = whole.model.state_dict(), rest.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha, hb = whole.heads.state_dict(), rest.heads.state_dict()
    assert all(torch.equal(ha[k], hb[k]) for k in ha)
    stopped_at_stage_start = Trainer(cfg, tmp_path / "none", tmp_path / "m3", **gates)
    assert stopped_at_stage_start.train(stop=lambda: True) is None
    assert not (tmp_path / "none" / "checkpoint.pt").exists()  # nothing trained, nothing written


def test_a_run_started_from_another_runs_vision_stage_trains_its_later_stages_exactly_as_that_run(tmp_path):
    """``vision_from`` skips retraining the tower in a study of the LM stages: the vision stage trains
    only the tower and its heads, so starting stage 2 with them is that run's own state."""
    tiny = tuple(
        replace(s, steps=2, scenes_per_step=1, crops_per_scene=2, max_sequences=8, warmup=1)
        for s in RECIPES["reuse-fp32"].stages[:2]
    )  # vision, align
    cfg = replace(RECIPES["reuse-fp32"], stages=tiny, train_short_side=(400, 500))
    whole = Trainer(cfg, tmp_path / "whole", tmp_path / "m1", progress=False, **TINY_GATES)
    whole.train()
    later = Trainer(
        cfg,
        tmp_path / "later",
        tmp_path / "m2",
        progress=False,
        **TINY_GATES,
        vision_from=tmp_path / "whole" / "checkpoint.pt",
    )
    assert later.state.stage_index == 1  # align comes next
    later.train()
    a, b = whole.model.state_dict(), later.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # projector trained identically
    record = json.loads((tmp_path / "m2" / "training.json").read_text())
    assert record["vision_from"] == str(tmp_path / "whole" / "checkpoint.pt")
    assert set(record["seconds"]) == {"vision", "align"} and "gate_vision" in record["metrics"]
    wider = replace(cfg, shape=replace(cfg.shape, vision_hidden=2 * cfg.shape.vision_hidden))
    with pytest.raises(ValueError, match="shape"):  # another tower's shape
        Trainer(
            wider, tmp_path / "w", tmp_path / "m3", progress=False, vision_from=tmp_path / "whole" / "checkpoint.pt"
        )
    capped = replace(cfg, vision_object_cap=cfg.vision_object_cap + 4)  # the same tower, trained otherwise
    with pytest.raises(ValueError, match="vision_object_cap"):
        Trainer(
            capped, tmp_path / "c", tmp_path / "m4", progress=False, vision_from=tmp_path / "whole" / "checkpoint.pt"
        )
    later_cfg = cfg.with_stage("align", lr=1e-4)  # later stages may differ: the study
    assert (
        Trainer(
            later_cfg,
            tmp_path / "l2",
            tmp_path / "m5",
            progress=False,
            vision_from=tmp_path / "whole" / "checkpoint.pt",
        ).state.stage_index
        == 1
    )
    branch = tmp_path / "branch"  # or a copy of the run's state after a stage
    branch.mkdir()
    shutil.copyfile(tmp_path / "whole" / "after-vision.pt", branch / "checkpoint.pt")
    assert Trainer(later_cfg, branch, tmp_path / "m7", progress=False).state.stage_index == 1
    with pytest.raises(ValueError, match="stage 1 vision: steps"):  # the stages it has done stay its own
        Trainer(cfg.with_steps(vision=3), branch, tmp_path / "m7", progress=False)
    wider_lm = replace(cfg, shape=replace(cfg.shape, text_hidden=2 * cfg.shape.text_hidden))  # so may the LM
    assert (
        Trainer(
            wider_lm, tmp_path / "l3", tmp_path / "m6", progress=False, vision_from=tmp_path / "whole" / "checkpoint.pt"
        ).state.stage_index
        == 1
    )


def _training_script(name: str = "train_embedded_model"):
    """scripts/NAME.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_settings_are_never_chosen_on_the_held_out_scenes(tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    before = (model / "focus_settings.json").read_bytes()
    with pytest.raises(SystemExit) as stop:
        _training_script("eval_embedded_model").main(["--model", str(model), "--write-settings"])
    assert stop.value.code == 2 and "validation seed" in capsys.readouterr().err
    assert (model / "focus_settings.json").read_bytes() == before


def test_the_training_script_overrides_one_stage_field_typed_as_the_field_and_refuses_unknown_ones():
    script = _training_script()
    cfg = script.stage_set_arg(RECIPES["reuse-fp32"], "exist_symbolic.per_map=1")
    assert [s.per_map for s in cfg.stages] == [1] * len(cfg.stages)  # reuse-fp32 asked 8 in that stage
    cfg = script.stage_set_arg(cfg, "exist_crops.new_heads_only=true")
    assert [s.name for s in cfg.stages if s.new_heads_only] == ["exist-crops"]
    assert script.stage_set_arg(cfg, "tune.symbolic=0.5").stages[3].symbolic == 0.5
    # fields whose default None means "the recipe's" take true/false too
    assert script.stage_set_arg(cfg, "tune.mixed_precision=false").stages[3].mixed_precision is False
    assert script.stage_set_arg(cfg, "tune.frozen_layers=1").stages[3].frozen_layers == 1
    for bad in (
        "nope.per_map=1",
        "tune.bogus=1",
        "tune.steps=",
        "tune.frames=2",
        "tune.name=x",
        "tune.method_prompts=1",
    ):
        with pytest.raises(ValueError):
            script.stage_set_arg(cfg, bad)


def test_the_training_script_refuses_a_seed_whose_stages_would_draw_the_held_out_scenes(tmp_path, capsys):
    script = _training_script()
    heldout = RECIPES["default"].heldout_seed  # 987654: stage 4 of seed 98765
    with pytest.raises(SystemExit) as stop:
        script.main(["--seed", str(heldout // 10), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "m")])
    assert stop.value.code == 2 and "held-out" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # refused before anything was trained
    with pytest.raises(ValueError, match="held-out"):  # so does the config, outside the script
        replace(RECIPES["default"], seed=heldout // 10)


def test_items_that_share_a_scene_share_its_frame_view_and_differ_in_their_crops_and_one_per_scene_draws_each():
    cfg = replace(RECIPES["reuse-fp32"], train_short_side=(400, 500))
    stage = replace(cfg.stages[0], crops_per_scene=3)
    assert stage.scene_reuse == 2
    shared = SceneSamples(cfg, stage, seed=5, length=6, tasks=STAGE_TASKS["vision"])
    a, b, c = shared[2], shared[3], shared[4]
    scene1 = make_scene(5, 1, SceneSpec(short_side=cfg.train_short_side))  # items 2 and 3 draw scene 1
    fresh = render_view(
        scene1.image,
        (0, 0, scene1.width, scene1.height),
        processor_fill(shared.image_processor()),
        2 * cfg.shape.image_size,
    )[0]
    frame = shared.image_processor()(images=[fresh], return_tensors="pt")["pixel_values"][0]
    assert torch.equal(a["pixels"][0], frame) and torch.equal(b["pixels"][0], frame)
    assert not torch.equal(a["pixels"][0], c["pixels"][0])  # item 4: scene 2
    assert not torch.equal(a["pixels"][1:], b["pixels"][1:])  # their own crops
    single = SceneSamples(cfg, replace(stage, scene_reuse=1), seed=5, length=6, tasks=STAGE_TASKS["vision"])
    assert torch.equal(single[1]["pixels"][0], frame)  # one item a scene: scene i


def _grads(module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in module.parameters() if p.grad is not None])


def test_the_shared_prefix_lm_loss_has_the_loss_and_gradients_of_the_models_own_forward_on_whole_sequences():
    cfg = replace(RECIPES["reuse-fp32"], train_short_side=(400, 500))
    stage = replace(cfg.stages[3], crops_per_scene=3)
    proc, tok = build_processor_and_tokenizer(cfg.shape)
    model = build_model(tok, cfg.shape, seed=3)
    grow_heads(model, 4, seed=4)  # the later stages' head layout
    seq = Sequencer(tok, cfg.shape.grid**2)
    data = SceneSamples(cfg, stage, seed=11, length=2, tasks=STAGE_TASKS["tune"])
    batch = collate([data[0], data[1]])
    assert len({v for v, *_ in batch["questions"]}) < len(batch["questions"])  # views shared by questions
    lm = model.model.language_model

    loss = lm_loss(model, batch, seq, "cpu", 10_000, np.random.default_rng(0))
    loss[0].backward()
    shared = _grads(lm)

    # reference: transformers' own LLaVA forward (vision tower + projector + image-token scatter) on
    # every whole sequence, text-only ones without pixels
    model.zero_grad()
    rows = [seq.image_qa(q, a) + (v,) for v, _, q, a in batch["questions"]]
    rows += [seq.text_qa(p, a) + (-1,) for p, a in batch["text"]]
    logits, targets = [], []
    for ids, start, v in rows:
        x = torch.tensor([ids])
        pixels = batch["pixels"][[v]] if v >= 0 else None
        out = model(input_ids=x, pixel_values=pixels)
        logits.append(out.logits[0, start - 1 : len(ids) - 1])
        targets.append(x[0, start:])
    reference = torch.nn.functional.cross_entropy(torch.cat(logits), torch.cat(targets))
    reference.backward()
    assert loss[0].item() == pytest.approx(reference.item(), rel=1e-5)
    full = _grads(lm)
    assert ((shared - full).norm() / full.norm()).item() < 1e-4


def test_symbolic_existence_questions_sharing_a_map_have_the_loss_and_gradients_of_their_whole_sequences():
    cfg = RECIPES["reuse-fp32"]
    _, tok = build_processor_and_tokenizer(cfg.shape)
    model = build_model(tok, cfg.shape, seed=6)
    grow_heads(model, 4, seed=7)
    seq, (colours, _) = Sequencer(tok, cfg.shape.grid**2), word_ids(tok)
    lm = model.model.language_model
    loss, _ = symbolic_loss(model, seq, "cpu", 12, np.random.default_rng(5), colours, cfg.shape.grid, per_map=4)
    loss.backward()
    shared = _grads(lm)

    # reference: the same draws, every question's whole sequence on its own through the LM
    model.zero_grad()
    maps, group_of, seqs, starts = symbolic_questions(np.random.default_rng(5), seq, 12, cfg.shape.grid, 4)
    assert len(maps) == 3 and group_of == [0] * 4 + [1] * 4 + [2] * 4
    logits, targets = [], []
    for m, ids, st in zip(group_of, seqs, starts):
        x = torch.tensor([ids])
        emb = lm.embed_tokens(x).masked_scatter(
            (x == seq.image_id)[..., None], lm.embed_tokens.weight[torch.tensor(colours)[maps[m].flatten()]].detach()
        )
        logits.append(model.lm_head(lm(inputs_embeds=emb).last_hidden_state[0, st - 1]))
        targets.append(ids[st])
    reference = torch.nn.functional.cross_entropy(torch.stack(logits), torch.tensor(targets))
    reference.backward()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    full = _grads(lm)
    assert ((shared - full).norm() / full.norm()).item() < 1e-4


def test_the_alignment_loss_is_the_cross_entropy_against_the_colour_and_shape_word_soft_target():
    cfg = replace(RECIPES["reuse-fp32"], train_short_side=(400, 500))
    proc, tok = build_processor_and_tokenizer(cfg.shape)
    model = build_model(tok, cfg.shape, seed=5)
    colours, shapes = word_ids(tok)
    batch = collate([SceneSamples(cfg, replace(cfg.stages[1], crops_per_scene=3), 12, 1, ())[0]])
    loss, _ = align_loss(model, batch, colours, shapes, True, "cpu")
    # dense reference: the soft target as a vocabulary-wide distribution per patch
    with torch.no_grad():
        proj = model.model.multi_modal_projector(vision_features(model, batch["pixels"]))
        emb = model.model.language_model.embed_tokens.weight
        logp = torch.log_softmax(
            torch.nn.functional.normalize(proj, dim=-1) @ torch.nn.functional.normalize(emb, dim=-1).T * 20.0, -1
        )
        color, shape = batch["color"].flatten(1), batch["shape"].flatten(1)
        target = torch.zeros_like(logp)
        target.scatter_(-1, torch.tensor(colours)[color].unsqueeze(-1), 1.0)
        t_shape = torch.zeros_like(logp)
        t_shape.scatter_(-1, torch.tensor([0] + shapes)[shape.clamp_min(0)].unsqueeze(-1), 1.0)
        legible = ((shape > 0) & (color > 0)).unsqueeze(-1)
        assert legible.any()
        target = torch.where(legible, 0.7 * target + 0.3 * t_shape, target)
        ce = -(target * logp).sum(-1)
        pull = (proj.norm(dim=-1) - emb[torch.tensor(colours)[color]].norm(dim=-1)).pow(2)
        weight = torch.where(color > 0, 1.0, 0.2)
        reference = (weight * (ce + pull)).sum() / weight.sum()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)


def test_the_shape_gate_windows_hold_their_object_at_its_scale_centred_and_off_centre():
    seen = []
    for scene, obj, scale, offset, box in shape_windows(heldout_scenes(HELDOUT, 3)):
        x0, y0, x1, y1 = obj.box
        size = max(x1 - x0, y1 - y0)
        assert box.x0 <= x0 and box.y0 <= y0 and box.x1 >= x1 - 1e-6 and box.y1 >= y1 - 1e-6
        expected = min(size * int(scale.split("/")[1]), scene.width, scene.height)
        assert box.width == pytest.approx(expected) and box.height == pytest.approx(expected)
        seen.append((scene.index, scale, offset))
    assert len(seen) == len(set(seen)) == 3 * 5 * 2


def test_the_shape_gate_counts_each_scale_over_both_offsets_and_every_window_in_all():
    windows = [
        ("1/8", "centred", True),
        ("1/8", "offset", False),
        ("1/8", "centred", False),
        ("1/2", "centred", True),
        ("1/2", "offset", True),
    ]
    gates = shape_gate_from((windows, [False, True, False, False]))
    assert gates["shape_1/8"].value == pytest.approx(1 / 3) and gates["shape_1/8"].n == 3
    assert gates["shape_1/8 centred"].value == pytest.approx(0.5) and gates["shape_1/8 offset"].value == 0.0
    assert gates["shape_1/2"].value == 1.0 and gates["shape_1/2"].threshold == ">= 0.90"
    assert gates["shape_crops"].value == pytest.approx(3 / 5) and gates["shape_crops"].n == 5
    assert gates["shape_frames"].value == pytest.approx(0.25) and gates["shape_frames"].n == 4


def _big_and_small_object():
    """A 64 px object (8 x 8 patches) and a 16 px one (2 x 2 patches) in a 128 px view."""
    big = ViewObject(SceneObject("square", "red", (0, 0, 640, 640)), (0.0, 0.0, 64.0, 64.0), 1.0, 64.0)
    small = ViewObject(SceneObject("star", "blue", (960, 960, 1120, 1120)), (96.0, 96.0, 112.0, 112.0), 1.0, 16.0)
    return [big, small]


def test_patch_cells_give_every_patch_of_an_object_that_object_s_patch_count_and_background_zero():
    objects = _big_and_small_object()
    color, shape, cells = patch_targets(objects, 16, 8, 12.0)
    assert (cells[:8, :8] == 64).all() and (cells[12:14, 12:14] == 4).all()
    assert ((cells > 0) == (color > 0)).all() and (cells > 0).sum() == 68
    # legibility decides the shape labels only, never the counts
    assert (patch_targets(objects, 16, 8, 1e9)[2] == cells).all()


def test_the_vision_loss_with_an_object_cap_weighs_no_object_more_than_that_many_patches():
    cfg = RECIPES["reuse-fp32"]
    proc, tok = build_processor_and_tokenizer(cfg.shape)
    model = build_model(tok, cfg.shape, seed=3)
    heads = Heads(cfg.shape.vision_hidden)
    color, shape, cells = (torch.from_numpy(x)[None] for x in patch_targets(_big_and_small_object(), 16, 8, 12.0))
    batch = {
        "pixels": torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0)),
        "color": color,
        "shape": shape,
        "cells": cells,
    }
    with torch.no_grad():
        feats = vision_features(model, batch["pixels"])
        ce_c = torch.nn.functional.cross_entropy(heads.color(feats)[0], color.flatten(), reduction="none")
        ce_s = torch.nn.functional.cross_entropy(heads.shape(feats)[0], shape.flatten(), reduction="none")
        # big object: 64 patches of weight 4/64 (4 patches in all); small: 4 of weight 1; background 0.2
        w = torch.full((256,), 0.2)
        w[batch["cells"].flatten() == 64] = 4 / 64
        w[batch["cells"].flatten() == 4] = 1.0
        reference = (ce_c * w).sum() / w.sum() + (ce_s * w).sum() / w.sum()
        capped, _ = vision_loss(model, heads, batch, "cpu", object_cap=4)
        uncapped, _ = vision_loss(model, heads, batch, "cpu")
        loose, _ = vision_loss(model, heads, batch, "cpu", object_cap=64)  # no object above the cap
    assert capped.item() == pytest.approx(reference.item(), rel=1e-5)
    assert loose.item() == pytest.approx(uncapped.item(), rel=1e-5)
    assert capped.item() != pytest.approx(uncapped.item(), rel=1e-3)


def test_the_existence_first_recipes_train_their_symbolic_stage_between_alignment_and_tuning(tmp_path):
    assert [s.release_heads for s in RECIPES["existence-release"].stages] == [0, 0, 0, 2, 0]
    base = RECIPES["existence-release"]
    assert [s.name for s in base.stages] == ["vision", "align", "exist-symbolic", "tune-crops", "tune"]
    tiny = tuple(
        StageConfig(
            s.name,
            steps=2,
            lr=s.lr,
            scenes_per_step=1,
            crops_per_scene=2,
            frames=s.frames,
            max_sequences=8,
            warmup=1,
            symbolic=s.symbolic,
            release_heads=s.release_heads,
        )
        for s in base.stages
    )
    cfg = replace(base, stages=tiny, train_short_side=(400, 500))
    trainer = Trainer(cfg, tmp_path / "work", tmp_path / "model", checkpoint_every=1, progress=False, **TINY_GATES)
    trainer.train()
    assert 0.0 <= trainer.state.metrics["exist-symbolic"]["acc_exists_symbolic"] <= 1.0
    assert load_adapter(ModelConfig(path=str(tmp_path / "model"), device="cpu", local_files_only=True))


def test_with_steps_changes_only_the_named_stages_and_refuses_a_stage_the_recipe_lacks():
    base = RECIPES["reuse-fp32"]
    cut = base.with_steps(vision=800, tune_joint=200)
    assert [(s.name, s.steps) for s in cut.stages] == [
        (s.name, {"vision": 800, "tune-joint": 200}.get(s.name, s.steps)) for s in base.stages
    ]
    assert [replace(s, steps=0, warmup=0) for s in cut.stages] == [replace(s, steps=0, warmup=0) for s in base.stages]
    assert cut.stages[-1].warmup == 20  # at most a tenth of the shortened stage
    with pytest.raises(ValueError, match="no stage 'visoin'"):
        base.with_steps(visoin=10)


def test_with_stage_replaces_fields_of_the_one_named_stage_and_refuses_unknown_stages_and_fields():
    base = RECIPES["reuse-fp32"]
    cfg = base.with_stage("tune-crops", symbolic=0.25, per_map=2)
    at = base.stage_index("tune_crops")
    assert cfg.stages[at] == replace(base.stages[at], symbolic=0.25, per_map=2)
    assert cfg.stages[:at] + cfg.stages[at + 1 :] == base.stages[:at] + base.stages[at + 1 :]
    for name, fields in (("nope", {"steps": 1}), ("tune", {"bogus": 1}), ("tune", {"name": "x"})):
        with pytest.raises(ValueError):
            base.with_stage(name, **fields)


def test_smaller_batches_keep_every_stage_and_step_and_halve_the_scenes_and_sequences_per_step():
    base, half = RECIPES["full-bf16"], RECIPES["half-batch"]
    assert [(s.name, s.steps, s.lr, s.crops_per_scene) for s in half.stages] == [
        (s.name, s.steps, s.lr, s.crops_per_scene) for s in base.stages
    ]
    assert [(s.scenes_per_step, s.max_sequences) for s in half.stages] == [
        (round(s.scenes_per_step / 2), s.max_sequences // 2) for s in base.stages
    ]


def test_the_matching_initialisation_makes_a_colour_word_attend_to_the_slots_holding_it_in_the_heads_given_it():
    import torch

    _, tok = build_processor_and_tokenizer()
    shape = TrainConfig().shape
    seq = Sequencer(tok, shape.grid**2)
    colour_words, _ = word_ids(tok)
    ids, _ = seq.image_qa("Is there a red object in the image?", "Yes")
    ids_t = torch.tensor([ids])
    slots = torch.nonzero(ids_t[0] == seq.image_id).flatten()
    red = ids.index(colour_words[1])  # ' red' in the question
    shares = {}
    for gain, heads, release, grow in ((0.0, 0, 0, 0), (2.0, 0, 0, 0), (2.0, 2, 0, 0), (2.0, 0, 2, 0), (2.0, 2, 0, 4)):
        model = build_model(tok, shape, seed=1)
        model.config.text_config._attn_implementation = "eager"
        if grow:
            grow_heads(model, grow, seed=1)
        if gain:
            init_matching_attention(
                model, gain, len(ids) + 8, seed=1, heads=heads, first=shape.text_heads if grow else 0
            )
        if release:
            release_matching_heads(model, build_model(tok, shape, seed=1), release)
        lm = model.model.language_model
        x = lm.embed_tokens(ids_t).detach().clone()
        labels = torch.zeros(len(slots), dtype=torch.long)
        labels[100:104] = 1  # four slots hold the aligned ' red' embedding
        x[0, slots] = lm.embed_tokens.weight[torch.tensor(colour_words)[labels]].detach()
        with torch.no_grad():
            att = lm(inputs_embeds=x, output_attentions=True).attentions[0][0]  # [heads, L, L]
        shares[gain, heads, release, grow] = att[:, red, slots[100:104]].sum(-1)  # per head
    assert shares[0.0, 0, 0, 0].max() < 0.1  # random start: ~4/256 of the attention
    assert shares[2.0, 0, 0, 0].mean() > 0.4  # matching start: about half (0.52)
    for given in (shares[2.0, 2, 0, 0], shares[2.0, 0, 2, 0]):  # two heads given it / two released again
        assert given[:2].mean() > 0.4 and given[2:].max() < 0.1
    grown = shares[2.0, 2, 0, 4]  # given to the first two of four grown heads
    assert grown[4:6].mean() > 0.4 and grown[:4].max() < 0.1 and grown[6:].max() < 0.1


def test_grown_heads_leave_the_model_computing_what_it_did_and_reload_through_from_pretrained(tmp_path):
    import torch
    import transformers

    proc, tok = build_processor_and_tokenizer()
    shape = TrainConfig().shape
    model = build_model(tok, shape, seed=3).eval()
    ids = torch.tensor([Sequencer(tok, shape.grid**2).text_qa("What shape is the red object?", "circle")[0]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
        with pytest.raises(ValueError, match="do not divide"):
            grow_heads(model, 2, seed=5)  # a config transformers would refuse to load
        grow_heads(model, 4, seed=5)
        after = model(input_ids=ids).logits
    assert model.config.text_config.num_attention_heads == shape.text_heads + 4
    assert model.model.language_model.layers[3].self_attn.o_proj.weight.shape[1] == (shape.text_heads + 4) * 32
    assert torch.allclose(before, after, atol=1e-6)  # new heads' outputs start at zero
    model.save_pretrained(tmp_path)
    again = transformers.LlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(again(input_ids=ids).logits, after, atol=1e-6)


def test_grown_heads_alone_can_train_while_the_rest_stays_then_the_whole_lm_tunes_from_a_saved_model(tmp_path):
    import torch

    assert [s.name for s in RECIPES["reuse-fp32"].stages] == [
        "vision",
        "align",
        "tune-crops",
        "tune",
        "exist-symbolic",
        "exist-crops",
        "tune-joint",
    ]
    base = TrainConfig().grown_existence(new_heads_only=True)
    _, tok = build_processor_and_tokenizer()
    build_model(tok, base.shape, seed=2).save_pretrained(tmp_path / "start")  # stands for stages 1-4' result
    tiny = base.stages[:4] + tuple(
        replace(s, steps=2, scenes_per_step=1, crops_per_scene=2, max_sequences=8, warmup=1) for s in base.stages[4:]
    )
    cfg = replace(base, stages=tiny, train_short_side=(400, 500))
    trainer = Trainer(
        cfg,
        tmp_path / "work",
        tmp_path / "model",
        checkpoint_every=1,
        progress=False,
        init_from=tmp_path / "start",
        start_stage=4,
    )
    first = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.cfg = replace(cfg, stages=tiny[:6])  # stop after the new-heads-only stages
    trainer.train()
    lm = trainer.model.model.language_model
    assert lm.config.num_attention_heads == base.shape.text_heads + 4
    now = trainer.model.state_dict()
    unchanged = [k for k in first if "self_attn" not in k]
    assert all(torch.equal(first[k], now[k]) for k in unchanged)  # MLPs, norms, head, vision, projector
    cut = base.shape.text_heads * 32
    for layer in range(base.shape.text_layers):
        for name in ("q_proj", "k_proj", "v_proj"):
            key = f"model.language_model.layers.{layer}.self_attn.{name}.weight"
            old, new = first[key], now[key][:cut]
            scale = float(new.norm() / old.norm())  # AdamW's decoupled decay, nothing else
            assert 0.999 < scale <= 1.0 and torch.allclose(new, old * scale, atol=1e-6)
        o = now[f"model.language_model.layers.{layer}.self_attn.o_proj.weight"]
        assert o[:, cut:].abs().sum() > 0  # the new heads now write
    resumed = Trainer(cfg, tmp_path / "work", tmp_path / "model", progress=False)  # from the checkpoint
    assert resumed.state.stage_index == 6 and resumed.model.config.text_config.num_attention_heads == 8
    resumed.train()
    record = json.loads((tmp_path / "model" / "training.json").read_text())
    assert record["init_from"] == str(tmp_path / "start") and set(record["seconds"]) == {
        "exist-symbolic",
        "exist-crops",
        "tune-joint",
    }
    mlp = "model.language_model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(first[mlp], resumed.model.state_dict()[mlp])  # the joint tune trains the whole LM
    assert load_adapter(ModelConfig(path=str(tmp_path / "model"), device="cpu", local_files_only=True))


def test_the_matching_diagnostic_finds_the_initialised_heads_on_symbolic_slots_more_than_on_real_features():
    """The measurement behind docs/embedded-model.md: with word embeddings in the slots a matched
    head puts about 0.6 of the colour word's attention on its colour's slots, on the projected
    vision features about 0.1 (the word itself, cosine 1, outbids slots at cosine ~0.5)."""
    import transformers

    model = transformers.LlavaForConditionalGeneration.from_pretrained(MODEL).eval()
    cfg = TrainConfig()
    init_matching_attention(model, 2.0, 64 + 30, cfg.seed, heads=2)
    shares = matching_attention_share(model, cfg, scenes=3)
    assert shares["symbolic"].shape == (model.config.text_config.num_attention_heads,)
    assert (shares["symbolic"][:2] > 0.3).all() and (shares["symbolic"][:2] > 2 * shares["real"][:2]).all()


def test_the_grid_24_recipe_feeds_a_192_px_view_as_24_x_24_labelled_patches_with_default_fp32_s_stages():
    cfg = replace(RECIPES["grid-24"], train_short_side=(400, 500))
    assert cfg.shape.grid == 24 and cfg.stages == RECIPES["default-fp32"].stages
    item = SceneSamples(cfg, cfg.stages[0], cfg.stage_seed(0), 1, ())[0]
    assert item["pixels"].shape[-2:] == (192, 192)
    assert item["color"].shape[-2:] == (24, 24) and item["shape"].shape[-2:] == (24, 24)
    assert (item["color"] > 0).any()  # objects land on the finer grid
    _, tokenizer = build_processor_and_tokenizer(cfg.shape)
    model = build_model(tokenizer, cfg.shape, cfg.seed)
    assert model.config.image_seq_length == 24 * 24


def test_the_transfer_recipe_trains_on_varied_scenes_with_every_methods_prompts_and_keeps_their_words_whole():
    cfg = replace(RECIPES["transfer"], train_short_side=(400, 500))
    assert cfg.stages == RECIPES["full-bf16"].stages and cfg.scene_style == "varied" and cfg.method_prompts
    tune = cfg.stages[cfg.stage_index("tune")]
    samples = SceneSamples(cfg, tune, cfg.stage_seed(3), 6, STAGE_TASKS["tune"])
    plain = SceneSamples(RECIPES["full-bf16"], tune, cfg.stage_seed(3), 6, STAGE_TASKS["tune"])
    assert not np.array_equal(
        samples.scene(0).image, make_scene(cfg.stage_seed(3), 0, SceneSpec(short_side=(400, 500))).image
    )
    questions = [q for i in range(6) for q in samples[i]["questions"]]
    kinds = {kind for _, kind, _, _ in questions}
    assert {"zoom_exists", "zoom_latent", "zoom_answer"} <= kinds
    assert any("single word or phrase" in q or "appearance" in q for _, kind, q, _ in questions if kind == "shape")
    assert all(a in ("Yes", "No") for _, kind, _, a in questions if kind.startswith("zoom_"))
    assert not any(kind.startswith("zoom_") for i in range(6) for _, kind, _, _ in plain[i]["questions"])
    _, tokenizer = build_processor_and_tokenizer(cfg.shape, cfg.method_prompts)
    for word in (" zoomed", " appearance", " Yes", " No", " red", " star"):
        assert len(tokenizer.encode(word, add_special_tokens=False)) == 1, word
