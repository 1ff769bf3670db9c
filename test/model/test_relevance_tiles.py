"""``search.relevance_tiles``: the relevance map read over square tiles of the frame, each its own
image prefix, joined into one finer grid. On the embedded model: each tile's block of the joined
map is that tile's own map (one scale across tiles), the tiles' prefixes are paid once per cached
frame, the map points at the asked object, and a model family with its own high-resolution views
refuses the setting."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from focus_ros.core.config import EMBEDDED_MODEL, ModelConfig, build_configs
from focus_ros.core.geometry import tile_crop, tile_layout
from focus_ros.core.models import Meter, load_adapter
from focus_ros.core.pipeline import FocusPipeline
from focus_ros.core.relevance import layer_indices, log_relevance
from focus_ros.eval.scenes import make_scene

REPO = Path(__file__).resolve().parents[2]
MODEL = str(REPO / EMBEDDED_MODEL)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def adapter():
    return load_adapter(ModelConfig(path=MODEL, device="cpu", local_files_only=True))


@pytest.fixture(scope="module")
def scene():
    scene = make_scene(4242, 0)  # 3538 x 1990 px, one red triangle among four other objects
    assert [o.shape for o in scene.objects if o.color == "red"] == ["triangle"]
    return scene


def pipeline(adapter, tiles, **kwargs):
    _, search = build_configs({"model.path": MODEL})
    return FocusPipeline(adapter, replace(search, relevance_tiles=tiles), **kwargs)


def own_log_map(adapter, pipe, tile_image, target):
    """A tile's map read the plain way, on its own prefix."""
    view = adapter.prefill_image(tile_image)
    ext = adapter.extend(view, adapter.existence_text(target))
    layers = layer_indices(adapter.num_layers, pipe.search.layer_start, pipe.search.layer_end)
    pos = np.asarray(view.grid_positions).reshape(-1)
    return log_relevance(
        adapter.values(ext.cache, layers), adapter.token_span(ext, target), torch.as_tensor(pos)
    ).reshape(view.grid_positions.shape)


def test_each_tiles_block_of_the_joined_map_is_that_tiles_own_map_on_one_scale(adapter, scene):
    pipe = pipeline(adapter, 2)
    prefix, _ = pipe.prefix(scene.image)
    rel, grid, mapping = pipe.relevance(prefix, "red object", Meter(), image=scene.image)
    layout = tile_layout(scene.width, scene.height, 2)
    assert (layout.rows, layout.cols) == (2, 2) and rel.shape == grid.shape == (32, 32)
    assert mapping.grid_shape == (32, 32)
    fill = adapter.pad_fill()
    own = np.block(
        [
            [own_log_map(adapter, pipe, tile_crop(scene.image, layout, r, c, fill), "red object") for c in range(2)]
            for r in range(2)
        ]
    )
    # the joined map is exp(log - max) with the median as background: the same ordering, the same
    # peak, and above the floor the same ratios as the tiles' own maps
    inside = np.ones_like(own, bool)
    inside[(np.arange(32) * layout.side / 16 >= scene.height)] = False
    assert np.unravel_index(np.argmax(np.where(inside, own, -np.inf)), own.shape) == np.unravel_index(
        np.argmax(rel), rel.shape
    )
    top = rel > 0.05
    assert top.sum() >= 2
    raw = np.exp(own - own[inside].max())
    floor = np.median(np.where(inside, own, np.median(own[inside])))
    want = np.clip((raw - np.exp(floor - own[inside].max())) / (1 - np.exp(floor - own[inside].max())), 0, 1)
    np.testing.assert_allclose(rel[top], want[top], rtol=1e-6, atol=1e-9)
    # rows wholly below the frame (the last tiles' padding) are background
    assert (rel[~inside] == 0).all()


