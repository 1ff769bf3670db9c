"""The baselines (zoom tree, attention crop, random windows) and multiple-choice answering, on the
random-weight miniatures: each method's forward passes are what its algorithm implies."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from focus_ros.core.config import ModelConfig, build_configs
from focus_ros.core.geometry import Box, pad_to_square_mapping
from focus_ros.core.methods import AttentionCropConfig, ZoomConfig, split_method_settings
from focus_ros.core.methods.answer import option_scores, parse_options
from focus_ros.core.methods.attention_crop import vicrop_box
from focus_ros.core.methods.zoom import quadrants
from focus_ros.core.models import load_adapter
from focus_ros.core.pipeline import METHODS, Cancelled, FocusPipeline

_ADAPTERS = {}
W, H = 1600, 900
Q = "What shape is the red object?"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def adapter_for(root, family):
    if family not in _ADAPTERS:
        _ADAPTERS[family] = load_adapter(ModelConfig(path=str(root / family)))
    return _ADAPTERS[family]


def pipeline(root, family="llava", zoom=None, **search):
    values = {"model.path": str(root / family), "search.target_extraction": "rule", "search.overrun": False,
              "search.max_steps": 3}
    values.update({f"search.{k}": v for k, v in search.items()})
    _, cfg = build_configs(values)
    return FocusPipeline(adapter_for(root, family), cfg, zoom=zoom)


def frame(seed=0, w=W, h=H):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def attn_impl(pipe):
    return pipe.adapter.model.config.get_text_config()._attn_implementation


# ----------------------------------------------------------------------------- zoom tree
def test_zoom_tree_that_never_stops_expands_exactly_two_levels(miniature_root):
    pipe = pipeline(miniature_root, zoom=ZoomConfig(max_depth=2, max_steps=2, answer_threshold=1.0, native_side=336))
    r = pipe.run(frame(), Q, method="zoom")
    # frame prefix + root's answering prompt
    # + 4 quadrants (prefill + existence + "would zooming help", they may be zoomed again)
    # + the best quadrant's answering prompt + its 4 quadrants (prefill + existence: depth limit, leaves)
    # + the answer on the chosen view's cached prefix
    assert r.forward_passes == 1 + 1 + 4 * 3 + 1 + 4 * 2 + 1
    assert len(r.regions) == 8
    level1, level2 = [g.box for g in r.regions[:4]], [g.box for g in r.regions[4:]]
    assert level1 == quadrants(Box(0, 0, W, H))
    parent = next(b for b in level1 if all(b.union(c) == b for c in level2))
    assert level2 == quadrants(parent)
    best = max(r.regions[:4], key=lambda g: g.relevance)          # relevance = the node's priority
    assert best.box == parent


def test_zoom_tree_stops_at_the_root_when_the_frame_answers_confidently(miniature_root):
    pipe = pipeline(miniature_root, zoom=ZoomConfig(answer_threshold=0.0))
    r = pipe.run(frame(), Q, method="zoom")
    assert r.forward_passes == 1 + 1 + 1          # prefix, answering confidence, answer on the same prefix
    assert r.regions == [] and r.bbox == Box(0, 0, W, H)


def test_zoom_tree_respects_the_depth_limit(miniature_root):
    pipe = pipeline(miniature_root, zoom=ZoomConfig(max_depth=1, max_steps=5, answer_threshold=1.0))
    r = pipe.run(frame(), Q, method="zoom")
    # root expanded into 4 leaves (prefill + existence), each then popped (answering prompt), answer
    assert r.forward_passes == 1 + 1 + 4 * 2 + 4 + 1
    assert len(r.regions) == 4


def test_zoom_tree_never_zooms_below_the_encoder_input_size(miniature_root):
    pipe = pipeline(miniature_root, zoom=ZoomConfig(max_depth=5, max_steps=50, answer_threshold=1.0,
                                                    native_side=500))
    r = pipe.run(frame(), Q, method="zoom")
    # 1600 -> 800 -> 400 px: quadrants of 400 x 225 px are never split
    assert {(g.box.width, g.box.height) for g in r.regions} == {(800, 450), (400, 225)}
    assert len(r.regions) == 4 + 16


# ----------------------------------------------------------------------------- attention crop
def test_attention_crop_costs_two_prompts_then_reuses_the_generic_map_and_restores_sdpa(miniature_root):
    pipe = pipeline(miniature_root)
    image = frame(1)
    first = pipe.run(image, Q, method="attention", frame_key="f")
    # frame prefix + question prompt + generic prompt + crop prefill + answer prompt
    assert first.forward_passes == 5
    second = pipe.run(image, "What shape is the blue object?", method="attention", frame_key="f")
    assert second.prefix_cached and second.forward_passes == 3
    assert attn_impl(pipe) == "sdpa"
    box = first.bbox
    assert 0 <= box.x0 < box.x1 <= W and 0 <= box.y0 < box.y1 <= H
    side = max(box.width, box.height)
    assert any(abs(side - 336 * r) < 1 for r in AttentionCropConfig().ratios)
    assert first.relevance_maps["attention"].shape == (24, 24)


def test_vicrop_box_centres_the_sharpest_window_on_the_attention_peak():
    mapping = pad_to_square_mapping(2400, 2400, 24)            # 100 px per cell
    rel = np.full((24, 24), 0.01)
    rel[15:17, 5:7] = 1.0                                       # a 200 px hot spot centred at (600, 1600)
    box, side = vicrop_box(rel, mapping, 336, (1.0, 1.2, 1.4, 1.6, 1.8, 2.0))
    cx, cy = box.center
    assert abs(cx - 600) <= 100 and abs(cy - 1600) <= 100
    assert box.width == box.height == side
    small = pad_to_square_mapping(300, 200, 24)                 # frame smaller than one crop
    assert vicrop_box(rel, small, 336, (1.0, 2.0))[0] == Box(0, 0, 300, 200)


def test_only_the_attention_crop_asks_for_attention_weights(miniature_root):
    pipe = pipeline(miniature_root)
    calls = []
    hook = pipe.adapter.model.register_forward_hook(      # what each model call returned, and under which kernel
        lambda m, a, kw, out: calls.append((out.attentions is not None, attn_impl(pipe))), with_kwargs=True)
    try:
        for method in METHODS:
            calls.clear()
            pipe.run(frame(2, 800, 600), Q, method=method)
            asked = [c for c in calls if c[0]]
            if method == "attention":
                assert asked and all(impl == "eager" for _, impl in asked)
            else:
                assert not asked, method
                assert all(impl == "sdpa" for _, impl in calls), method
    finally:
        hook.remove()
    src = Path(__file__).resolve().parents[1] / "focus_ros"
    users = {p.name for p in src.rglob("*.py") if "output_attentions" in p.read_text()}
    assert users and all("attention_crop" in n or "vicrop" in n for n in users), users


# ----------------------------------------------------------------------------- random windows
def test_random_windows_verify_as_many_windows_as_focus_without_its_relevance_pass(miniature_root):
    pipe = pipeline(miniature_root, max_steps=3)
    image = frame(3)
    focus = pipe.run(image, Q, method="focus")
    rand = pipe.run(image, Q, method="random")
    assert sum(g.confidence >= 0 for g in focus.regions) == sum(g.confidence >= 0 for g in rand.regions) == 3
    assert rand.forward_passes == focus.forward_passes - 1     # no relevance prompt; all else identical
    cell = max(W, H) / 24                                       # LLaVA: 24 cells over the padded square
    for g in rand.regions:
        assert 0 <= g.box.x0 < g.box.x1 <= W and 0 <= g.box.y0 < g.box.y1 <= H
        assert g.box.width <= 7 * cell + 1 and max(g.box.width, g.box.height) >= 3 * cell - 1


def test_random_windows_are_reproducible_for_a_seed_and_change_with_it(miniature_root):
    image = frame(4)
    boxes = []
    for seed in (0, 0, 1):
        pipe = pipeline(miniature_root, seed=seed)
        boxes.append([g.box for g in pipe.run(image, Q, method="random").regions])
    assert boxes[0] == boxes[1] and boxes[0] != boxes[2]


# ----------------------------------------------------------------------------- every method
@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_5_vl"])
@pytest.mark.parametrize("method", ["zoom", "attention", "random"])
def test_baselines_run_on_every_family_with_the_global_plus_crop_view(miniature_root, family, method):
    pipe = pipeline(miniature_root, family, zoom=ZoomConfig(max_steps=2, answer_threshold=1.0))
    r = pipe.run(frame(5, 1280, 720), "What shape is the red object?", method=method, frame_key="k")
    assert r.method == method and r.forward_passes >= 3 and r.timings["total"] > 0
    assert 0 <= r.bbox.x0 < r.bbox.x1 <= 1280 and 0 <= r.bbox.y0 < r.bbox.y1 <= 720
    assert attn_impl(pipe) == "sdpa"


def test_a_cancelled_baseline_stops_with_cancelled(miniature_root):
    pipe = pipeline(miniature_root)
    with pytest.raises(Cancelled):
        pipe.run(frame(), Q, method="zoom", cancel=lambda: True)


def test_baseline_settings_parse_from_set_flags():
    rest, zoom, attention = split_method_settings(["search.max_steps=2", "zoom.max_steps=7", "attention.ratios=1,1.5"])
    assert rest == ["search.max_steps=2"] and zoom.max_steps == 7 and attention.ratios == (1.0, 1.5)
    with pytest.raises(ValueError, match="zoom.depth"):
        split_method_settings(["zoom.depth=2"])
    with pytest.raises(ValueError, match="answer_threshold"):
        split_method_settings(["zoom.answer_threshold=2"])


# ----------------------------------------------------------------------------- multiple choice
@pytest.mark.parametrize("question,stem,options", [
    ("What is the color of the bag? (A) red (B) blue (C) dark green", "What is the color of the bag?",
     ["red", "blue", "dark green"]),
    ("What is the material of the glove?\n(A) rubber\n(B) cotton\nAnswer with the option's letter from the "
     "given choices directly.", "What is the material of the glove?", ["rubber", "cotton"]),
    ("Is the cup left or right of the plate?\nA. left\nB. right", "Is the cup left or right of the plate?",
     ["left", "right"]),
    ("What shape is the red object?", "What shape is the red object?", []),
    ("What is in box (A) of the chart?", "What is in box (A) of the chart?", []),
])
def test_options_are_parsed_from_the_question(question, stem, options):
    c = parse_options(question)
    assert (c.stem, c.options) == (stem, options)


def test_multiple_choice_picks_the_option_with_the_highest_mean_log_likelihood(miniature_root):
    pipe = pipeline(miniature_root)
    adapter = pipe.adapter
    image = frame(6, 640, 480)
    options = ["red", "dark purple", "blue"]
    q = "What color is the square? (A) red (B) dark purple (C) blue"
    r = pipe.run(image, q, method="vanilla")
    multi = sum(len(adapter.tokenizer(" " + o, add_special_tokens=False)["input_ids"]) > 1 for o in options)
    assert r.generated_tokens == 0
    assert r.forward_passes == 1 + 1 + multi                 # prefix, question, one pass per multi-token option
    # the same scores from one full forward pass without any cache
    prefix = adapter.prefill_image(image)
    ext = adapter.extend(prefix, adapter.question_text("What color is the square?"))
    cached = option_scores(adapter, ext, options)
    fresh = []
    for o in options:
        opt_ids = torch.tensor([adapter.tokenizer(" " + o, add_special_tokens=False)["input_ids"]])
        ids = torch.cat([prefix.input_ids, ext.input_ids, opt_ids], dim=1)
        inputs = adapter._image_inputs(image, adapter.prefix_text(), add_special_tokens=True)
        inputs.pop("attention_mask", None)
        inputs["input_ids"] = ids
        with torch.inference_mode():
            logits = adapter.model(**inputs, use_cache=False).logits[0].float()
        n = opt_ids.shape[1]
        logp = torch.log_softmax(logits[-n - 1:-1], dim=-1)
        fresh.append(float(logp[torch.arange(n), opt_ids[0]].mean()))
    np.testing.assert_allclose(cached, fresh, atol=1e-4)
    best = int(np.argmax(fresh))
    assert r.answer == options[best] and r.choice == "ABC"[best]


@pytest.mark.parametrize("method", ["focus", "zoom", "attention", "random"])
def test_every_method_answers_multiple_choice_with_an_option(miniature_root, method):
    pipe = pipeline(miniature_root, zoom=ZoomConfig(max_steps=1))
    r = pipe.run(frame(7, 800, 600), "What shape is the red object? (A) circle (B) star (C) cross", method=method)
    assert r.answer in ("circle", "star", "cross") and r.choice in ("A", "B", "C") and r.generated_tokens == 0
    if method in ("focus", "zoom", "random"):
        assert r.targets == ["red object"]             # the options never reach target extraction


def test_focus_vqa_answers_with_every_method_by_name(miniature_root, sample_image_path, tmp_path, capsys):
    from focus_ros.cli.vqa import main as focus_vqa

    batch = tmp_path / "q.jsonl"
    batch.write_text("\n".join(json.dumps({"image": str(sample_image_path), "question": Q, "method": m})
                               for m in METHODS) + "\n")
    rc = focus_vqa(["--model", str(miniature_root / "llava"), "--batch", str(batch), "--max-steps", "1",
                    "--set", "search.target_extraction=rule", "--set", "search.max_new_tokens=2",
                    "--set", "zoom.max_steps=1"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 0 and [r["method"] for r in rows] == list(METHODS)
    assert rows[1]["prefix_cached"] and rows[2]["prefix_cached"]       # one frame, one prefill
