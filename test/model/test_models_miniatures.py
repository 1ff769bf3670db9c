"""FOCUS on the three real architectures (random-weight miniatures loaded with from_pretrained)."""

import numpy as np
import pytest
import torch

from focus_ros.core.config import ModelConfig, build_configs
from focus_ros.core.geometry import Box
from focus_ros.core.models import load_adapter
from focus_ros.core.pipeline import FocusPipeline, is_out_of_memory

FAMILIES = ("llava", "llava_onevision", "qwen2_5_vl")
_ADAPTERS = {}


def adapter_for(root, family, attn="sdpa"):
    key = (family, attn)
    if key not in _ADAPTERS:
        _ADAPTERS[key] = load_adapter(ModelConfig(path=str(root / family), attn_implementation=attn))
    return _ADAPTERS[key]


def frame(w=1280, h=720, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def fresh_last_logits(adapter, image, ids, extra_images=()):
    """Next-token logits of one full prefill (no cache) of ``ids`` with the images' pixels."""
    images = [adapter.processor_image(i) for i in (image, *extra_images)]  # as image_inputs shows them
    inputs = adapter.image_inputs(images[0], adapter.prefix_text(), add_special_tokens=True)
    if extra_images:
        inputs = dict(
            adapter.processor(
                images=list(images), text=adapter.prefix_text() + adapter.image_placeholder(), return_tensors="pt"
            )
        )
    inputs["input_ids"] = ids
    inputs.pop("attention_mask", None)
    if "mm_token_type_ids" in inputs or adapter.family == "qwen2_5_vl":
        inputs["mm_token_type_ids"] = (ids == adapter.model.config.image_token_id).int()
    inputs = {k: (v.to(adapter.dtype) if k.startswith("pixel_values") else v) for k, v in inputs.items()}
    with torch.inference_mode():
        out = adapter.model(**inputs, use_cache=False)
    return out.logits[0, -1].float()


@pytest.mark.parametrize("family", FAMILIES)
def test_family_is_read_from_the_checkpoint_config(miniature_root, family):
    model, search = build_configs({"model.path": str(miniature_root / family)})
    assert model.family == family
    assert adapter_for(miniature_root, family).family == family


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_prefix_gives_the_same_logits_as_a_fresh_prefill(miniature_root, family):
    adapter = adapter_for(miniature_root, family)
    image = frame()
    prefix = adapter.prefill_image(image)
    ext = adapter.extend(prefix, adapter.existence_text("red object"))
    ids = torch.cat([prefix.input_ids, ext.input_ids], dim=1)
    fresh = fresh_last_logits(adapter, image, ids)
    torch.testing.assert_close(ext.logits, fresh, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_extending_never_modifies_the_cached_prefix(miniature_root, family):
    adapter = adapter_for(miniature_root, family)
    prefix = adapter.prefill_image(frame(seed=1))
    length = prefix.cache.get_seq_length()
    first = adapter.extend(prefix, adapter.existence_text("blue object"))
    adapter.extend(prefix, adapter.question_text("What shape is the green object?"))
    again = adapter.extend(prefix, adapter.existence_text("blue object"))
    assert prefix.cache.get_seq_length() == length == prefix.length
    torch.testing.assert_close(first.logits, again.logits, atol=0, rtol=0)


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_5_vl"])
def test_global_plus_crop_extension_equals_a_fresh_two_image_prefill(miniature_root, family):
    adapter = adapter_for(miniature_root, family)
    image = frame(seed=2)
    crop = np.ascontiguousarray(image[100:400, 200:700])
    prefix = adapter.prefill_image(image)
    ext = adapter.extend_with_image(prefix, crop, adapter.crop_question_text("What shape is the red object?"))
    ids = torch.cat([prefix.input_ids, ext.input_ids], dim=1)
    fresh = fresh_last_logits(adapter, image, ids, extra_images=(crop,))
    torch.testing.assert_close(ext.logits, fresh, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_relevance_maps_are_identical_under_sdpa_and_eager(miniature_root, family):
    image = frame(seed=3)
    maps = []
    for attn in ("sdpa", "eager"):
        adapter = adapter_for(miniature_root, family, attn)
        _, search = build_configs({"model.path": str(miniature_root / family)})
        pipe = FocusPipeline(adapter, search)
        rel_map, _, _ = pipe.relevance(adapter.prefill_image(image), "red object")
        maps.append(rel_map)
    # the contrast divides by the peak's distance from the median, which magnifies float noise too
    np.testing.assert_allclose(maps[0], maps[1], atol=1e-4)


@pytest.mark.parametrize("family,size", [(f, s) for f in FAMILIES for s in [(1920, 1080), (600, 1500)]])
def test_visual_grid_covers_exactly_the_source_image(miniature_root, family, size):
    adapter = adapter_for(miniature_root, family)
    w, h = size
    prefix = adapter.prefill_image(frame(w, h, seed=4))
    gh, gw = prefix.grid_positions.shape
    assert prefix.mapping.grid_shape == (gh, gw)
    assert prefix.mapping.cell_box(0, 0, gh, gw) == Box(0, 0, w, h)
    positions = prefix.grid_positions.reshape(-1)
    assert len(set(positions.tolist())) == positions.size
    assert (positions < prefix.length).all()
    if family != "llava":  # aspect-preserving grids: cells are roughly square in source pixels
        cell = prefix.mapping.cell_box(gh // 2, gw // 2, gh // 2 + 1, gw // 2 + 1)
        assert 0.5 < cell.width / cell.height < 2.0


@pytest.mark.parametrize("family", FAMILIES)
def test_focus_reports_boxes_inside_the_frame_and_counts_its_cost(miniature_root, family):
    adapter = adapter_for(miniature_root, family)
    _, search = build_configs(
        {
            "model.path": str(miniature_root / family),
            "search.max_steps": 2,
            "search.overrun": False,
            "search.target_extraction": "rule",
        }
    )
    pipe = FocusPipeline(adapter, search)
    image = frame(1600, 900, seed=5)
    r = pipe.run(image, "What shape is the red object?", frame_key="f1")
    assert r.targets == ["red object"] and r.question_type == 1
    assert r.bbox is not None and 0 <= r.bbox.x0 < r.bbox.x1 <= 1600 and 0 <= r.bbox.y0 < r.bbox.y1 <= 900
    assert 1 <= len(r.regions) and all(0 <= reg.box.x0 < reg.box.x1 <= 1600 for reg in r.regions)
    verified = [reg for reg in r.regions if reg.confidence >= 0]
    assert len(verified) == 2 and all(0 <= reg.confidence <= 1 for reg in verified)
    # prefix + one relevance prompt + (crop prefill + existence prompt) per check + one answer
    # prompt (on the verified crop's cached prefix, or global prefix + crop image)
    assert r.forward_passes == 1 + 1 + 2 * 2 + 1
    assert set(r.timings) >= {"targets", "prefill", "relevance", "verify", "answer", "total"}
    assert r.relevance_maps["red object"].shape == pipe.adapter.prefill_image(image).grid_positions.shape


@pytest.mark.parametrize("family", FAMILIES)
def test_second_question_on_the_same_frame_reuses_the_prefix(miniature_root, family):
    adapter = adapter_for(miniature_root, family)
    _, search = build_configs({"model.path": str(miniature_root / family), "search.target_extraction": "rule"})
    pipe = FocusPipeline(adapter, search)
    image = frame(seed=6)
    first = pipe.run(image, "Is there a red object in the image?", method="vanilla", frame_key="cam0/1")
    second = pipe.run(image, "Is there a blue object in the image?", method="vanilla", frame_key="cam0/1")
    assert not first.prefix_cached and second.prefix_cached
    prefix_len = pipe.prefix(image, "cam0/1")[0].length
    assert first.tokens_prefilled - second.tokens_prefilled == prefix_len
    assert second.forward_passes == first.forward_passes - 1


def test_release_memory_forgets_the_cached_prefix_so_the_next_question_prefills_again(miniature_root):
    adapter = adapter_for(miniature_root, "llava")
    _, search = build_configs({"model.path": str(miniature_root / "llava"), "search.target_extraction": "rule"})
    pipe = FocusPipeline(adapter, search)
    image = frame(seed=8)
    first = pipe.run(image, "Is there a red object in the image?", method="vanilla", frame_key="cam0/7")
    pipe.release_memory()
    again = pipe.run(image, "Is there a red object in the image?", method="vanilla", frame_key="cam0/7")
    assert not first.prefix_cached and not again.prefix_cached
    assert again.answer == first.answer and again.tokens_prefilled == first.tokens_prefilled


def _raised_by(allocate):
    try:
        allocate()
    except Exception as exc:  # noqa: BLE001 - the exception itself is under test
        return exc
    raise AssertionError("the allocation succeeded")


def test_out_of_memory_is_recognised_as_numpy_torch_and_cuda_raise_it_and_nothing_else():
    """Real failed allocations (far beyond any address space), and CUDA's exception type."""
    assert is_out_of_memory(_raised_by(lambda: np.empty(10**18, np.uint8)))  # MemoryError
    assert is_out_of_memory(_raised_by(lambda: torch.empty(2**60, dtype=torch.uint8)))  # CPU allocator
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB"))
    assert not is_out_of_memory(_raised_by(lambda: np.zeros(3) @ np.zeros(4)))  # ValueError
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_bad_inputs_are_rejected_with_a_reason(miniature_root):
    adapter = adapter_for(miniature_root, "llava")
    _, search = build_configs({"model.path": str(miniature_root / "llava")})
    pipe = FocusPipeline(adapter, search)
    with pytest.raises(ValueError, match="question is empty"):
        pipe.run(frame(), "   ")
    with pytest.raises(ValueError, match="HxWx3"):
        pipe.run(np.zeros((10, 10), np.uint8), "What?")
    with pytest.raises(ValueError, match="method"):
        pipe.run(frame(), "What?", method="magic")


def test_an_older_transformers_is_refused_with_the_version_it_needs():
    import transformers

    from focus_ros.core.models import MIN_TRANSFORMERS, check_transformers

    check_transformers()  # the pinned, installed release passes
    check_transformers(transformers.__version__)
    with pytest.raises(RuntimeError, match=rf"transformers 4\.57\.6 is too old: focus_ros needs >= {MIN_TRANSFORMERS}"):
        check_transformers("4.57.6")
