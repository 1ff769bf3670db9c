"""Batched verification (``search.verify_batch``) and the existence-confidence memo: crops verified
in one forward give the confidences, answers, passes and progress of one-at-a-time verification on
every family (the random-weight miniatures and the embedded model, float32 on the CPU); a second
question about the same object on the same frame reuses the confidences without a pass."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from focus_ros.core.config import EMBEDDED_MODEL, ModelConfig, SearchConfig, build_configs, parameter_table
from focus_ros.core.models import load_adapter
from focus_ros.core.pipeline import PASSES_PER_CROP, FocusPipeline
from focus_ros.eval.scenes import make_scene

REPO = Path(__file__).resolve().parents[2]
FAMILIES = ("llava", "llava_onevision", "qwen2_5_vl")
MODELS = (*FAMILIES, "embedded")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# (height, width): square, wide, tall, tiny, and sizes that give OneVision different tile counts and
# Qwen2.5-VL different token grids, so the batch really is padded
CROP_SIZES = ((64, 64), (50, 80), (200, 120), (8, 8), (16, 90), (300, 37), (150, 150))
_ADAPTERS = {}


def model_path(root: Path, name: str) -> str:
    return str(REPO / EMBEDDED_MODEL) if name == "embedded" else str(root / name)


def adapter_for(root: Path, name: str):
    if name not in _ADAPTERS:
        _ADAPTERS[name] = load_adapter(ModelConfig(path=model_path(root, name), device="cpu", dtype="float32"))
    return _ADAPTERS[name]


def crops_of(sizes, seed=0):
    frame = np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return [frame[10 * i : 10 * i + h, 20 * i : 20 * i + w] for i, (h, w) in enumerate(sizes)]


def one_at_a_time(adapter, images, text):
    return [adapter.yes_probability(adapter.extend(adapter.prefill_image(im), text).logits) for im in images]


@pytest.mark.parametrize("name", MODELS)
def test_a_batch_of_crops_gives_the_confidences_of_one_at_a_time(miniature_root, name):
    adapter = adapter_for(miniature_root, name)
    images = crops_of(CROP_SIZES)
    text = adapter.existence_text("red object")
    want = one_at_a_time(adapter, images, text)
    assert max(want) - min(want) > 1e-3  # the crops really differ: equal numbers would prove nothing
    batch = adapter.existence_batch(images, text)
    np.testing.assert_allclose(batch.confidences, want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_a_crop_prefix_sliced_from_the_batch_answers_like_its_own_prefill(miniature_root, name):
    adapter = adapter_for(miniature_root, name)
    images = crops_of(CROP_SIZES, seed=1)
    batch = adapter.existence_batch(images, adapter.existence_text("blue object"))
    question = adapter.question_text("What colour is the object?")
    for index in (0, 2, 4, 5):
        own = adapter.prefill_image(images[index])
        sliced = adapter.batch_prefix(batch, index)
        assert sliced.length == own.length and sliced.cache.get_seq_length() == own.length
        np.testing.assert_array_equal(sliced.grid_positions, own.grid_positions)
        assert sliced.mapping == own.mapping
        torch.testing.assert_close(
            adapter.extend(sliced, question).logits, adapter.extend(own, question).logits, atol=1e-4, rtol=1e-4
        )


def test_the_meter_counts_a_batch_as_the_passes_and_tokens_of_one_at_a_time(miniature_root):
    from focus_ros.core.models import Meter

    adapter = adapter_for(miniature_root, "qwen2_5_vl")
    images = crops_of(CROP_SIZES[:4])
    text = adapter.existence_text("red object")
    batched, single = Meter(), Meter()
    adapter.existence_batch(images, text, batched)
    for image in images:
        adapter.extend(adapter.prefill_image(image, single), text, single)
    assert (batched.forward_passes, batched.tokens_prefilled) == (single.forward_passes, single.tokens_prefilled)
    assert batched.forward_passes == PASSES_PER_CROP * len(images)


# ----------------------------------------------------------------------------- the pipeline
def pipeline(root: Path, name: str, **search) -> FocusPipeline:
    values = {"model.path": model_path(root, name), "model.device": "cpu", "model.dtype": "float32"}
    values.update({f"search.{k}": v for k, v in search.items()})
    _, config = build_configs(values)
    return FocusPipeline(adapter_for(root, name), config)


def run_recorded(pipe: FocusPipeline, image, question, frame_key=None):
    events = []
    result = pipe.run(image, question, frame_key=frame_key, progress=lambda *e: events.append(e))
    return result, [(stage, done, total, region.box) for stage, done, total, region in events if stage == "verify"]


def batch_sizes(monkeypatch, adapter) -> list[int]:
    """Record how many crops each batched forward of ``adapter`` verifies (the real method runs)."""
    sizes: list[int] = []
    real = adapter.existence_batch

    def recording(images, text, meter=None):
        sizes.append(len(images))
        return real(images, text, meter)

    monkeypatch.setattr(adapter, "existence_batch", recording)
    return sizes


def same_run(a, b):
    assert a.answer == b.answer and a.targets == b.targets and a.bbox == b.bbox
    assert [r.box for r in a.regions] == [r.box for r in b.regions]
    np.testing.assert_allclose([r.confidence for r in a.regions], [r.confidence for r in b.regions], atol=1e-4)
    assert (a.forward_passes, a.tokens_prefilled) == (b.forward_passes, b.tokens_prefilled)


SCENE_QUESTIONS = [(0, 0), (0, 2), (1, 4), (2, 3)]  # (scene, question): shape, relation, colour, count


@pytest.mark.parametrize("scene_index,question_index", SCENE_QUESTIONS)
def test_the_embedded_model_answers_the_same_batched_and_one_at_a_time(
    miniature_root, monkeypatch, scene_index, question_index
):
    scene = make_scene(987654, scene_index)
    question = scene.questions[question_index].question
    single = run_recorded(pipeline(miniature_root, "embedded", verify_batch=1), scene.image, question)
    sizes = batch_sizes(monkeypatch, adapter_for(miniature_root, "embedded"))
    pipe = pipeline(miniature_root, "embedded")
    batched = run_recorded(pipe, scene.image, question)
    same_run(batched[0], single[0])
    assert batched[1] == single[1]  # progress: the same crops, in the same order, with the same counts
    assert sizes and max(sizes) <= pipe.search.max_steps and max(sizes) > 1


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_answers_the_same_batched_and_one_at_a_time(miniature_root, family):
    image = np.random.default_rng(3).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    question = "What colour is the red car?"
    single = run_recorded(pipeline(miniature_root, family, verify_batch=1, target_extraction="rule"), image, question)
    batched = run_recorded(pipeline(miniature_root, family, target_extraction="rule"), image, question)
    same_run(batched[0], single[0])
    assert batched[1] == single[1]


def test_progress_reports_every_verified_crop_once_in_candidate_order(miniature_root):
    scene = make_scene(987654, 0)
    pipe = pipeline(miniature_root, "embedded", max_steps=4, overrun=True)
    result, events = run_recorded(pipe, scene.image, scene.questions[2].question)  # two targets
    verified = [r.box for r in result.regions if r.confidence >= 0]
    assert [box for _, _, _, box in events] == verified
    assert [done for _, done, _, _ in events] == list(range(1, len(verified) + 1))
    assert all(total >= done for _, done, total, _ in events)


def test_verify_batch_splits_the_first_max_steps_into_batches_of_that_size(miniature_root, monkeypatch):
    scene = make_scene(987654, 1)
    question = scene.questions[0].question
    want = run_recorded(
        pipeline(miniature_root, "embedded", max_steps=5, overrun=False, verify_batch=1), scene.image, question
    )
    sizes = batch_sizes(monkeypatch, adapter_for(miniature_root, "embedded"))
    got = run_recorded(
        pipeline(miniature_root, "embedded", max_steps=5, overrun=False, verify_batch=2), scene.image, question
    )
    same_run(got[0], want[0])
    assert got[1] == want[1]
    verified = sum(r.confidence >= 0 for r in got[0].regions)
    assert verified == 5 and sizes == [2, 2]  # the fifth crop alone goes the one-at-a-time way


def test_a_second_question_about_the_same_object_reuses_its_confidences(miniature_root, monkeypatch):
    scene = make_scene(987654, 2)
    first_q, second_q = "What shape is the purple object?", "Is there a purple object in the image?"
    fresh = pipeline(miniature_root, "embedded").run(scene.image, second_q)  # no memo: nothing kept
    pipe = pipeline(miniature_root, "embedded")
    first = pipe.run(scene.image, first_q, frame_key="frame-1")
    sizes = batch_sizes(monkeypatch, pipe.adapter)
    second = pipe.run(scene.image, second_q, frame_key="frame-1")
    assert second.targets == first.targets == fresh.targets == ["purple object"]
    assert [r.box for r in second.regions] == [r.box for r in fresh.regions]
    assert [r.confidence for r in second.regions] == [r.confidence for r in first.regions]
    np.testing.assert_allclose([r.confidence for r in second.regions], [r.confidence for r in fresh.regions], atol=1e-4)
    assert second.answer == fresh.answer
    verified = sum(r.confidence >= 0 for r in second.regions)
    assert sizes == []  # every crop's confidence came from the memo: no batch ran
    assert second.reused_passes >= PASSES_PER_CROP * verified
    # at most one pass more than a run without verification: the answer encodes its chosen crop again
    assert second.forward_passes <= fresh.forward_passes - PASSES_PER_CROP * verified + 1


def test_only_crops_missing_from_the_memo_are_verified(miniature_root, monkeypatch):
    scene = make_scene(987654, 1)
    question = scene.questions[0].question
    want = pipeline(miniature_root, "embedded", max_steps=6, overrun=False).run(scene.image, question)
    pipe = pipeline(miniature_root, "embedded", max_steps=3, overrun=False)
    pipe.run(scene.image, question, frame_key="frame-2")
    pipe.search = dataclasses.replace(pipe.search, max_steps=6)
    sizes = batch_sizes(monkeypatch, pipe.adapter)
    more = pipe.run(scene.image, question, frame_key="frame-2")
    assert sizes == [3]  # the three crops the first question did not verify, in one batch
    assert [r.box for r in more.regions] == [r.box for r in want.regions]
    np.testing.assert_allclose([r.confidence for r in more.regions], [r.confidence for r in want.regions], atol=1e-4)
    assert more.answer == want.answer


def test_an_anonymous_frame_memoises_nothing(miniature_root, monkeypatch):
    scene = make_scene(987654, 1)
    question = scene.questions[0].question
    pipe = pipeline(miniature_root, "embedded")
    sizes = batch_sizes(monkeypatch, pipe.adapter)
    pipe.run(scene.image, question)
    pipe.run(scene.image, question)
    assert len(sizes) == 2 and sizes[0] == sizes[1] > 1  # the second question verified every crop again
    assert len(pipe.memo) == 0


def test_verify_batch_is_a_search_setting_with_a_checked_range():
    assert parameter_table()["search.verify_batch"] == (0, int)
    assert SearchConfig().verify_batch == 0  # all of the first max_steps in one forward
    with pytest.raises(ValueError, match="verify_batch"):
        SearchConfig(verify_batch=-1).validate()
