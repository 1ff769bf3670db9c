"""Frames and crops shrunk with OpenCV before the image processor (core/models/preprocess.py) give
the answers of the processor alone: same token layout, same answers, existence confidences within
a small tolerance, for the embedded model and the three families' miniatures."""

import numpy as np
import pytest
import torch

from focus_ros.core.config import ModelConfig, build_configs, default_model_path
from focus_ros.core.geometry import Box, crop
from focus_ros.core.models import load_adapter
from focus_ros.core.models.llava import expand_to_square
from focus_ros.core.models.preprocess import shrink_and_pad_square, shrink_for_qwen
from focus_ros.core.pipeline import FocusPipeline
from focus_ros.eval.scenes import SceneSpec, make_scene

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAMILIES = ("llava", "llava_onevision", "qwen2_5_vl")
# Frames of 1400-2200 px on the short side: well above every input size, so every family shrinks.
SPEC = SceneSpec(short_side=(1400, 2200))
# Embedded model: the box filter and the processor's bicubic differ by a few grey levels per pixel,
# which moved its existence confidences by at most 0.045 over 88 frame and crop checks (0.015 on
# crops); 0.06 leaves room for other frames without hiding a wrong layout (a shifted or
# mis-scaled view moves them by tenths). Random-weight miniatures barely react to pixels: 0.01.
EMBEDDED_TOLERANCE = 0.06
MINIATURE_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(7, i, SPEC) for i in range(3)]


def crops_of(scene):
    """A crop around each object (three times its size each way) and a quarter of the frame."""
    h, w = scene.image.shape[:2]
    out = [Box(0, 0, w // 2, h // 2)]
    for o in scene.objects[:3]:
        x0, y0, x1, y1 = o.box
        m = max(x1 - x0, 60) * 3
        out.append(Box(max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)))
    return [crop(scene.image, b) for b in out]


def existence_confidences(adapter, scene):
    """P(Yes) of "is there a {colour} object" for each object, on the frame and on every crop."""
    phrases = [f"{o.color} object" for o in scene.objects[:3]]
    out = []
    for view in [scene.image, *crops_of(scene)]:
        prefix = adapter.prefill_image(view)
        out += [adapter.yes_probability(adapter.extend(prefix, adapter.existence_text(p)).logits) for p in phrases]
    return np.array(out)


def both_ways(adapter, fn):
    """``fn()`` with the processor alone (the reference), then with the OpenCV pre-shrink."""
    assert adapter.preshrink  # model.preshrink defaults to true
    adapter.preshrink = False  # what model.preshrink: false gives
    try:
        reference = fn()
    finally:
        adapter.preshrink = True
    return reference, fn()


@pytest.mark.parametrize("family", FAMILIES)
def test_preshrinking_keeps_the_processors_token_layout(miniature_root, family, scenes):
    adapter = load_adapter(ModelConfig(path=str(miniature_root / family)))
    for scene in scenes:
        for view in [scene.image, *crops_of(scene)]:
            ref, new = both_ways(adapter, lambda v=view: adapter.image_inputs(v, adapter.prefix_text(), True))
            assert torch.equal(ref["input_ids"], new["input_ids"])
            assert ref["pixel_values"].shape == new["pixel_values"].shape
            if family == "qwen2_5_vl":
                assert torch.equal(ref["image_grid_thw"], new["image_grid_thw"])


def test_every_family_shrinks_a_large_frame_before_its_processor(miniature_root, scenes):
    image = scenes[0].image
    h, w = image.shape[:2]
    llava = load_adapter(ModelConfig(path=str(miniature_root / "llava")))
    square = shrink_and_pad_square(image, 2 * 336, llava.pad_fill())
    assert square.shape == (672, 672, 3)
    onevision = load_adapter(ModelConfig(path=str(miniature_root / "llava_onevision")))
    assert onevision.processor_image(image).shape[0] < h
    qwen = load_adapter(ModelConfig(path=str(miniature_root / "qwen2_5_vl")))
    assert shrink_for_qwen(qwen.processor.image_processor, image).shape[0] < h


def test_an_image_the_processor_would_enlarge_is_left_to_it():
    small = np.full((90, 120, 3), 77, dtype=np.uint8)
    assert shrink_and_pad_square(small, 256, (0, 0, 0)) is None
    padded = shrink_and_pad_square(np.full((300, 600, 3), 200, dtype=np.uint8), 256, (1, 2, 3))
    reference = expand_to_square(np.full((128, 256, 3), 200, dtype=np.uint8), (1, 2, 3))
    assert np.array_equal(padded, reference)


@pytest.mark.parametrize("family", FAMILIES)
def test_miniature_confidences_and_answer_logits_match_the_processor_alone(miniature_root, family, scenes):
    adapter = load_adapter(ModelConfig(path=str(miniature_root / family)))
    for scene in scenes[:2]:
        ref, new = both_ways(adapter, lambda s=scene: existence_confidences(adapter, s))
        assert np.abs(ref - new).max() <= MINIATURE_TOLERANCE
        question = adapter.question_text(scene.questions[0].question)
        ref, new = both_ways(
            adapter, lambda s=scene, q=question: adapter.extend(adapter.prefill_image(s.image), q).logits
        )
        # random weights: greedy text is chaotic, the logits it starts from are not
        torch.testing.assert_close(new.softmax(-1), ref.softmax(-1), atol=2e-3, rtol=0)


def test_embedded_model_answers_and_confidences_match_the_processor_alone(scenes):
    model, search = build_configs({"model.path": str(default_model_path()), "model.device": "cpu"})
    pipe = FocusPipeline.from_configs(model, search)
    adapter = pipe.adapter

    def answers(scene):
        prefix = adapter.prefill_image(scene.image)
        vanilla = [
            adapter.decode(adapter.extend(prefix, adapter.question_text(q.question)), 8) for q in scene.questions
        ]
        focus = [pipe.run(scene.image, q.question, method="focus") for q in scene.questions[:2]]
        return vanilla, [(r.answer, r.bbox) for r in focus]

    for scene in scenes:
        ref, new = both_ways(adapter, lambda s=scene: answers(s))
        assert new == ref
        ref, new = both_ways(adapter, lambda s=scene: existence_confidences(adapter, s))
        assert np.abs(ref - new).max() <= EMBEDDED_TOLERANCE
