"""The baselines (zoom tree, attention crop, random windows) and multiple-choice answering, on the
random-weight miniatures: each method's forward passes are what its algorithm implies."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from focus_ros.core.config import ModelConfig, build_configs
from focus_ros.core.geometry import Box, pad_to_square_mapping, stitch_block_maps
from focus_ros.core.methods import METHODS, AttentionCropConfig, ZoomConfig, split_method_settings
from focus_ros.core.methods.answer import option_scores, parse_options
from focus_ros.core.methods.attention_crop import vicrop_blocks, vicrop_box
from focus_ros.core.methods.zoom import (
    BOX_RGB,
    LOCAL_PROMPTS,
    boxed_views,
    confidence,
    existence_weight,
    patch_box,
    relaxed_thresholds,
    sub_boxes,
    tree_depth,
)
from focus_ros.core.models import load_adapter
from focus_ros.core.models.base import image_token_id
from focus_ros.core.pipeline import FocusPipeline
from focus_ros.core.results import Cancelled

_ADAPTERS = {}
W, H = 1600, 900
Q = "What shape is the red object?"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def adapter_for(root, family):
    if family not in _ADAPTERS:
        _ADAPTERS[family] = load_adapter(ModelConfig(path=str(root / family)))
    return _ADAPTERS[family]


def quadrants(box):
    """The four quadrants of a box, row-major."""
    x0, y0, x1, y1 = box.to_int()
    xm, ym = (x0 + x1) // 2, (y0 + y1) // 2
    return [Box(x0, y0, xm, ym), Box(xm, y0, x1, ym), Box(x0, ym, xm, y1), Box(xm, ym, x1, y1)]


def pipeline(root, family="llava", zoom=None, **search):
    values = {
        "model.path": str(root / family),
        "search.target_extraction": "rule",
        "search.overrun": False,
        "search.max_steps": 3,
    }
    values.update({f"search.{k}": v for k, v in search.items()})
    _, cfg = build_configs(values)
    return FocusPipeline(adapter_for(root, family), cfg, zoom=zoom)


def frame(seed=0, w=W, h=H):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def attn_impl(pipe):
    return pipe.adapter.model.config.get_text_config()._attn_implementation


# ----------------------------------------------------------------------------- zoom tree (ZoomEye)
def search_pops(pipe, image, question):
    """The run and the number of nodes its searches popped (one "search" progress event each)."""
    events = []
    r = pipe.run(image, question, method="zoom", progress=lambda stage, *rest: events.append(stage))
    return r, events.count("search")


def root_answering_confidence(pipe, image, question):
    adapter = pipe.adapter
    prompt = adapter.question_text(LOCAL_PROMPTS["answering"].format(question))
    ext = adapter.extend(adapter.prefill_image(image), prompt)
    return adapter.yes_probability(ext.logits)


def test_zoom_stops_on_twice_p_yes_minus_one_not_on_p_yes(miniature_root):
    image = frame()
    p_yes = root_answering_confidence(pipeline(miniature_root), image, Q)
    c = confidence(p_yes)
    assert c == pytest.approx(2 * p_yes - 1)
    just_above = c + 0.01  # P(Yes) >= this too: a P(Yes) rule would stop at the root
    assert p_yes >= just_above
    go_on = pipeline(miniature_root, zoom=ZoomConfig(native_side=336, answer_threshold=just_above, max_steps=2))
    r = go_on.run(image, Q, method="zoom")
    assert r.regions and r.forward_passes > 3
    stop = pipeline(miniature_root, zoom=ZoomConfig(native_side=336, answer_threshold=c - 0.01))
    r = stop.run(image, Q, method="zoom")
    assert r.forward_passes == 1 + 1 + 1  # prefix, the root's answering confidence, the answer on it
    assert r.regions == [] and r.bbox == Box(0, 0, W, H)


@pytest.mark.parametrize("max_depth", [2, 3])
def test_zoom_pops_three_nodes_per_level_then_two_more_per_relaxation(miniature_root, max_depth):
    # 1600 x 900 with 336 px inputs: a tree 3 levels deep, so the search depth is min(3, max_depth).
    # Never answerable (threshold 1), relaxed by 0.004 per step below 0.99: two relaxations keep
    # going (0.996, 0.992), the third (0.988) gives up.
    zoom = ZoomConfig(
        native_side=336, max_depth=max_depth, answer_threshold=1.0, threshold_decrease=(0.004,), threshold_lower=0.99
    )
    _, pops = search_pops(pipeline(miniature_root, zoom=zoom), frame(), Q)
    assert pops == 3 * max_depth + 2 + 2


def test_zoom_relaxes_the_answering_threshold_on_zoomeyes_schedule():
    assert relaxed_thresholds(0.6, (0.1, 0.1, 0.2), 0.0) == pytest.approx([0.5, 0.4, 0.2, 0.0, -0.2])
    assert relaxed_thresholds(0.6, (0.5,), 0.0) == pytest.approx([0.1, -0.4])


def test_zoom_priority_weighs_existence_from_the_bias_at_the_root_to_one_at_the_bottom():
    assert existence_weight(0, 3, 0.2) == pytest.approx(0.2)
    assert existence_weight(1, 3, 0.2) == pytest.approx(0.2 + 0.8 / 9)
    assert existence_weight(2, 3, 0.6) == pytest.approx(0.6 + 0.4 * 4 / 9)
    assert existence_weight(3, 3, 0.2) == 1.0


def test_zoom_bottom_nodes_rank_by_existence_alone(miniature_root):
    # depth limit 1: the four children are the bottom, their weight is 1 and "zoom further" is not asked
    zoom = ZoomConfig(native_side=336, max_depth=1, answer_threshold=1.0, threshold_decrease=(3.0,))
    r, pops = search_pops(pipeline(miniature_root, zoom=zoom), frame(), Q)
    assert [g.box for g in r.regions] == sub_boxes(Box(0, 0, W, H))
    for g in r.regions:
        assert g.relevance == pytest.approx(2 * g.confidence - 1)
    # 3 pops (the limit for one level), then the relaxation to -2 accepts the best popped view, whose
    # cached view answers: frame prefix + root's c_a + 4 x (crop prefill + c_e) + 2 x c_a + answer
    assert pops == 3
    assert r.forward_passes == 1 + 1 + 4 * 2 + 2 + 1


def test_zoom_tree_splits_like_zoomeye_down_to_the_encoder_input_side():
    assert sub_boxes(Box(0, 0, W, H)) == quadrants(Box(0, 0, W, H))
    assert [b.width for b in sub_boxes(Box(0, 0, 1000, 400))] == [250] * 4  # wide: four strips
    assert [b.height for b in sub_boxes(Box(0, 0, 400, 1000))] == [250] * 4  # tall: four strips
    assert tree_depth(W, H, 500, 5) == 2  # 800 x 450 is split, 400 x 225 is not
    assert tree_depth(W, H, 336, 5) == 3 and tree_depth(W, H, 336, 2) == 2
    assert patch_box(Box(0, 0, 200, 100), W, H, 336, 1.0) == Box(0, 0, 336, 336)  # grown to one input
    assert patch_box(Box(600, 300, 1000, 600), W, H, 336, 1.2) == Box(560, 249, 1040, 652)


def test_zoom_with_several_targets_never_answers_from_the_root_on_llava(miniature_root):
    always = ZoomConfig(native_side=336, answer_threshold=-1.0)  # every asked node is answerable
    pipe = pipeline(miniature_root, zoom=always)
    one = pipe.run(frame(), Q, method="zoom")
    assert one.bbox == Box(0, 0, W, H)  # one target: the root answers
    two = pipe.run(frame(), "Is the red object left or right of the blue object?", method="zoom")
    assert two.targets == ["red object", "blue object"]
    assert two.bbox != Box(0, 0, W, H)
    # each search goes on to a bottom node (depth 3: 200 x 113 px, shown as 336 px patches)
    assert {(round(g.box.width), round(g.box.height)) for g in two.regions} >= {(200, 113)}


def test_zoom_with_several_targets_on_a_multi_image_model_first_asks_the_small_frame(miniature_root):
    pipe = pipeline(miniature_root, "llava_onevision", zoom=ZoomConfig(native_side=336, answer_threshold=-1.0))
    r = pipe.run(frame(), "Is the red object left or right of the blue object?", method="zoom")
    # frame prefix + down-sized frame + "answerable?" for the first target (yes) + the answer on the frame
    assert r.forward_passes == 4 and r.regions == [] and r.bbox == Box(0, 0, W, H)


@pytest.mark.parametrize("depth,nodes", [(1, 4), (2, 20)])
def test_counting_targets_score_every_node_down_to_depth_two(miniature_root, depth, nodes):
    zoom = ZoomConfig(native_side=336, type2_depth=depth, type2_threshold=1.0)  # none kept
    r = pipeline(miniature_root, zoom=zoom).run(frame(), "How many red objects are there?", method="zoom")
    level1 = sub_boxes(Box(0, 0, W, H))
    expected = set(level1) | ({b for q in level1 for b in sub_boxes(q)} if depth == 2 else set())
    assert len(r.regions) == nodes and {g.box for g in r.regions} == expected
    # frame prefix + root's c_e + every node (prefill + c_e) + the answer on the frame
    assert r.forward_passes == 1 + 1 + 2 * nodes + 1 and r.bbox == Box(0, 0, W, H)


def test_zoom_shows_multi_image_models_the_boxed_frame_and_the_zoom():
    image = frame(8, 800, 600)
    main, zoom, shown = boxed_views(image, [Box(100, 100, 300, 250)], (0, 0, 0), 384, keep_aspect=False)
    assert main.shape == (384, 384, 3)
    t = 800 // 120  # ZoomEye's outline: 1/120 of the square
    red = np.array(BOX_RGB, dtype=np.uint8)
    assert (zoom[:t] == red).all() and (zoom[:, :t] == red).all()
    assert np.array_equal(zoom[t : t + 100, t : t + 150], image[100:200, 100:250])  # inside: the frame's pixels
    assert shown == Box(100 - t, 100 - t, 300 + t, 250 + t)
    main, _, _ = boxed_views(image, [Box(100, 100, 300, 250)], (0, 0, 0), 448, keep_aspect=True)
    assert main.shape == (336, 448, 3)  # Qwen: the frame itself, long side 448


def test_zoom_nodes_cost_one_more_pass_on_multi_image_models_than_on_llava(miniature_root):
    # 1280 x 720, 336 px: two levels. Two pops: the root, then one child.
    image = frame(5, 1280, 720)
    passes = {}
    for view in ("global", "local"):
        zoom = ZoomConfig(native_side=336, answer_threshold=1.0, max_steps=2, view=view)
        pipe = pipeline(miniature_root, "llava_onevision", zoom=zoom)
        passes[view] = pipe.run(image, Q, method="zoom").forward_passes
    # global: frame prefix + root c_a + 4 x (boxed frame + zoom + c_e + c_l) + c_a + 4 x (boxed frame + zoom
    # + c_e) + the answer on the accepted node's view; local: one crop prefill per node instead of two passes
    assert passes["global"] == 1 + 1 + 4 * 4 + 1 + 4 * 3 + 1
    assert passes["local"] == 1 + 1 + 4 * 3 + 1 + 4 * 2 + 1


# ----------------------------------------------------------------------------- attention crop (ViCrop)
VICROP_INSTRUCTION = "Answer the question using a single word or phrase."


def record_calls(pipe):
    """Every multi-token model call: (image tokens in it, cached tokens before it, its text)."""
    from focus_ros.core.models.cache_names import cache_keyword

    calls = []
    image_id = image_token_id(pipe.adapter.model.config)
    tok = pipe.adapter.tokenizer

    def hook(module, args, kwargs):
        ids = kwargs["input_ids"][0]
        cache = kwargs.get(cache_keyword())  # "cache" from transformers 5.24, "past_key_values" before
        if ids.shape[0] > 1:
            calls.append(
                (
                    int((ids == image_id).sum()),
                    cache.get_seq_length() if cache is not None else 0,
                    tok.decode(ids[ids != image_id]),
                )
            )

    return calls, pipe.adapter.model.register_forward_pre_hook(hook, with_kwargs=True)


def test_attention_crop_answers_from_the_frame_then_the_crop_with_vicrops_instruction(miniature_root):
    pipe = pipeline(miniature_root)
    calls, handle = record_calls(pipe)
    try:
        r = pipe.run(frame(1), Q, method="attention")
    finally:
        handle.remove()
    # frame prefix, question, generic prompt, then [frame, crop] + question in one extension
    assert r.forward_passes == 4 and len(calls) == 4
    prefix, question, generic, answer = calls
    grid = 24 * 24
    assert prefix[0] == grid and prefix[1] == 0
    assert question[2].strip().endswith(f"{Q} {VICROP_INSTRUCTION} ASSISTANT:")
    assert generic[2].strip().endswith(f"Write a general description of the image. {VICROP_INSTRUCTION} ASSISTANT:")
    assert answer[0] == grid and answer[1] == pipe.adapter.prefill_image(frame(1)).length  # the crop after the frame
    assert answer[2].strip().endswith(f"{Q} {VICROP_INSTRUCTION} ASSISTANT:")


def test_attention_crop_costs_two_prompts_then_reuses_the_generic_map_and_restores_sdpa(miniature_root):
    pipe = pipeline(miniature_root)
    image = frame(1)
    first = pipe.run(image, Q, method="attention", frame_key="f")
    assert first.forward_passes == 4  # frame prefix + question + generic prompt + [frame, crop] answer
    second = pipe.run(image, "What shape is the blue object?", method="attention", frame_key="f")
    assert second.prefix_cached and second.forward_passes == 2
    assert attn_impl(pipe) == "sdpa"
    box = first.bbox
    assert 0 <= box.x0 < box.x1 <= W and 0 <= box.y0 < box.y1 <= H
    side = max(box.width, box.height)
    assert any(abs(side - 336 * r) < 1 for r in AttentionCropConfig().ratios)  # 336: LLaVA-1.5's input side
    assert first.relevance_maps["attention"].shape == (24, 24)


def test_vicrop_blocks_follow_the_authors_split():
    blocks, rows, cols = vicrop_blocks(4000, 3000, 1024)
    assert (rows, cols) == (3, 4) and {(b.width, b.height) for b in blocks} == {(1000, 1000)}
    assert vicrop_blocks(W, H, 1024)[1:] == (1, 1)
    blocks, rows, cols = vicrop_blocks(2400, 1200, 1024)
    assert (rows, cols) == (2, 4) and blocks[5] == Box(600, 600, 1200, 1200)


def test_stitched_block_maps_put_a_hot_cell_where_it_lies_in_the_frame():
    blocks, rows, cols = vicrop_blocks(1200, 600, 600)  # two 600 px blocks side by side
    maps = [np.full((24, 24), 0.01), np.full((24, 24), 0.01)]
    maps[1][12, 6] = 1.0  # block 2, 6.5 cells = 162.5 px in
    rel, mapping = stitch_block_maps(maps, [pad_to_square_mapping(600, 600, 24)] * 2, blocks, rows, cols, 1200, 600)
    assert rel.shape == (24, 48) and np.unravel_index(np.argmax(rel), rel.shape) == (12, 30)
    assert mapping.x_edges[0] == 0 and mapping.x_edges[-1] == 1200 and mapping.y_edges[-1] == 600
    box, _ = vicrop_box(rel, mapping, 100, (1.0,))
    assert box.contains_point(600 + 162.5, 12.5 * 25)


def test_attention_crop_high_resolution_crops_in_source_pixels_from_block_attention(miniature_root):
    pipe = pipeline(miniature_root)
    pipe.attention = AttentionCropConfig(high_resolution=True)
    image = frame(9, 2400, 1200)  # 2 x 4 blocks of 600 x 600 px
    first = pipe.run(image, Q, method="attention", frame_key="big")
    # frame prefix + 8 x (block prefill + question + generic prompt) + [frame, crop] answer
    assert first.forward_passes == 1 + 8 * 3 + 1
    assert first.relevance_maps["attention"].shape == (48, 96)
    mapping = first.relevance_mapping
    assert (mapping.x_edges[0], mapping.x_edges[-1], mapping.y_edges[-1]) == (0, 2400, 1200)
    box = first.bbox
    assert 0 <= box.x0 < box.x1 <= 2400 and 0 <= box.y0 < box.y1 <= 1200
    assert any(abs(box.width - 336 * r) < 1 for r in AttentionCropConfig().ratios) and box.width == box.height
    second = pipe.run(image, "What shape is the blue object?", method="attention", frame_key="big")
    assert second.forward_passes == 8 * 2 + 1  # generic maps of the blocks kept per frame
    assert attn_impl(pipe) == "sdpa"


def test_vicrop_box_centres_the_sharpest_window_on_the_attention_peak():
    mapping = pad_to_square_mapping(2400, 2400, 24)  # 100 px per cell
    rel = np.full((24, 24), 0.01)
    rel[15:17, 5:7] = 1.0  # a 200 px hot spot centred at (600, 1600)
    box, side = vicrop_box(rel, mapping, 336, (1.0, 1.2, 1.4, 1.6, 1.8, 2.0))
    cx, cy = box.center
    assert abs(cx - 600) <= 100 and abs(cy - 1600) <= 100
    assert box.width == box.height == side
    small = pad_to_square_mapping(300, 200, 24)  # frame smaller than one crop
    assert vicrop_box(rel, small, 336, (1.0, 2.0))[0] == Box(0, 0, 300, 200)


def test_only_the_attention_crop_asks_for_attention_weights(miniature_root):
    pipe = pipeline(miniature_root)
    calls = []
    hook = pipe.adapter.model.register_forward_hook(  # what each model call returned, and under which kernel
        lambda m, a, kw, out: calls.append((out.attentions is not None, attn_impl(pipe))), with_kwargs=True
    )
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
    src = Path(__file__).resolve().parents[2] / "focus_ros"
    users = {p.name for p in src.rglob("*.py") if "output_attentions" in p.read_text()}
    assert users and all("attention_crop" in n or "vicrop" in n for n in users), users


# ----------------------------------------------------------------------------- random windows
def test_random_windows_verify_as_many_windows_as_focus_without_its_relevance_pass(miniature_root):
    pipe = pipeline(miniature_root, max_steps=3)
    image = frame(3)
    focus = pipe.run(image, Q, method="focus")
    rand = pipe.run(image, Q, method="random")
    assert sum(g.confidence >= 0 for g in focus.regions) == sum(g.confidence >= 0 for g in rand.regions) == 3
    assert rand.forward_passes == focus.forward_passes - 1  # no relevance prompt; all else identical
    cell = max(W, H) / 24  # LLaVA: 24 cells over the padded square
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
    _, zoom, attention = split_method_settings(
        [
            "zoom.threshold_decrease=0.1,0.2",
            "zoom.view=local",
            "attention.high_resolution=true",
            "attention.block_side=512",
        ]
    )
    assert zoom.threshold_decrease == (0.1, 0.2) and zoom.view == "local"
    assert attention.high_resolution and attention.block_side == 512
    with pytest.raises(ValueError, match="zoom.view"):
        split_method_settings(["zoom.view=crop"])


# ----------------------------------------------------------------------------- multiple choice
@pytest.mark.parametrize(
    "question,stem,options",
    [
        (
            "What is the color of the bag? (A) red (B) blue (C) dark green",
            "What is the color of the bag?",
            ["red", "blue", "dark green"],
        ),
        (
            "What is the material of the glove?\n(A) rubber\n(B) cotton\nAnswer with the option's letter from the "
            "given choices directly.",
            "What is the material of the glove?",
            ["rubber", "cotton"],
        ),
        (
            "Is the cup left or right of the plate?\nA. left\nB. right",
            "Is the cup left or right of the plate?",
            ["left", "right"],
        ),
        ("What shape is the red object?", "What shape is the red object?", []),
        ("What is in box (A) of the chart?", "What is in box (A) of the chart?", []),
    ],
)
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
    assert r.forward_passes == 1 + 1 + multi  # prefix, question, one pass per multi-token option
    # the same scores from one full forward pass without any cache
    prefix = adapter.prefill_image(image)
    ext = adapter.extend(prefix, adapter.question_text("What color is the square?"))
    cached = option_scores(adapter, ext, options)
    fresh = []
    for o in options:
        opt_ids = torch.tensor([adapter.tokenizer(" " + o, add_special_tokens=False)["input_ids"]])
        ids = torch.cat([prefix.input_ids, ext.input_ids, opt_ids], dim=1)
        inputs = adapter.image_inputs(image, adapter.prefix_text(), add_special_tokens=True)
        inputs.pop("attention_mask", None)
        inputs["input_ids"] = ids
        with torch.inference_mode():
            logits = adapter.model(**inputs, use_cache=False).logits[0].float()
        n = opt_ids.shape[1]
        logp = torch.log_softmax(logits[-n - 1 : -1], dim=-1)
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
        assert r.targets == ["red object"]  # the options never reach target extraction


def test_focus_vqa_answers_with_every_method_by_name(miniature_root, sample_image_path, tmp_path, capsys):
    from focus_ros.cli.vqa import main as focus_vqa

    batch = tmp_path / "q.jsonl"
    batch.write_text(
        "\n".join(json.dumps({"image": str(sample_image_path), "question": Q, "method": m}) for m in METHODS) + "\n"
    )
    rc = focus_vqa(
        [
            "--model",
            str(miniature_root / "llava"),
            "--batch",
            str(batch),
            "--max-steps",
            "1",
            "--set",
            "search.target_extraction=rule",
            "--set",
            "search.max_new_tokens=2",
            "--set",
            "zoom.max_steps=1",
        ]
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 0 and [r["method"] for r in rows] == list(METHODS)
    assert rows[1]["prefix_cached"] and rows[2]["prefix_cached"]  # one frame, one prefill
