"""The eighth stage's data for the baselines: ViCrop's two-image answer prompt ([frame, crop] in one
sequence) trained as the attention crop asks it, and existence negatives near a present colour."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from focus_ros.training.data import NEAR_COLORS, STAGE_TASKS, SceneSamples, Sequencer, collate, sample_views
from focus_ros.training.losses import lm_loss
from focus_ros.training.model import VICROP_INSTRUCTION, build_model, build_processor_and_tokenizer, grow_heads
from focus_ros.training.recipe import RECIPES


def _paired_data(n_items: int, share: float = 1.0):
    cfg = replace(RECIPES["reuse-fp32"], train_short_side=(400, 500))
    stage = replace(cfg.stages[3], crops_per_scene=4, paired=share)
    data = SceneSamples(cfg, stage, seed=11, length=n_items, tasks=STAGE_TASKS["tune"])
    return cfg, collate([data[i] for i in range(n_items)])


def test_the_paired_prompt_has_the_token_ids_the_processor_gives_a_frame_prefix_then_a_crop_and_question():
    cfg, batch = _paired_data(1)
    proc, tok = build_processor_and_tokenizer(cfg.shape)
    seq = Sequencer(tok, cfg.shape.grid**2)
    q = f"What shape is the red object? {VICROP_INSTRUCTION}"
    ids, start = seq.paired_qa(q, "circle")
    image = np.zeros((64, 64, 3), np.uint8)
    # what LlavaAdapter.prefill_image and extend_with_image hand the model, one processor call each
    prefix = proc(images=image, text="USER: <image>\n", return_tensors="pt")["input_ids"][0].tolist()
    second = proc(images=image, text=f"<image>\n{q} ASSISTANT:", return_tensors="pt", add_special_tokens=False)
    assert ids[:start] == prefix + second["input_ids"][0].tolist()
    assert tok.decode(ids[start:]).strip() == f"circle{tok.eos_token}"


def test_the_paired_loss_has_the_loss_and_gradients_of_the_models_own_forward_on_two_images_in_one_sequence():
    cfg, batch = _paired_data(2)
    paired = batch["paired"]
    assert paired and {f for f, *_ in paired} <= {0, 5} and not {c for _, c, *_ in paired} & {0, 5}  # frame, crop
    assert {a for *_, a in paired} & {"Yes", "No"} and {a for *_, a in paired} - {"Yes", "No"}  # both kinds
    assert all(q.endswith(VICROP_INSTRUCTION) for _, _, q, _ in paired)
    batch = dict(batch, questions=[], text=[])
    _, tok = build_processor_and_tokenizer(cfg.shape)
    model = build_model(tok, cfg.shape, seed=3)
    grow_heads(model, 4, seed=4)
    seq = Sequencer(tok, cfg.shape.grid**2)
    lm = model.model.language_model
    loss, stats = lm_loss(model, batch, seq, "cpu", 10_000, np.random.default_rng(0))
    loss.backward()
    shared = torch.cat([p.grad.flatten() for p in lm.parameters() if p.grad is not None])
    assert "acc_paired" in stats

    # reference: transformers' own LLaVA forward with both images' pixels, scattered in order
    model.zero_grad()
    logits, targets = [], []
    for f, c, q, a in paired[: max(1, 10_000 // 8)]:
        ids, start = seq.paired_qa(q, a)
        x = torch.tensor([ids])
        out = model(input_ids=x, pixel_values=batch["pixels"][[f, c]])
        logits.append(out.logits[0, start - 1 : len(ids) - 1])
        targets.append(x[0, start:])
    reference = torch.nn.functional.cross_entropy(torch.cat(logits), torch.cat(targets))
    reference.backward()
    full = torch.cat([p.grad.flatten() for p in lm.parameters() if p.grad is not None])
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    assert ((shared - full).norm() / full.norm()).item() < 1e-4


def test_near_negatives_ask_for_a_colour_nearest_to_one_the_view_shows():
    cfg = replace(RECIPES["reuse-fp32"], train_short_side=(400, 500))
    stage = replace(cfg.stages[3], crops_per_scene=4)
    near = SceneSamples(cfg, replace(stage, near_negatives=1.0), 11, 6, ("exists",))
    asked = 0
    for i in range(6):
        # the views item i drew (its generator's first draws), and what view_questions calls present
        rng = np.random.default_rng(np.random.SeedSequence([11, i, 7]))
        views = sample_views(rng, near.scene(i), stage.crops_per_scene, stage.frames, cfg)
        for k, kind, q, a in near[i]["questions"]:
            if kind != "exists" or a != "No":
                continue
            objs = views[k].objects
            seen = [v for v in objs if v.size >= cfg.visible_px and v.visible >= 0.5]
            present = {v.obj.color for v in seen} - {v.obj.color for v in objs if v not in seen}
            near_absent = {n for c in present for n in NEAR_COLORS[c]} - {v.obj.color for v in objs}
            if near_absent:
                asked += 1
                assert any(f" {c} " in q for c in near_absent), q
    assert asked >= 5
