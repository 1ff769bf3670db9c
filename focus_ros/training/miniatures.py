"""Random-weight miniatures of the VLM architectures FOCUS runs on.

Each miniature is a real ``transformers`` model class (LLaVA-1.5, LLaVA-OneVision,
Qwen2.5-VL) with tiny dimensions and random weights, saved together with a real
processor (image processor + a small byte-level BPE tokenizer trained here on a
built-in corpus) via ``save_pretrained``.  A saved directory therefore loads back
exactly like a hub checkpoint::

    processor = AutoProcessor.from_pretrained(path)
    model = LlavaForConditionalGeneration.from_pretrained(path)

Nothing is downloaded; everything is built from configs, deterministically from
a seed.  The miniatures produce meaningless text but exercise every shape,
token-expansion and position-id path of the real models, which is what the
pipeline tests need.

``transformers`` 5.x needs ``torchvision`` for the *video* processors that
``LlavaOnevisionProcessor`` and ``Qwen2_5_VLProcessor`` carry; it is a pinned
dependency of this package.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

FAMILIES = ("llava", "llava_onevision", "qwen2_5_vl")

FAMILY_FILE = "focus_family.json"
COMPLETE_MARKER = ".complete"

#: Target size of the BPE vocabulary (before special tokens are added).
BPE_VOCAB_SIZE = 1000

#: Words that must each be encoded as one token, with and without a leading space.
SINGLE_TOKEN_WORDS = ("Yes", " Yes", "No", " No")

# --- per-family settings --------------------------------------------------

#: LLaVA-1.5 geometry: 336 / 14 -> 24 x 24 = 576 visual tokens (CLS dropped).
LLAVA_IMAGE_SIZE = 336
LLAVA_PATCH_SIZE = 14

#: LLaVA-OneVision tile geometry: 64 / 8 -> 8 x 8 = 64 visual tokens per tile.
ONEVISION_TILE = 64
ONEVISION_PATCH_SIZE = 8
SIGLIP_MEAN_STD = [0.5, 0.5, 0.5]
#: Tiles per side allowed by ``image_grid_pinpoints`` (1..6 -> up to 6 x 6 tiles, like the
#: real model's 384..2304), so large images exceed the ``anyres_max_9`` budget and are
#: downsampled, as in the real model.
ONEVISION_MAX_TILES_PER_SIDE = 6

#: Qwen2.5-VL pixel budget, in units of 28 x 28 merged patches.
QWEN_MIN_PIXELS = 28 * 28 * 4
QWEN_MAX_PIXELS = 28 * 28 * 256

_FAMILY_SPECIAL_TOKENS = {
    "llava": ["<unk>", "<s>", "</s>", "<pad>", "<image>"],
    "llava_onevision": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"],
    "qwen2_5_vl": [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ],
}

LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>\n{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %} {% else %}</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@contextmanager
def staged_dir(out_dir: Path) -> Iterator[Path]:
    """A staging folder beside ``out_dir`` to write a model into; on leaving the block it replaces
    ``out_dir`` (:func:`publish_dir`), and on an error it is removed and ``out_dir`` left as it was."""
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        yield staging
        publish_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def publish_dir(staging: Path, out_dir: Path) -> None:
    """Put a fully written ``staging`` folder in place of ``out_dir``: a reader sees the old model or
    the new one, never a half-written one. The old folder is renamed aside first (a folder cannot
    be renamed onto a non-empty one) and removed once the new one is in place."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-old-", dir=out_dir.parent))
        os.replace(out_dir, old / out_dir.name)
    try:
        os.replace(staging, out_dir)
    except BaseException:
        if old is not None:
            os.replace(old / out_dir.name, out_dir)  # put the old model back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _im_chat_template(image_placeholder: str) -> str:
    return (
        "{% for message in messages %}"
        "<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for item in message['content'] %}"
        "{% if item['type'] == 'image' %}" + image_placeholder + ""
        "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
        "{% endfor %}{% endif %}"
        "<|im_end|>\n"
        "{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


# --- tokenizer ------------------------------------------------------------

_COLORS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black", "gray", "brown", "pink")
_SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond", "rectangle", "object", "shape")
_POSITIONS = ("left", "right", "top", "bottom", "center", "middle", "corner", "upper", "lower")
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

_PROSE = """\
USER: ASSISTANT: Question: Answer: Answer the question using a single word or phrase.
If you want to answer the question, which objects' information do you need?
So I need the information about the following objects: and all the other objects in the image.
Is there a red object in the image? Yes. No. yes no Yes No
What shape is the blue circle? What color is the square on the left? How many stars are there?
Where is the green triangle? Which object is on the right side of the picture?
The image shows a small robot, a table, a cup, a chair, a person, a dog, a cat, a car and a sign.
A robot looks at the scene with its camera and asks a question about the objects it can see.
The answer is short. The target object is found by cropping the most relevant region of the image.
There is a large yellow star at the top left corner and a small purple cross at the bottom right.
Please describe the image. Describe the objects, their colors, sizes, positions and counts.
The model reads the prompt, looks at the visual tokens and predicts the next word of the answer.
A mobile robot drives through the kitchen, the living room, the office and the garden of the house.
On the desk there is a laptop, a keyboard, a mouse, a monitor, a lamp, a book, a pen and a phone.
The person in the picture is holding an umbrella and wearing a hat, a jacket, shoes and glasses.
Traffic lights, bicycles, buses, trucks, trees, buildings, windows and doors appear in the street.
Can you see the bottle behind the bowl? Is the banana next to the apple? What is under the bed?
Count the people standing near the window. Read the text written on the sign above the door.
Which animal is sleeping on the sofa? What time does the clock show? What is the weather like?
The small boxes are stacked in front of the shelf, while the large box is behind the chair.
Visual question answering with large language models works better when the relevant area is zoomed in.
High resolution images contain many small details, so the system first finds candidate regions,
scores every crop with the language model, and then answers the question using the best crop.
Together with the camera frame, each message carries a timestamp, a frame id and the image encoding.
Please think step by step: first list the objects, then check their attributes, finally give the answer.
She quickly walked across the bridge, turned around, and smiled because everything looked beautiful.
They were waiting outside the station for almost twenty minutes before the train finally arrived.
"""


def _training_corpus() -> list[str]:
    """Deterministic English corpus covering the prompts the FOCUS pipeline builds."""
    lines = [line for line in _PROSE.splitlines() if line.strip()]
    for i, color in enumerate(_COLORS):
        for j, shape in enumerate(_SHAPES):
            pos = _POSITIONS[(i + j) % len(_POSITIONS)]
            num = _NUMBERS[(i * 3 + j) % len(_NUMBERS)]
            answer = ("Yes", "No")[(i + j) % 2]
            lines += [
                f"USER: <image>\nIs there a {color} {shape} in the image? "
                f"Answer the question using a single word or phrase. ASSISTANT: {answer}",
                f"Question: What shape is the {color} object on the {pos}? Answer: {shape}",
                f"Question: What color is the {shape} at the {pos}? Answer: {color}",
                f"How many {color} {shape}s are there? {num.capitalize()}. There are {num} {color} {shape}s.",
                f"Question: Is the {color} {shape} to the {pos} of the {_SHAPES[(j + 1) % len(_SHAPES)]}? "
                f"If you want to answer the question, which objects' information do you need? "
                f"So I need the information about the following objects: {color} {shape} and "
                f"{_SHAPES[(j + 1) % len(_SHAPES)]}. {answer}, {answer.lower()}.",
            ]
    # Repeat the answer words so that BPE surely merges them into single tokens.
    lines += ["Yes No yes no Yes. No. Yes, No, Answer: Yes Answer: No"] * 50
    lines += ["No Yes no yes No. Yes. No, Yes, Answer: No Answer: Yes"] * 50
    return lines


def train_tokenizer(family: str, extra_corpus: Sequence[str] = ()):
    """Train a small byte-level BPE tokenizer and wrap it in a fast transformers tokenizer.

    ``extra_corpus`` adds lines to the built-in corpus (the embedded model adds its task texts)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = _FAMILY_SPECIAL_TOKENS[family]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        min_frequency=1,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_training_corpus() + list(extra_corpus), trainer=trainer)
    # Offsets keep the leading space of a word (like Qwen2's tokenizer.json).
    backend.post_processor = processors.ByteLevel(trim_offsets=False)

    common: dict[str, Any] = {"tokenizer_object": backend, "model_max_length": 32768}
    if family == "llava":
        tok = PreTrainedTokenizerFast(
            **common,
            bos_token="<s>",
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
            add_bos_token=True,
            padding_side="left",
            extra_special_tokens={"image_token": "<image>"},
        )
    elif family == "llava_onevision":
        tok = PreTrainedTokenizerFast(
            **common,
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            padding_side="left",
            extra_special_tokens={"image_token": "<image>", "video_token": "<video>"},
        )
    elif family == "qwen2_5_vl":
        tok = PreTrainedTokenizerFast(
            **common,
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            padding_side="left",
            extra_special_tokens={
                "image_token": "<|image_pad|>",
                "video_token": "<|video_pad|>",
                "vision_bos_token": "<|vision_start|>",
                "vision_eos_token": "<|vision_end|>",
            },
        )
    else:  # pragma: no cover - guarded by build_miniature
        raise ValueError(family)

    # The corpus repeats these words so BPE learns them as whole tokens; adding them as
    # added tokens instead would split words such as "Now" into "No" + "w".
    split = [w for w in SINGLE_TOKEN_WORDS if len(tok.encode(w, add_special_tokens=False)) != 1]
    if split:
        raise RuntimeError(f"BPE did not learn {split} as single tokens; extend the training corpus")
    return tok


# --- processors -----------------------------------------------------------


def _image_processor(family: str):
    """The image processor a real checkpoint of ``family`` carries (tiny geometry)."""
    import transformers

    if family == "llava":
        return transformers.CLIPImageProcessor(
            size={"shortest_edge": LLAVA_IMAGE_SIZE},
            crop_size={"height": LLAVA_IMAGE_SIZE, "width": LLAVA_IMAGE_SIZE},
            do_resize=True,
            do_center_crop=True,
            do_rescale=True,
            do_normalize=True,
            do_convert_rgb=True,
            resample=3,  # bicubic
        )
    if family == "llava_onevision":
        # Real OneVision checkpoints take mean/std 0.5 from SigLIP's image processor.
        return transformers.LlavaOnevisionImageProcessor(
            size={"height": ONEVISION_TILE, "width": ONEVISION_TILE},
            image_grid_pinpoints=onevision_grid_pinpoints(),
            image_mean=SIGLIP_MEAN_STD,
            image_std=SIGLIP_MEAN_STD,
            do_pad=True,
            do_convert_rgb=True,
        )
    return transformers.Qwen2VLImageProcessor(
        size={"shortest_edge": QWEN_MIN_PIXELS, "longest_edge": QWEN_MAX_PIXELS},
        patch_size=14,
        merge_size=2,
        temporal_patch_size=2,
    )


def _build_processor(family: str, tokenizer):
    import transformers

    image_processor = _image_processor(family)
    if family == "llava":
        return transformers.LlavaProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=LLAVA_PATCH_SIZE,
            vision_feature_select_strategy="default",
            image_token="<image>",
            num_additional_image_tokens=1,  # CLIP's CLS token; "default" strategy removes it again
            chat_template=LLAVA_CHAT_TEMPLATE,
        )
    if family == "llava_onevision":
        video_processor = transformers.LlavaOnevisionVideoProcessor(
            size={"height": ONEVISION_TILE, "width": ONEVISION_TILE},
            image_mean=SIGLIP_MEAN_STD,
            image_std=SIGLIP_MEAN_STD,
        )
        return transformers.LlavaOnevisionProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=video_processor,
            num_image_tokens=(ONEVISION_TILE // ONEVISION_PATCH_SIZE) ** 2,
            vision_feature_select_strategy="full",
            image_token="<image>",
            video_token="<video>",
            vision_aspect_ratio="anyres_max_9",
            chat_template=_im_chat_template("<image>"),
        )
    video_processor = transformers.Qwen2VLVideoProcessor(
        size={"shortest_edge": QWEN_MIN_PIXELS, "longest_edge": QWEN_MAX_PIXELS},
        patch_size=14,
        merge_size=2,
        temporal_patch_size=2,
    )
    return transformers.Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=_im_chat_template("<|vision_start|><|image_pad|><|vision_end|>"),
    )


# --- models ---------------------------------------------------------------


def onevision_grid_pinpoints() -> list[list[int]]:
    """``image_grid_pinpoints`` of the OneVision miniature: all [h, w] multiples of the tile size."""
    sides = [ONEVISION_TILE * k for k in range(1, ONEVISION_MAX_TILES_PER_SIDE + 1)]
    return [[h, w] for h in sides for w in sides]


def model_class(family: str) -> type:
    """The ``transformers`` model class used for ``family``."""
    import transformers

    names = {
        "llava": "LlavaForConditionalGeneration",
        "llava_onevision": "LlavaOnevisionForConditionalGeneration",
        "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    }
    if family not in names:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    return getattr(transformers, names[family])


def _text_kwargs(tokenizer) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "tie_word_embeddings": False,
    }


def _build_config(family: str, tokenizer):
    import transformers

    text = _text_kwargs(tokenizer)
    ids = tokenizer.convert_tokens_to_ids
    if family == "llava":
        vision = transformers.CLIPVisionConfig(
            image_size=LLAVA_IMAGE_SIZE,
            patch_size=LLAVA_PATCH_SIZE,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            projection_dim=32,
        )
        return transformers.LlavaConfig(
            vision_config=vision,
            text_config=transformers.LlamaConfig(**text),
            image_token_index=ids("<image>"),
            image_seq_length=(LLAVA_IMAGE_SIZE // LLAVA_PATCH_SIZE) ** 2,
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
            projector_hidden_act="gelu",
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
        )
    if family == "llava_onevision":
        vision = transformers.SiglipVisionConfig(
            image_size=ONEVISION_TILE,
            patch_size=ONEVISION_PATCH_SIZE,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            vision_use_head=False,
        )
        return transformers.LlavaOnevisionConfig(
            vision_config=vision,
            text_config=transformers.Qwen2Config(**text, rope_theta=1000000.0),
            image_token_index=ids("<image>"),
            video_token_index=ids("<video>"),
            image_grid_pinpoints=onevision_grid_pinpoints(),
            vision_aspect_ratio="anyres_max_9",
            vision_feature_select_strategy="full",
            vision_feature_layer=-1,
            projector_hidden_act="gelu",
            tie_word_embeddings=False,
        )
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    half = head_dim // 2  # mrope_section splits the rotary half-dim into (t, h, w)
    mrope = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]  # [2, 3, 3]; real 7B: [16, 24, 24]
    text_config = dict(
        text,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": mrope},
    )
    vision_config = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "in_channels": 3,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [1],
        "out_hidden_size": text["hidden_size"],
        "tokens_per_second": 2,
    }
    return transformers.Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )


# --- public API -----------------------------------------------------------


def build_miniature(family: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Build the random-weight miniature of ``family`` and save it to ``out_dir``.

    Writes the model (float32 safetensors), its processor (tokenizer, image
    processor, processor config, chat template) and ``focus_family.json``
    (``{"model_family": family}``).  The directory is assembled next to
    ``out_dir`` and moved into place at the end, replacing any previous content.
    Weights depend only on ``seed``; the caller's torch RNG state is untouched.

    Returns the resolved ``out_dir``.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    tokenizer = train_tokenizer(family)
    processor = _build_processor(family, tokenizer)
    config = _build_config(family, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(family)(config).to(torch.float32).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id

    with staged_dir(out_dir) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        processor.save_pretrained(staging)
        (staging / FAMILY_FILE).write_text(json.dumps({"model_family": family}) + "\n", encoding="utf-8")
        staging.chmod(0o755)
        for item in staging.iterdir():
            item.chmod(0o644)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("built %s miniature (%d parameters, seed %d) in %s", family, n_params, seed, out_dir)
    return out_dir


def build_all(out_root: str | Path, seed: int = 0, families: Sequence[str] = FAMILIES) -> dict[str, Path]:
    """Build ``families`` (default: all of :data:`FAMILIES`) under ``out_root/<family>``.

    After a successful build, writes the marker ``out_root/.complete`` when every
    family of :data:`FAMILIES` is present under ``out_root``.  Returns
    ``{family: path}`` for the families built.
    """
    out_root = Path(out_root).resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    marker = out_root / COMPLETE_MARKER
    marker.unlink(missing_ok=True)
    built = {family: build_miniature(family, out_root / family, seed=seed) for family in families}
    if all((out_root / family / FAMILY_FILE).is_file() for family in FAMILIES):
        marker.write_text(json.dumps({"families": list(FAMILIES), "seed": seed}) + "\n", encoding="utf-8")
    return built


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: ``focus-make-miniatures OUT_ROOT [--seed S] [--families F ...]``."""
    parser = argparse.ArgumentParser(
        prog="focus-make-miniatures",
        description="Build random-weight miniature VLM checkpoints (LLaVA, LLaVA-OneVision, Qwen2.5-VL).",
    )
    parser.add_argument("out_root", type=Path, help="directory that receives one sub-directory per family")
    parser.add_argument("--seed", type=int, default=0, help="torch seed for the random weights (default 0)")
    parser.add_argument(
        "--families", nargs="+", choices=FAMILIES, default=list(FAMILIES), help="families to build (default: all)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    built = build_all(args.out_root, seed=args.seed, families=args.families)
    for family, path in built.items():
        logger.info("%s -> %s", family, path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