def test_the_joined_map_points_at_the_asked_object(adapter, scene):
    pipe = pipeline(adapter, 2)
    prefix, _ = pipe.prefix(scene.image)
    red = next(o for o in scene.objects if o.color == "red")
    cx, cy = (red.box[0] + red.box[2]) / 2, (red.box[1] + red.box[3]) / 2
    rel, _, mapping = pipe.relevance(prefix, "red object", Meter(), image=scene.image)
    r, c = mapping.point_to_cell(cx, cy)
    near = rel[max(0, r - 1) : r + 2, max(0, c - 1) : c + 2]
    assert near.max() == rel.max() == 1.0


def test_tile_prefixes_are_paid_once_per_cached_frame_and_maps_once_per_target(adapter, scene):
    pipe = pipeline(adapter, 2)
    prefix, _ = pipe.prefix(scene.image, "cam/1")
    first, second, again = Meter(), Meter(), Meter()
    pipe.relevance(prefix, "red object", first, "cam/1", image=scene.image)
    pipe.relevance(prefix, "blue object", second, "cam/1", image=scene.image)
    pipe.relevance(prefix, "red object", again, "cam/1", image=scene.image)
    assert (first.forward_passes, first.reused_passes) == (8, 0)  # 4 tile prefills + 4 existence prompts
    assert (second.forward_passes, second.reused_passes) == (4, 4)  # the tiles' prefixes are kept
    assert (again.forward_passes, again.reused_passes) == (0, 4)  # the map is kept
    pipe.clear_cache()
    cleared = Meter()
    pipe.relevance(prefix, "red object", cleared, "cam/1", image=scene.image)
    assert (cleared.forward_passes, cleared.reused_passes) == (8, 0)  # not a cached frame: all anew


def test_a_frame_seen_without_a_key_is_tiled_anew_and_not_kept(adapter, scene):
    pipe = pipeline(adapter, 2)
    prefix, _ = pipe.prefix(scene.image)
    for _ in range(2):
        meter = Meter()
        pipe.relevance(prefix, "red object", meter, image=scene.image)
        assert (meter.forward_passes, meter.reused_passes) == (8, 0)
    assert not pipe.method_cache.get("focus_tiles")


def test_a_focus_question_with_tiles_reports_the_tiles_grid_and_a_box_in_the_frame(adapter, scene):
    pipe = pipeline(adapter, 2)
    result = pipe.run(scene.image, "What shape is the red object?", frame_key="cam/2")
    assert result.relevance_mapping.grid_shape == (32, 32)
    assert result.relevance_maps["red object"].shape == (32, 32)
    assert 0 <= result.bbox.x0 < result.bbox.x1 <= scene.width and 0 <= result.bbox.y0 < result.bbox.y1 <= scene.height


def test_random_windows_with_tiles_draw_focus_regions_on_the_tiles_grid(adapter, scene):
    pipe = pipeline(adapter, 2)
    pipe.search = replace(pipe.search, s_min=1, s_max=4, min_crop_side=0, crop_margin=0.0)
    result = pipe.run(scene.image, "What shape is the red object?", method="random")
    cell = tile_layout(scene.width, scene.height, 2).side / 16  # half a cell of the frame's own grid
    sides = {round(r.box.width / cell, 6) for r in result.regions if r.box.x1 < scene.width}
    assert sides and sides <= {1.0, 2.0, 3.0, 4.0}


def test_a_model_with_its_own_high_resolution_views_refuses_tiles(miniature_root):
    onevision = load_adapter(ModelConfig(path=str(miniature_root / "llava_onevision"), device="cpu"))
    _, search = build_configs({"model.path": str(miniature_root / "llava_onevision")})
    with pytest.raises(ValueError, match="relevance_tiles 2 needs a model with one square grid"):
        FocusPipeline(onevision, replace(search, relevance_tiles=2))
    pipe = FocusPipeline(onevision, replace(search, relevance_tiles=1))
    pipe.search = replace(search, relevance_tiles=2)  # as a parameter set after configure would
    image = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="relevance_tiles 2 needs a model with one square grid"):
        pipe.run(image, "What shape is the red object?")
