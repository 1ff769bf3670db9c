"""The per-frame memo in the pipeline, on the embedded model: a second question about the same
object on the same frame reuses the target's relevance map (and whatever else the memo keeps) with
the maps and the answer of a cleared cache; the memo keeps to its byte bound, never keeps an
anonymous frame, and goes with the frame's prefix, ``clear_cache`` and ``release``."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from focus_ros.core.config import EMBEDDED_MODEL, ModelConfig, build_configs
from focus_ros.core.memo import nbytes_of
from focus_ros.core.models import Meter, load_adapter
from focus_ros.core.pipeline import FocusPipeline
from focus_ros.eval.scenes import make_scene

REPO = Path(__file__).resolve().parents[2]
MODEL = str(REPO / EMBEDDED_MODEL)
SHAPE = "What shape is the red object?"
EXISTS = "Is there a red object in the image?"  # the same target: "red object"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def load():
    return load_adapter(ModelConfig(path=MODEL, device="cpu", local_files_only=True))


@pytest.fixture(scope="module")
def adapter():
    return load()


@pytest.fixture(scope="module")
def scene():
    scene = make_scene(4242, 0)  # 3538 x 1990 px, one red triangle among four other objects
    assert [o.shape for o in scene.objects if o.color == "red"] == ["triangle"]
    return scene


def pipeline(adapter, **kwargs):
    # one view (the frame's own prefix): what the memo saves with tiles is test_relevance_tiles.py's
    _, search = build_configs({"model.path": MODEL, "search.target_extraction": "model", "search.relevance_tiles": 1})
    return FocusPipeline(adapter, search, **kwargs)


def small_frame(seed):
    return np.random.default_rng(seed).integers(0, 256, (240, 320, 3), dtype=np.uint8)


def test_a_second_question_about_the_same_object_reuses_its_relevance_with_the_answer_of_a_cleared_cache(
    adapter, scene
):
    pipe = pipeline(adapter)
    first = pipe.run(scene.image, SHAPE, frame_key="cam/1")
    second = pipe.run(scene.image, EXISTS, frame_key="cam/1")
    pipe.clear_cache()
    cleared = pipe.run(scene.image, EXISTS, frame_key="cam/1")
    assert first.targets == second.targets == cleared.targets == ["red object"]
    assert second.prefix_cached and not cleared.prefix_cached
    # the relevance pass (at least) is reused, not run: neither the frame prefix nor the map is paid again
    assert second.reused_passes >= cleared.reused_passes + 1
    assert second.forward_passes <= cleared.forward_passes - 2
    np.testing.assert_allclose(second.relevance_maps["red object"], cleared.relevance_maps["red object"], atol=1e-6)
    np.testing.assert_array_equal(second.relevance_maps["red object"], first.relevance_maps["red object"])
    assert second.answer == cleared.answer and second.bbox == cleared.bbox
    assert [r.box for r in second.regions] == [r.box for r in cleared.regions]
    np.testing.assert_allclose(
        [r.confidence for r in second.regions], [r.confidence for r in cleared.regions], atol=1e-4
    )


def test_a_memoised_relevance_map_costs_no_pass_and_is_the_callers_own_copy(adapter, scene):
    pipe = pipeline(adapter)
    prefix, _ = pipe.prefix(scene.image, "cam/2")
    ran, reused = Meter(), Meter()
    rel, grid, mapping = pipe.relevance(prefix, "red object", ran, "cam/2")
    rel[:] = -1.0  # what the caller does with its map does not reach the memo
    again, grid_again, mapping_again = pipe.relevance(prefix, "red object", reused, "cam/2")
    assert (ran.forward_passes, ran.reused_passes) == (1, 0)
    assert (reused.forward_passes, reused.reused_passes, reused.tokens_prefilled) == (0, 1, 0)
    fresh, fresh_grid, fresh_mapping = pipe.relevance(prefix, "red object")  # no frame key: computed
    np.testing.assert_array_equal(again, fresh)
    np.testing.assert_array_equal(grid_again, fresh_grid)
    assert mapping_again == fresh_mapping == mapping


def test_a_change_of_the_settings_that_shape_the_map_computes_it_again(adapter, scene):
    pipe = pipeline(adapter)
    prefix, _ = pipe.prefix(scene.image, "cam/3")
    pipe.relevance(prefix, "red object", Meter(), "cam/3")
    for change in ({"smooth_sigma": pipe.search.smooth_sigma + 1.0}, {"contrast_quantile": 0.0}):
        pipe.search = dataclasses.replace(pipe.search, **change)
        meter = Meter()
        pipe.relevance(prefix, "red object", meter, "cam/3")
        assert (meter.forward_passes, meter.reused_passes) == (1, 0), change
    meter = Meter()
    pipe.relevance(prefix, "blue object", meter, "cam/3")  # another target: its own map
    assert meter.forward_passes == 1


def test_anonymous_frames_and_frames_without_a_cached_prefix_are_never_memoised(adapter, scene):
    pipe = pipeline(adapter)
    pipe.run(scene.image, SHAPE)
    again = pipe.run(scene.image, SHAPE)
    assert len(pipe.memo) == 0 and pipe.memo.bytes == 0
    assert not again.prefix_cached and again.reused_passes == 1  # the extraction prompt's examples only
    uncached = pipeline(adapter, prefix_cache_size=0)
    uncached.run(scene.image, SHAPE, frame_key="cam/4")
    assert len(uncached.memo) == 0


def test_the_memo_stays_under_its_byte_bound_with_many_frames(adapter):
    probe = pipeline(adapter)
    rel, grid, _ = probe.relevance(probe.prefix(small_frame(0))[0], "red object")
    one_entry = nbytes_of((rel, grid))  # what one target's maps cost in the memo
    pipe = pipeline(adapter, prefix_cache_size=64, memo_bytes=3 * one_entry + one_entry // 2)
    for i in range(12):
        key = f"cam/{i}"
        prefix, _ = pipe.prefix(small_frame(i), key)
        pipe.relevance(prefix, "red object", Meter(), key)
        assert 0 < pipe.memo.bytes <= pipe.memo.max_bytes
    assert len(pipe.memo) == 3
    newest, oldest = Meter(), Meter()
    pipe.relevance(pipe.prefix(small_frame(11), "cam/11")[0], "red object", newest, "cam/11")
    pipe.relevance(pipe.prefix(small_frame(0), "cam/0")[0], "red object", oldest, "cam/0")
    assert newest.reused_passes == 1 and oldest.reused_passes == 0  # least recently used went first


def test_a_frame_whose_prefix_leaves_the_cache_leaves_the_memo(adapter):
    pipe = pipeline(adapter, prefix_cache_size=2)
    for i in range(3):
        prefix, _ = pipe.prefix(small_frame(i), f"cam/{i}")
        pipe.relevance(prefix, "red object", Meter(), f"cam/{i}")
    assert pipe.cached_keys() == ["cam/1", "cam/2"] and len(pipe.memo) == 2
    meter = Meter()
    prefix, cached = pipe.prefix(small_frame(0), "cam/0")
    pipe.relevance(prefix, "red object", meter, "cam/0")
    assert not cached and meter.reused_passes == 0


def test_clear_cache_and_release_empty_the_memo(adapter, scene):
    pipe = pipeline(adapter)
    pipe.run(scene.image, SHAPE, frame_key="cam/5")
    assert len(pipe.memo) > 0
    pipe.clear_cache()
    assert len(pipe.memo) == 0 and pipe.memo.bytes == 0
    own = pipeline(load())  # release() lets go of the model: not the module's shared adapter
    own.run(scene.image, SHAPE, frame_key="cam/6")
    assert len(own.memo) > 0
    own.release()
    assert len(own.memo) == 0 and own.memo.bytes == 0 and own.cached_keys() == []
