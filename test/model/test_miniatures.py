"""Tests for the random-weight miniature checkpoints (focus_ros.training.miniatures)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file

from focus_ros.training import miniatures as mini

REPO_ROOT = Path(__file__).resolve().parents[2]

PROCESSOR_CLASSES = {
    "llava": transformers.LlavaProcessor,
    "llava_onevision": transformers.LlavaOnevisionProcessor,
    "qwen2_5_vl": transformers.Qwen2_5_VLProcessor,
}
IMAGE_PLACEHOLDER = {
    "llava": "<image>",
    "llava_onevision": "<image>",
    "qwen2_5_vl": "<|vision_start|><|image_pad|><|vision_end|>",
}
VIDEO_PROCESSOR_CLASSES = {
    "llava_onevision": transformers.LlavaOnevisionVideoProcessor,
    "qwen2_5_vl": transformers.Qwen2VLVideoProcessor,
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("miniatures")
    return root, mini.build_all(root, seed=0)


@pytest.fixture(scope="module")
def loaded(built):
    _, paths = built
    cache = {}

    def get(family):
        if family not in cache:
            processor = transformers.AutoProcessor.from_pretrained(paths[family])
            model = mini.model_class(family).from_pretrained(paths[family], attn_implementation="sdpa").eval()
            cache[family] = processor, model
        return cache[family]

    return get


def _prompt(family):
    return f"USER: {IMAGE_PLACEHOLDER[family]}\nIs there a red object in the image? ASSISTANT:"


def _image(width, height):
    return np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_build_all_writes_every_family_and_the_complete_marker(built):
    root, paths = built
    assert set(paths) == set(mini.FAMILIES)
    for family, path in paths.items():
        assert path == root / family
        assert json.loads((path / "focus_family.json").read_text()) == {"model_family": family}
        assert (path / "model.safetensors").is_file()
        assert (path / "processor_config.json").is_file()
    assert (root / ".complete").is_file()


@pytest.mark.parametrize("family", mini.FAMILIES)
def test_from_pretrained_gives_the_real_processor_and_model_classes(loaded, family):
    processor, model = loaded(family)
    assert type(processor) is PROCESSOR_CLASSES[family]
    if family in VIDEO_PROCESSOR_CLASSES:
        assert type(processor.video_processor) is VIDEO_PROCESSOR_CLASSES[family]
    assert type(model) is mini.model_class(family)
    assert model.config.model_type == family


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080), (600, 1500)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("family", mini.FAMILIES)
def test_forward_on_processor_input_gives_vocab_logits(loaded, family, size):
    processor, model = loaded(family)
    inputs = processor(images=_image(*size), text=_prompt(family), return_tensors="pt")
    n_image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    with torch.no_grad():
        out = model(**inputs)  # raises if image tokens and image features disagree
    seq = inputs["input_ids"].shape[1]
    assert out.logits.shape == (1, seq, len(processor.tokenizer))
    assert torch.isfinite(out.logits).all()
    if family == "llava":
        assert n_image_tokens == 576  # 24 x 24, resized + center-cropped to 336
    assert n_image_tokens > 0


def test_onevision_grid_pinpoints_allow_up_to_6x6_tiles():
    pinpoints = mini.onevision_grid_pinpoints()
    sides = [64 * k for k in range(1, 7)]
    assert pinpoints == [[h, w] for h in sides for w in sides]


# Expected count = base tile 8x8 + unpadded (and, for anyres_max_9, possibly downsampled)
# grid + one newline token per grid row.  anyres_max_9 downsamples when the unpadded grid
# exceeds 9 tiles' worth of tokens (9 * 64) by more than a factor 1.1 (sqrt ratio).
@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((128, 128), 64 + 16 * 16 + 16),  # 2x2 tiles, 16x16 grid: no downsampling
        ((192, 192), 64 + 24 * 24 + 24),  # 3x3 tiles, 24x24 grid = exactly 9 tiles: no downsampling
        ((1920, 1080), 64 + 18 * 31 + 18),  # 4x6 tiles, 32x48 unpadded to 28x48, downsampled to 18x31
        ((4000, 3000), 64 + 20 * 27 + 20),  # 5x6 tiles, 40x48 unpadded to 36x48, downsampled to 20x27
    ],
    ids=lambda v: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else str(v),
)
def test_onevision_token_count_follows_anyres_max_9_grid(loaded, size, expected):
    processor, model = loaded("llava_onevision")
    inputs = processor(images=_image(*size), text=_prompt("llava_onevision"), return_tensors="pt")
    assert int((inputs["input_ids"] == processor.image_token_id).sum()) == expected
    with torch.no_grad():
        model(**inputs)  # the model's feature packing must produce exactly as many features


def test_qwen_token_count_is_merged_patch_grid(loaded):
    processor, _ = loaded("qwen2_5_vl")
    inputs = processor(images=_image(1920, 1080), text=_prompt("qwen2_5_vl"), return_tensors="pt")
    t, h, w = inputs["image_grid_thw"][0].tolist()
    n = int((inputs["input_ids"] == processor.image_token_id).sum())
    assert n == t * h * w // 4
    assert n <= 256  # max_pixels = 28 * 28 * 256


@pytest.mark.parametrize("family", mini.FAMILIES)
def test_config_token_ids_match_tokenizer(loaded, family):
    processor, model = loaded(family)
    tok = processor.tokenizer
    image_token = "<|image_pad|>" if family == "qwen2_5_vl" else "<image>"
    assert model.config.image_token_id == tok.convert_tokens_to_ids(image_token)
    assert model.config.image_token_id == processor.image_token_id
    assert model.config.text_config.vocab_size == len(tok)
    assert model.config.text_config.pad_token_id == tok.pad_token_id
    assert model.config.text_config.eos_token_id == tok.eos_token_id
    if family == "qwen2_5_vl":
        assert model.config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
        assert model.config.vision_end_token_id == tok.convert_tokens_to_ids("<|vision_end|>")
        assert model.config.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    if family == "llava_onevision":
        assert model.config.video_token_id == tok.convert_tokens_to_ids("<video>")


@pytest.mark.parametrize("family", mini.FAMILIES)
def test_tokenizer_keeps_yes_no_whole_and_returns_offsets(loaded, family):
    processor, _ = loaded(family)
    tok = processor.tokenizer
    for word in mini.SINGLE_TOKEN_WORDS:
        assert len(tok.encode(word, add_special_tokens=False)) == 1, word
    text = "Is there a red object in the image?"
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert tok.decode(enc["input_ids"]) == text
    assert enc["offset_mapping"][-1][1] == len(text)
    red = tok.convert_tokens_to_ids("Ġred")
    start, end = enc["offset_mapping"][enc["input_ids"].index(red)]
    assert text[start:end].strip() == "red"


@pytest.mark.parametrize("family", mini.FAMILIES)
def test_saved_directory_is_smaller_than_10_mb(built, family):
    _, paths = built
    size = sum(f.stat().st_size for f in paths[family].rglob("*") if f.is_file())
    assert size < 10 * 1024 * 1024


@pytest.mark.parametrize("family", mini.FAMILIES)
def test_same_seed_gives_identical_weights_and_other_seed_differs(built, tmp_path, family):
    _, paths = built
    first = load_file(paths[family] / "model.safetensors")
    again = load_file(mini.build_miniature(family, tmp_path / "same", seed=0) / "model.safetensors")
    other = load_file(mini.build_miniature(family, tmp_path / "other", seed=1) / "model.safetensors")
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    name = next(k for k in first if k.endswith("embed_tokens.weight"))
    assert first[name].double().sum() == again[name].double().sum()
    assert not torch.equal(first[name], other[name])


def test_onevision_processor_saves_like_a_real_checkpoint(loaded, tmp_path):
    processor, _ = loaded("llava_onevision")
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["processor_class"] == "LlavaOnevisionProcessor"
    assert saved["num_image_tokens"] == 64
    assert saved["vision_feature_select_strategy"] == "full"
    assert saved["vision_aspect_ratio"] == "anyres_max_9"
    assert saved["video_processor"]["video_processor_type"] == "LlavaOnevisionVideoProcessor"
    assert saved["image_processor"]["image_grid_pinpoints"] == mini.onevision_grid_pinpoints()


def test_unknown_family_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown family"):
        mini.build_miniature("llava_next", tmp_path / "x")


def test_cli_script_builds_selected_family_without_complete_marker(tmp_path):
    out = tmp_path / "models"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "make_miniatures.py"), str(out), "--families", "llava"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "llava" / "focus_family.json").read_text()) == {"model_family": "llava"}
    assert not (out / "llava_onevision").exists()
    assert not (out / ".complete").exists()
