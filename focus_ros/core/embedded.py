"""The embedded default model: a small LLaVA trained here on the synthetic scenes.

No real checkpoint is reachable from this project's machines, so the model that gives real
answers in the demo, the tests and the benchmark is trained from scratch by
``scripts/train_embedded_model.py`` on :mod:`focus_ros.core.scenes`. It is a plain
``LlavaForConditionalGeneration`` (CLIP vision tower, Llama language model, a BPE tokenizer and a
``LlavaProcessor``) saved with ``save_pretrained`` and loaded through the same adapter as a real
LLaVA-1.5 checkpoint. FOCUS itself is never trained: no loss touches value vectors, attention
weights or relevance maps.

The recipe (what earlier runs showed a tiny LLaVA needs before value-cache relevance means
anything: dense vision pre-training, alignment to the word embeddings kept frozen afterwards, crops
at the scales croppers use, then an existence curriculum):

1. ``vision``: dense per-patch colour and shape classification on the vision tower's output
   (the stand-in for CLIP pre-training), on frames and on crops at many scales;
2. ``align``: the projector maps each patch to the direction of its colour word's embedding
   (``none`` for background), with the vision tower and word embeddings frozen (the stand-in for
   LLaVA's alignment stage: it is what makes early-layer value similarity colour-specific);
3. ``tune-crops`` then ``tune``: instruction tuning of the language model's layers and its
   (untied) output head only, vision tower, projector and word embeddings frozen so the
   alignment survives; existence (balanced present/absent), shape, colour, relation, counting
   and the target-extraction prompt, several questions per image; crops first, frames after.

Everything is deterministic from the config's seed: sample ``i`` of a stage is scene ``i`` of
that stage's scene seed, whatever the number of loader workers, so a resumed run sees the
same data as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import MISSING, asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .embedded_eval import heldout_scenes, shape_windows
from .geometry import crop
from .methods.settings import AttentionCropConfig, ZoomConfig
from .methods.zoom import GLOBAL_PROMPTS, LOCAL_PROMPTS, ZOOM_PROMPTS
from .miniatures import FAMILY_FILE, _LLAVA_CHAT_TEMPLATE, _train_tokenizer
from .models.llava import expand_to_square
from .scenes import COLORS, SHAPES, TEMPLATES, Scene, SceneObject, SceneSpec, make_scene
from .targets import ANSWER_LEAD, extraction_prompt

LOG = logging.getLogger(__name__)

COLOR_CLASSES = ("none",) + tuple(COLORS)      # per-patch colour labels; 0 = background
SHAPE_CLASSES = ("none",) + tuple(SHAPES)      # per-patch shape labels; 0 = background
IGNORE = -100
SETTINGS_FILE = "focus_settings.json"          # per-model search settings the tools read
# the baselines' own wording (method_prompts), read once from their settings' defaults
DECOMPOSED_QUESTION = ZoomConfig().decomposed_question
VICROP_INSTRUCTION = AttentionCropConfig().instruction
SHAPE_GATE_SCENES = 100   # held-out scenes of the shape gate (scripts/eval_embedded_model.py --scenes default)
GATE_SCENES = 60          # held-out scenes of the vision and alignment stages' per-patch gates


# ----------------------------------------------------------------------------- configuration
MATCH_GAIN = 2.0        # the matching initialisation's scale in every recipe that uses it


@dataclass(frozen=True)
class ModelShape:
    """Sizes of the embedded model (about 1.7 M parameters, ~7 MB in float32)."""

    image_size: int = 128          # EMBEDDED-MODEL D/E: 96 px was too small to read crops, 128 px works
    patch_size: int = 8            # 16 x 16 grid: a 1 %-of-frame object still covers a cell on crops
    vision_hidden: int = 96
    vision_layers: int = 4
    vision_heads: int = 4
    text_hidden: int = 128
    text_layers: int = 4           # few layers: FOCUS reads early layers of this model (see the report)
    text_heads: int = 4
    text_mlp: int = 384

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


# the ModelShape fields the vision stage depends on: --vision-from compares these, so a study may
# change the LM's sizes on another run's tower
VISION_SHAPE_FIELDS = ("image_size", "patch_size", "vision_hidden", "vision_layers", "vision_heads")


@dataclass(frozen=True)
class StageConfig:
    """One training stage: what trains, on what data, for how long."""

    name: str
    steps: int
    lr: float
    scenes_per_step: int = 6            # scenes drawn per optimiser step
    crops_per_scene: int = 5            # object-centred and random crops besides the full frame
    frames: bool = True                 # include the full frame as a view
    max_sequences: int = 64             # question sequences per step (stage 3)
    symbolic: float = 0.0               # share of existence questions whose image slots hold the patch
                                        # labels' word embeddings (what perfect alignment gives): the
                                        # existence curriculum's clean first step
    warmup: int = 50
    release_heads: int = 0              # at this stage's start the last N layer-0 heads get their random
                                        # query/key back (free again after the matching stages)
    grow_heads: int = 0                 # at this stage's start every LM layer gets N new heads whose output
                                        # starts at zero (grow_heads): capacity without forgetting
    match_heads: int = 0                # of the heads grown here, the first N in layer 0 get the matching init
    new_heads_only: bool = False        # only the grown heads' query/key/value/output weights learn: the
                                        # trained heads keep reading shapes while the new ones learn existence
    per_map: int = 1                    # exist-symbolic: questions asked about each symbolic map; they share
                                        # its image prefix (64 questions a step: 1.62 s with 1, 0.73 with 4, 0.56 with 8)
    scene_reuse: int = 1                # consecutive items that draw their views and questions from one scene: the
                                        # loader's drawing, not the model, bounds a 2-core step (vision 1.67 s a step
                                        # with the loader, 0.99 without), and drawing a frame costs ~2x its 16 views


@dataclass(frozen=True)
class TrainConfig:
    """The whole recipe: seeds, scene sizes and the stages in order."""

    seed: int = 20251125
    heldout_seed: int = 987654          # never drawn in training; the gates use it
    shape: ModelShape = ModelShape()
    # Training scenes: the benchmark's layout and object sizes on smaller frames (4x cheaper to draw;
    # objects are sized relative to the frame, so the down-scaled views look alike).
    train_short_side: tuple[int, int] = (1080, 1600)
    crop_scale: tuple[float, float] = (2.0, 10.0)      # crop side / target side (EMBEDDED-MODEL E)
    legible_px: float = 12.0            # an object at least this big in the 128 px view shows its shape
    # > 0: LM layer 0 starts with the same query and key projection onto the rotary-slow dimensions,
    # so a colour word attends to the image slots holding its aligned embedding from step 0 (see
    # existence_first()). Initialisation only; no loss ever touches attention or value vectors.
    match_init_gain: float = 0.0
    match_init_heads: int = 0           # how many layer-0 heads get it (0: all); the others stay free
    visible_px: float = 2.0             # smaller than this in the view: not asked about at all
    # bfloat16 autocast for every training step (weights, optimiser and gates stay float32): on this
    # machine's AVX512-BF16 cores a vision step is 23 % faster (README "Embedded model")
    mixed_precision: bool = False
    # > 0: in the vision stage no object weighs more than this many patches (vision_loss): per-patch
    # weights let large objects dominate, and shape reading at 1/8 of a crop (2 x 2 patches) lagged
    vision_object_cap: int = 0
    # "plain": the benchmark's generator (muted backgrounds); "varied": scene_styles' randomised
    # backgrounds (natural images, saturated gradients), distractors and object styles, so that
    # colour-word relevance cannot learn "the saturated blob" of one generator
    scene_style: str = "plain"
    # also train the baselines' prompts (ZoomEye's existence / latent / answering questions, ViCrop's
    # answer instruction): a baseline asking questions the model never saw would be measured unfairly
    method_prompts: bool = False
    stages: tuple[StageConfig, ...] = (
        StageConfig("vision", steps=1500, lr=2e-3, scenes_per_step=6, crops_per_scene=5),
        StageConfig("align", steps=600, lr=2e-3, scenes_per_step=6, crops_per_scene=5),
        StageConfig("tune-crops", steps=500, lr=1e-3, scenes_per_step=4, crops_per_scene=6, frames=False,
                    max_sequences=64, symbolic=0.5),
        StageConfig("tune", steps=1500, lr=1e-3, scenes_per_step=4, crops_per_scene=5, max_sequences=64,
                    symbolic=0.2),
    )

    def scaled(self, factor: float) -> "TrainConfig":
        """The same recipe with every stage's step count multiplied by ``factor`` (tests, smoke runs)."""
        return replace(self, stages=tuple(replace(s, steps=max(1, int(round(s.steps * factor))),
                                                  warmup=max(1, int(round(s.warmup * factor))))
                                          for s in self.stages))

    def with_steps(self, **steps: int) -> "TrainConfig":
        """The same recipe with the step counts of the stages named in ``steps`` (``tune_crops=``
        for ``tune-crops``) replaced; warm-up is kept at most a tenth of a stage."""
        cfg = self
        for name, n in steps.items():
            warmup = cfg.stages[cfg.stage_index(name)].warmup
            cfg = cfg.with_stage(name, steps=n, warmup=min(warmup, max(1, n // 10)))
        return cfg

    def with_stage(self, stage: str, /, **fields) -> "TrainConfig":
        """The same recipe with ``fields`` of the stage named ``stage`` (``tune_crops`` or
        ``tune-crops``) replaced; an unknown stage or field, or the stage's name, is refused."""
        bad = set(fields) - set(StageConfig.__dataclass_fields__) | ({"name"} & set(fields))
        if bad:
            raise ValueError(f"StageConfig has no settable field(s) {sorted(bad)}")
        at = self.stage_index(stage)
        return replace(self, stages=tuple(replace(s, **fields) if i == at else s for i, s in enumerate(self.stages)))

    def stage_index(self, name: str) -> int:
        """Where the stage ``name`` (``tune_crops`` or ``tune-crops``) is in the recipe."""
        keys = [st.name.replace("-", "_") for st in self.stages]
        if name.replace("-", "_") not in keys:
            raise ValueError(f"no stage {name!r} in this recipe (stages: {', '.join(keys)})")
        return keys.index(name.replace("-", "_"))

    def smaller_batches(self, factor: float = 0.5) -> "TrainConfig":
        """The same stages and step counts with ``factor`` times the scenes and LM sequences per
        step: as many updates for less compute (a 2-core step of `vision` took 1.02 s with 3
        scenes against 2.58 s with 6, since one loader process draws the scenes beside training)."""
        return replace(self, stages=tuple(replace(st, scenes_per_step=max(1, int(round(st.scenes_per_step * factor))),
                                                  max_sequences=max(1, int(round(st.max_sequences * factor))))
                                          for st in self.stages))

    def reuse_scenes(self, k: int = 2, skip: Sequence[str] = ()) -> "TrainConfig":
        """The same stages, views and questions per step, with every ``k`` consecutive items drawn
        from one scene (``StageConfig.scene_reuse``): 1/k of the frames to draw, as many crops.
        Stages named in ``skip`` keep one item a scene."""
        return replace(self, stages=tuple(s if s.name in skip else replace(s, scene_reuse=k) for s in self.stages))

    def __post_init__(self):
        # the gates read the held-out seed's scenes: no stage may train on them
        if self.heldout_seed in {self.stage_seed(i) for i in range(len(self.stages))}:
            raise ValueError(f"seed {self.seed}: a stage would draw the held-out scenes (seed {self.heldout_seed})")

    def stage_seed(self, stage_index: int) -> int:
        return self.seed * 10 + stage_index

    def existence_first(self, symbolic_steps: int = 3000, heads: int = 0, release: int = 0,
                        **steps: int) -> "TrainConfig":
        """The existence-first variant: the matching initialisation of LM layer 0 (on ``heads``
        heads, 0: all) plus a stage of existence questions on symbolic label maps (no scenes drawn)
        between alignment and tuning; ``release`` heads get their random query/key back when
        tuning starts; ``steps`` overrides other stages' step counts as :meth:`with_steps` does.
        With the default recipe existence never left chance (a 4-layer LM did not find the
        word-to-slot matching head from a random start in 3000 steps); with this one it reaches
        1.0 on held-out crops, but shape reading fell (README "Embedded model")."""
        stages = [replace(s, release_heads=release if s.name == "tune-crops" else 0)
                  for s in self.with_steps(**steps).stages]
        at = [s.name for s in stages].index("align") + 1
        stages.insert(at, StageConfig("exist-symbolic", steps=symbolic_steps, lr=1e-3, max_sequences=64, warmup=100))
        return replace(self, match_init_gain=MATCH_GAIN, match_init_heads=heads, stages=tuple(stages))

    def more_crops(self, crops: int = 15, stages: Sequence[str] = ("vision", "align")) -> "TrainConfig":
        """The same recipe with ``crops`` crops per scene in ``stages``: a scene's crops cost
        almost nothing next to drawing the scene and its frame (measured on this CPU: 0.18 s per
        scene item with 5 crops or with 15), and crops carry nearly all the shape labels
        (objects legible at >= 12 px), so the vision tower sees three times the shapes per second.
        Measured (default recipe vs the same with 5 crops): vision tower per-patch shape on held-out
        crops 0.79 vs 0.58, shape answers on crops 0.87 vs 0.65 (README "Embedded model")."""
        return replace(self, stages=tuple(replace(s, crops_per_scene=crops) if s.name in stages else s
                                          for s in self.stages))

    def grown_existence(self, grow: int = 4, match: int = 2, symbolic_steps: int = 400, crop_steps: int = 700,
                        joint_steps: int = 600, new_heads_only: bool = False, per_map: int = 1) -> "TrainConfig":
        """The recipe followed by three stages that add existence without taking heads from shape
        reading: every LM layer grows ``grow`` heads (output starting at zero, so the model still
        computes what it did; the first ``match`` of layer 0 with the matching initialisation),
        then symbolic existence, existence and shape on crops, and a joint tune at half the
        learning rate. With ``new_heads_only`` the first two of them train only the grown heads
        (measured: symbolic existence stayed at 0.58 after 351 steps, README "Embedded model"); ``per_map``
        existence questions share each symbolic map of the first stage.
        Starting from a saved model of the recipe (``Trainer(init_from=..., start_stage=4)``)
        reruns just these stages."""
        return replace(self, stages=self.stages + (
            StageConfig("exist-symbolic", steps=symbolic_steps, lr=1e-3, max_sequences=64, warmup=50,
                        grow_heads=grow, match_heads=match, new_heads_only=new_heads_only, per_map=per_map),
            StageConfig("exist-crops", steps=crop_steps, lr=1e-3, scenes_per_step=4, crops_per_scene=6,
                        frames=False, max_sequences=64, symbolic=0.5, new_heads_only=new_heads_only),
            StageConfig("tune-joint", steps=joint_steps, lr=5e-4, scenes_per_step=4, crops_per_scene=5,
                        max_sequences=64, symbolic=0.2)))


# "default" made models/embedded: one run from scratch on a 2-core AMD EPYC with AVX512-BF16 (109 min,
# README "Embedded model" (15)-(16)): the four stages with 15 crops per scene in vision and alignment, then
# the grown-head stages, under bfloat16 autocast; "full-bf16" is the same recipe under the name it was
# measured with. "default-fp32" is it in float32: it made the model committed before (a lent H200, 543 s,
# heads not yet seeded, so no command reproduces those weights; FOCUS 0.603 against 0.587 on the held-out
# 300, each at its own validated region sizes). On a host whose bfloat16 is slow (2026-11-27's: vision 2.75 vs
# 1.67 s a step in float32) it overruns the 2-hour budget; "reuse-fp32" is the float32 recipe sized for such
# a host: 8 existence questions per symbolic map (exist-symbolic 1.74 -> 0.61 s a step) and two items per
# drawn scene (scene_reuse; the loader bounded every stage). Measured from scratch on 2 cores: 107 min, but
# per-patch shape on held-out crops 0.72 against 0.79 (fewer distinct scenes). "cut-bf16" was a default
# before: full-bf16 with 8 questions per map and fewer steps, 138 min measured and weaker shape reading
# (README "Embedded model").
# "grown-heads" is an older default (5 crops; models/embedded at fff4a47), "four-stage" the one before it.
RECIPES = {"reuse-fp32": TrainConfig().more_crops().grown_existence(per_map=8).reuse_scenes(2),
           # default-fp32 reading a 192 px view through 12 px patches: the same 16 x 16 grid and token count
           # (about the same compute), each patch seeing 1.5x the pixels; sizes in view pixels scale with it
           "view-192": replace(TrainConfig().more_crops().grown_existence(),
                               shape=ModelShape(image_size=192, patch_size=12), legible_px=18.0, visible_px=3.0),
           # default-fp32 on a 192 px view through 8 px patches: a 24 x 24 grid (LLaVA-1.5's), 2.25x the image
           # tokens, so a target 1/80 of the frame is 2.4 px of the view and the relevance map's cells are 2/3 as
           # wide: the lever README "Embedded model" (13) points to (FOCUS's misses are sub-patch targets)
           "grid-24": replace(TrainConfig().more_crops().grown_existence(),
                              shape=ModelShape(image_size=192, patch_size=8), legible_px=18.0, visible_px=3.0),
           # reuse-fp32 (8 questions a symbolic map, two items a scene) on view-192's 192 px view; its
           # vision stage read shapes per scale about as reuse-fp32's at 128 px (README "Embedded model" (9))
           "default-192": replace(TrainConfig().more_crops().grown_existence(per_map=8).reuse_scenes(2),
                                  shape=ModelShape(image_size=192, patch_size=12), legible_px=18.0, visible_px=3.0),
           # reuse-fp32 with each object's patches capped at 4 patches' weight in the vision loss: its
           # vision stage read 1/8-1/6 targets far better and 1/3-1/2 ones worse (README "Embedded model" (9))
           "small-objects": replace(TrainConfig().more_crops().grown_existence(per_map=8).reuse_scenes(2),
                                    vision_object_cap=4),
           # reuse-fp32 with one item a scene in the vision stage (shape reading needs distinct scenes);
           # measured on 2 cores: 129 min (over budget on that day's host), shape on crops 0.835 at all
           # scales but existence 0.905 and pointing 0.21 vs 0.084 (README "Embedded model" (8))
           "vision-distinct": TrainConfig().more_crops().grown_existence(per_map=8).reuse_scenes(2, skip=("vision",)),
           "cut-bf16": replace(TrainConfig().more_crops().grown_existence(per_map=8).with_steps(
               vision=1300, tune_crops=450, tune=1100, exist_crops=600, tune_joint=450), mixed_precision=True),
           "full-bf16": replace(TrainConfig().more_crops().grown_existence(), mixed_precision=True),
           "default-fp32": TrainConfig().more_crops().grown_existence(),
           "grown-heads": TrainConfig().grown_existence(), "four-stage": TrainConfig(),
           "existence-first": TrainConfig().existence_first(),
           # README "Embedded model": heads 2-3 freed for tuning; 800 tuning steps is what was measured
           "existence-release": TrainConfig().existence_first(release=2, tune=800),
           # the default's stages cut to ~107 min on 2 CPU cores by its measured per-step seconds (vision
           # 2.6, align 2.35, tune-crops 2.3, tune 2.35, exist-symbolic 2.0, exist-crops 3.0, tune-joint 3.0);
           # measured (README "Embedded model"): existence stays at chance and shape reading halves
           "two-hour": TrainConfig().more_crops().grown_existence().with_steps(
               vision=800, align=300, tune_crops=250, tune=450, exist_symbolic=250, exist_crops=300, tune_joint=200),
           # the default's updates with half the scenes and sequences each (TrainConfig.smaller_batches());
           # measured on 2 cores: vision 25 min instead of ~65, but per-patch shape on held-out crops 0.54 vs 0.79
           "half-batch": TrainConfig().more_crops().grown_existence().smaller_batches()}
RECIPES["default"] = RECIPES["full-bf16"]
# the default recipe on varied scenes (scene_styles: natural and saturated backgrounds, distractors,
# object styles) and with every method's prompts in its questions: the candidate whose finding should
# transfer to scenes of another renderer (check with focus-scenes --renderer eval)
RECIPES["transfer"] = replace(RECIPES["default"], scene_style="varied", method_prompts=True)


# ----------------------------------------------------------------------------- model building
def _method_prompt_lines() -> list[str]:
    """The baselines' prompts with the vocabulary filled in (ZoomEye's three Yes/No questions in
    its three phrasings, its per-target question, ViCrop's instruction)."""
    lines = []
    for c in COLORS:
        target = f"{c} object"
        question = TEMPLATES["shape"].format(color=c)
        for prompts in (LOCAL_PROMPTS, GLOBAL_PROMPTS, ZOOM_PROMPTS):
            lines += [prompts["existence"].format(target) + " ASSISTANT: Yes",
                      prompts["latent"].format(target) + " ASSISTANT: No",
                      prompts["answering"].format(question) + " ASSISTANT: Yes"]
        lines += [DECOMPOSED_QUESTION.format(target) + " ASSISTANT: star",
                  f"{question} {VICROP_INSTRUCTION} ASSISTANT: circle"]
    return lines


def _task_corpus(method_prompts: bool = False) -> list[str]:
    """Texts of every prompt and answer the model is trained on (so BPE gives the vocabulary
    words single tokens); with ``method_prompts`` the baselines' prompts too."""
    lines = _method_prompt_lines() if method_prompts else []
    for c in COLORS:
        for s in SHAPES:
            lines += [TEMPLATES["shape"].format(color=c) + f" ASSISTANT: {s}",
                      TEMPLATES["exists"].format(color=c) + " ASSISTANT: Yes",
                      TEMPLATES["color"].format(shape=s) + f" ASSISTANT: {c}",
                      f"Is there a {s} in the image? Answer the question using a single word. ASSISTANT: No",
                      f"{ANSWER_LEAD} {c} object and {s}. none none none"]
    lines += [" ".join(str(i) for i in range(10))] * 20 + ["none nothing none"] * 20
    return lines


def build_image_processor(shape: ModelShape = ModelShape()):
    """The CLIP image processor of the embedded model (resize + centre crop to ``shape.image_size``)."""
    import transformers

    return transformers.CLIPImageProcessor(
        size={"shortest_edge": shape.image_size}, crop_size={"height": shape.image_size, "width": shape.image_size},
        do_resize=True, do_center_crop=True, do_rescale=True, do_normalize=True, do_convert_rgb=True, resample=3)


def build_processor_and_tokenizer(shape: ModelShape = ModelShape(), method_prompts: bool = False):
    """The embedded model's ``LlavaProcessor`` (CLIP image processor at ``shape.image_size``); its
    tokenizer learns the baselines' prompts too with ``method_prompts`` (TrainConfig)."""
    import transformers

    tokenizer = _train_tokenizer("llava", extra_corpus=_task_corpus(method_prompts))
    words = [" " + w for w in (*COLORS, *SHAPES, "none", "left", "right", "object", "Yes", "No")]
    split = [w for w in words if len(tokenizer.encode(w, add_special_tokens=False)) != 1]
    if split:
        raise RuntimeError(f"tokenizer splits vocabulary words {split}")
    processor = transformers.LlavaProcessor(
        image_processor=build_image_processor(shape), tokenizer=tokenizer, patch_size=shape.patch_size,
        vision_feature_select_strategy="default", image_token="<image>", num_additional_image_tokens=1,
        chat_template=_LLAVA_CHAT_TEMPLATE)
    return processor, tokenizer


def build_model(tokenizer, shape: ModelShape, seed: int):
    """A freshly initialised ``LlavaForConditionalGeneration`` of ``shape`` (float32)."""
    import transformers

    vision = transformers.CLIPVisionConfig(
        image_size=shape.image_size, patch_size=shape.patch_size, hidden_size=shape.vision_hidden,
        intermediate_size=4 * shape.vision_hidden, num_hidden_layers=shape.vision_layers,
        num_attention_heads=shape.vision_heads, projection_dim=shape.vision_hidden)
    text = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=shape.text_hidden, intermediate_size=shape.text_mlp,
        num_hidden_layers=shape.text_layers, num_attention_heads=shape.text_heads,
        num_key_value_heads=shape.text_heads, max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=False)
    config = transformers.LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=shape.grid ** 2, vision_feature_layer=-1, vision_feature_select_strategy="default",
        projector_hidden_act="gelu", pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.LlavaForConditionalGeneration(config).to(torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def _head_dim(text_config) -> int:
    return getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads


def grow_heads(model, n: int, seed: int) -> None:
    """Append ``n`` attention heads to every LM layer (query/key/value rows drawn like a fresh
    Llama's, output-projection columns zero): the model computes exactly what it did before, and
    the new heads are capacity for a task the trained heads cannot take on without losing the
    ones they serve (README "Embedded model": existence vs shape in 4 heads)."""
    text = model.config.text_config
    if text.hidden_size % (text.num_attention_heads + n):
        # transformers' LlamaConfig validation refuses such a config when the model is loaded again
        raise ValueError(f"{text.num_attention_heads} + {n} heads do not divide hidden size {text.hidden_size}")
    head_dim, extra = _head_dim(text), n * _head_dim(text)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.model.language_model.layers:
            attn = layer.self_attn
            for name in ("q_proj", "k_proj", "v_proj"):
                old = getattr(attn, name)
                new = torch.nn.Linear(old.in_features, old.out_features + extra, bias=old.bias is not None)
                new.weight[:old.out_features] = old.weight
                new.weight[old.out_features:] = torch.randn(extra, old.in_features, generator=gen) * \
                    text.initializer_range
                if old.bias is not None:
                    new.bias.zero_()
                    new.bias[:old.out_features] = old.bias
                setattr(attn, name, new.to(old.weight))
            old = attn.o_proj
            new = torch.nn.Linear(old.in_features + extra, old.out_features, bias=old.bias is not None)
            new.weight.zero_()
            new.weight[:, :old.in_features] = old.weight
            if old.bias is not None:
                new.bias[:] = old.bias
            attn.o_proj = new.to(old.weight)
    text.head_dim = head_dim
    text.num_attention_heads += n
    text.num_key_value_heads += n


def init_matching_attention(model, gain: float, max_distance: int, seed: int, heads: int = 0,
                            first: int = 0) -> None:
    """Give ``heads`` heads of LM layer 0 from head ``first`` on (0: every head) the same query and key
    projection onto the rotary dimensions that turn by less than half a radian over
    ``max_distance`` tokens (random orthonormal rows, scaled by ``gain``): a token then attends to
    the earlier tokens whose embedding matches its own, wherever they are. An initialisation (an
    induction-style prior); training moves it freely. The other heads keep their random start."""
    text = model.config.text_config
    head_dim = _head_dim(text)
    theta = float((getattr(text, "rope_parameters", None) or {}).get("rope_theta", 10000.0))
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    slow = [int(i) for i in torch.nonzero(inv_freq * max_distance < 0.5).flatten()]
    if not slow:
        raise ValueError(f"no rotary dimension is slow over {max_distance} tokens (theta {theta})")
    dims = slow + [i + head_dim // 2 for i in slow]               # rotate_half pairs i with i + d/2
    attn = model.model.language_model.layers[0].self_attn
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for h in range(first, first + (heads or text.num_attention_heads - first)):
            rows = torch.linalg.qr(torch.randn(text.hidden_size, len(dims), generator=gen))[0].T * gain
            idx = [h * head_dim + d for d in dims]
            attn.q_proj.weight[idx] = rows.to(attn.q_proj.weight)
            attn.k_proj.weight[idx] = rows.to(attn.k_proj.weight)


def release_matching_heads(model, random_start, n: int) -> None:
    """Give the last ``n`` heads of LM layer 0 the query and key projections of ``random_start``
    (the same architecture freshly built with the recipe's seed): heads that carried the matching
    initialisation through the symbolic stage become free for the tasks that need other patterns
    (shape reading was at chance after the symbolic stage while every head matched)."""
    attn = model.model.language_model.layers[0].self_attn
    fresh = random_start.model.language_model.layers[0].self_attn
    text = model.config.text_config
    head_dim = _head_dim(text)
    rows = slice((text.num_attention_heads - n) * head_dim, text.num_attention_heads * head_dim)
    with torch.no_grad():
        attn.q_proj.weight[rows] = fresh.q_proj.weight[rows].to(attn.q_proj.weight)
        attn.k_proj.weight[rows] = fresh.k_proj.weight[rows].to(attn.k_proj.weight)


def parts(model) -> dict[str, torch.nn.Module]:
    """The model's trainable parts by role (transformers 5 layout)."""
    inner = model.model
    return {"vision": inner.vision_tower, "projector": inner.multi_modal_projector,
            "embed": inner.language_model.embed_tokens, "lm": inner.language_model, "head": model.lm_head}


def vision_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """Patch features the projector reads (``vision_feature_layer=-1``, CLS dropped): [B, N, C]."""
    out = model.model.vision_tower(pixel_values, output_hidden_states=True)
    return out.hidden_states[-1][:, 1:]


@torch.no_grad()
def vision_shape_reads(model, heads: "Heads", image_processor, shape: ModelShape, scenes: Sequence[Scene],
                       device) -> list[tuple[str, bool]]:
    """The vision tower's own reading of the shape gate's windows (embedded_eval.shape_windows, in
    their order): (scale, whether the stage-1 shape head's majority over the target's patches names
    its shape). Next to the LM's answers on the same windows (embedded_eval.shape_answers) it says
    whether a shape the LM misses was in the image tokens at all."""
    reads = []
    for scene, obj, scale, _, box in shape_windows(scenes):
        image = crop(scene.image, box)
        region = (int(box.x0), int(box.y0), int(box.x0) + image.shape[1], int(box.y0) + image.shape[0])
        mine = [v for v in view_objects(scene, region, shape.image_size) if v.obj is obj]
        pixels = image_processor(images=np.ascontiguousarray(image), return_tensors="pt")["pixel_values"]
        pred = heads.shape(vision_features(model, pixels.to(device)))[0].argmax(-1).cpu().numpy()
        ok = False
        for _, mask in object_masks(mine, shape.grid, shape.patch_size):
            votes = np.bincount(pred[mask.flatten()], minlength=len(SHAPE_CLASSES))
            votes[0] = 0                                   # background votes say nothing about the shape
            ok = bool(votes.max() > 0 and SHAPE_CLASSES[int(votes.argmax())] == obj.shape)
        reads.append((scale, ok))
    return reads


def vision_shape_by_scale(model, heads: "Heads", image_processor, shape: ModelShape, scenes: Sequence[Scene],
                          device) -> dict[str, float]:
    """:func:`vision_shape_reads` as an accuracy per scale ("1/8" .. "1/2")."""
    hits: dict[str, list[bool]] = {}
    for scale, ok in vision_shape_reads(model, heads, image_processor, shape, scenes, device):
        hits.setdefault(scale, []).append(ok)
    return {k: round(float(np.mean(v)), 4) for k, v in hits.items()}


# ----------------------------------------------------------------------------- data
@dataclass
class ViewObject:
    obj: SceneObject
    box: tuple[float, float, float, float]     # in view pixels
    visible: float                             # fraction of the object's box inside the view
    size: float                                # longer side in view pixels


@dataclass
class View:
    region: tuple[int, int, int, int]          # source pixels, x1/y1 exclusive
    is_frame: bool
    objects: list[ViewObject]


def _fill(image_processor) -> tuple[int, int, int]:
    """The padding colour LlavaAdapter uses: the image processor's mean."""
    return tuple(int(round(255 * m)) for m in image_processor.image_mean[:3])


def render_view(image: np.ndarray, region: tuple[int, int, int, int], fill: tuple[int, int, int],
                max_side: int) -> tuple[np.ndarray, float, int, int]:
    """The region padded to a square as LLaVA does, pre-shrunk (area) to at most ``max_side``.

    Returns (square image, square side before shrinking, pad x, pad y)."""
    x0, y0, x1, y1 = region
    sub = image[y0:y1, x0:x1]
    h, w = sub.shape[:2]
    side = max(h, w)
    px, py = (side - w) // 2, (side - h) // 2
    sq = np.ascontiguousarray(expand_to_square(sub, fill))     # the adapter's padding, exactly
    if side > max_side:
        sq = cv2.resize(sq, (max_side, max_side), interpolation=cv2.INTER_AREA)
    return sq, side, px, py


def view_objects(scene: Scene, region: tuple[int, int, int, int], image_size: int) -> list[ViewObject]:
    """Objects that intersect ``region``, in the coordinates of its ``image_size`` view."""
    x0, y0, x1, y1 = region
    w, h = x1 - x0, y1 - y0
    side = max(w, h)
    s = image_size / side
    px, py = (side - w) // 2, (side - h) // 2
    out = []
    for o in scene.objects:
        bx0, by0, bx1, by1 = o.box
        ix = max(0, min(bx1, x1) - max(bx0, x0))
        iy = max(0, min(by1, y1) - max(by0, y0))
        if ix <= 0 or iy <= 0:
            continue
        vis = ix * iy / max(1, (bx1 - bx0) * (by1 - by0))
        vb = ((bx0 - x0 + px) * s, (by0 - y0 + py) * s, (bx1 - x0 + px) * s, (by1 - y0 + py) * s)
        out.append(ViewObject(o, vb, vis, max(bx1 - bx0, by1 - by0) * s))
    return out


def object_masks(objects: Sequence[ViewObject], grid: int, patch: int) -> Iterator[tuple[ViewObject, np.ndarray]]:
    """Each object in view with its patches ([grid, grid] bool): those its box covers a quarter
    of, plus the one holding its centre; largest first, so a label written per object in this
    order lets small objects win overlaps."""
    edges = np.arange(grid + 1) * patch
    for vo in sorted(objects, key=lambda v: -v.size):
        x0, y0, x1, y1 = vo.box
        ox = np.clip(np.minimum(x1, edges[1:]) - np.maximum(x0, edges[:-1]), 0, None)
        oy = np.clip(np.minimum(y1, edges[1:]) - np.maximum(y0, edges[:-1]), 0, None)
        mask = np.outer(oy, ox) / float(patch * patch) >= 0.25
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        ci, cj = int(cy // patch), int(cx // patch)
        if 0 <= ci < grid and 0 <= cj < grid:
            mask[ci, cj] = True
        if mask.any():
            yield vo, mask


def patch_targets(objects: Sequence[ViewObject], grid: int, patch: int,
                  legible_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-patch colour class, shape class and object patch count ([grid, grid] int64 each) from
    one pass of :func:`object_masks` (small objects win overlaps). Shape is labelled only for
    objects fully in view and at least ``legible_px`` big; elsewhere on objects it is ignored
    (IGNORE), on background it is ``none``. The count is how many patches the object labelled
    there covers (0 on background): what :func:`vision_loss` needs to weigh each object rather
    than each patch."""
    color = np.zeros((grid, grid), np.int64)
    shape = np.zeros((grid, grid), np.int64)
    cells = np.zeros((grid, grid), np.int64)
    for vo, mask in object_masks(objects, grid, patch):
        color[mask] = COLOR_CLASSES.index(vo.obj.color)
        legible = vo.visible >= 0.999 and vo.size >= legible_px
        shape[mask] = SHAPE_CLASSES.index(vo.obj.shape) if legible else IGNORE
        cells[mask] = int(mask.sum())
    return color, shape, cells


def _object_crop(rng: np.random.Generator, scene: Scene, obj: SceneObject, scale: float,
                 aspect: float) -> tuple[int, int, int, int]:
    """A window ``scale`` times the object's size containing it at a random offset."""
    W, H = scene.width, scene.height
    bx0, by0, bx1, by1 = obj.box
    size = max(bx1 - bx0, by1 - by0)
    cw = int(min(W, max(bx1 - bx0 + 2, size * scale * math.sqrt(aspect))))
    ch = int(min(H, max(by1 - by0 + 2, size * scale / math.sqrt(aspect))))
    lo_x, hi_x = max(0, bx1 - cw), min(bx0, W - cw)
    lo_y, hi_y = max(0, by1 - ch), min(by0, H - ch)
    x0 = int(rng.integers(lo_x, hi_x + 1)) if hi_x >= lo_x else max(0, min(W - cw, bx0))
    y0 = int(rng.integers(lo_y, hi_y + 1)) if hi_y >= lo_y else max(0, min(H - ch, by0))
    return (x0, y0, x0 + cw, y0 + ch)


def _random_crop(rng: np.random.Generator, scene: Scene) -> tuple[int, int, int, int]:
    W, H = scene.width, scene.height
    short = min(W, H)
    side = int(short * float(np.exp(rng.uniform(math.log(0.04), math.log(0.6)))))
    aspect = float(np.exp(rng.uniform(-0.5, 0.5)))
    cw, ch = min(W, max(8, int(side * math.sqrt(aspect)))), min(H, max(8, int(side / math.sqrt(aspect))))
    x0, y0 = int(rng.integers(0, W - cw + 1)), int(rng.integers(0, H - ch + 1))
    return (x0, y0, x0 + cw, y0 + ch)


def sample_views(rng: np.random.Generator, scene: Scene, n_crops: int, frames: bool, cfg: TrainConfig) -> list[View]:
    """The full frame (optionally) plus crops: mostly around an object at 2-10x its size and a
    random offset (the windows cropping methods propose), some anywhere (negatives)."""
    size = cfg.shape.image_size
    regions: list[tuple[tuple[int, int, int, int], bool]] = []
    if frames:
        regions.append(((0, 0, scene.width, scene.height), True))
    lo, hi = cfg.crop_scale
    for _ in range(n_crops):
        if rng.random() < 0.75:
            obj = scene.objects[int(rng.integers(len(scene.objects)))]
            scale = float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
            aspect = 1.0 if rng.random() < 0.7 else float(np.exp(rng.uniform(-0.6, 0.6)))
            regions.append((_object_crop(rng, scene, obj, scale, aspect), False))
        else:
            regions.append((_random_crop(rng, scene), False))
    return [View(r, f, view_objects(scene, r, size)) for r, f in regions]


def _counts(scene: Scene) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in scene.objects:
        out[o.color] = out.get(o.color, 0) + 1
    return out


def existence_prompt(phrase: str) -> str:
    """The existence question FOCUS asks (LlavaAdapter.existence_text without the assistant tag)."""
    return f"Is there a {phrase} in the image? Answer the question using a single word."


def existence_phrasing(rng: np.random.Generator):
    """How a colour's existence is asked: FOCUS's own prompt 3 times in 4, else the benchmark's
    question (one ``rng`` draw); returns ``colour -> question``."""
    if rng.random() < 0.75:
        return lambda c: existence_prompt(f"{c} object")
    return lambda c: TEMPLATES["exists"].format(color=c)


def _pick(rng: np.random.Generator, seq):
    """One element of ``seq``, one ``rng`` draw."""
    return seq[int(rng.integers(len(seq)))]


def view_questions(rng: np.random.Generator, scene: Scene, view: View, cfg: TrainConfig,
                   tasks: Sequence[str]) -> list[tuple[str, str, str]]:
    """(kind, question, answer) pairs the view answers unambiguously."""
    counts = _counts(scene)
    seen = [v for v in view.objects if v.size >= cfg.visible_px and v.visible >= 0.5]
    faint = {v.obj.color for v in view.objects if not (v.size >= cfg.visible_px and v.visible >= 0.5)}
    present = sorted({v.obj.color for v in seen} - faint)
    absent = [c for c in COLORS if c not in {v.obj.color for v in view.objects}]
    elsewhere = [c for c in absent if c in counts]          # in the scene, not in this view: hard negatives
    legible = [v for v in seen if v.visible >= 0.999 and v.size >= cfg.legible_px]
    all_legible = bool(view.objects) and all(v.visible >= 0.999 and v.size >= cfg.legible_px for v in view.objects)
    out: list[tuple[str, str, str]] = []

    def pick(seq):
        return _pick(rng, seq)

    if "exists" in tasks:
        phrase_q = existence_phrasing(rng)
        if present:
            out.append(("exists", phrase_q(pick(present)), "Yes"))
        if absent:
            neg = pick(elsewhere) if elsewhere and rng.random() < 0.6 else pick(absent)
            out.append(("exists", phrase_q(neg), "No"))
        if all_legible or not view.objects:
            shapes_in = {v.obj.shape for v in view.objects}
            if shapes_in:
                out.append(("exists_shape", existence_prompt(pick(sorted(shapes_in))), "Yes"))
            out.append(("exists_shape", existence_prompt(pick([s for s in SHAPES if s not in shapes_in])), "No"))
    unique = [v for v in legible if counts[v.obj.color] == 1]
    if "shape" in tasks and unique:
        v = pick(unique)
        out.append(("shape", TEMPLATES["shape"].format(color=v.obj.color), v.obj.shape))
    if "color" in tasks and all_legible:
        shape_n: dict[str, int] = {}
        for v in view.objects:
            shape_n[v.obj.shape] = shape_n.get(v.obj.shape, 0) + 1
        once = [v for v in view.objects if shape_n[v.obj.shape] == 1]
        if once:
            v = pick(once)
            out.append(("color", TEMPLATES["color"].format(shape=v.obj.shape), v.obj.color))
    if "relation" in tasks:
        uniq_seen = [v for v in seen if counts[v.obj.color] == 1 and v.visible >= 0.999]
        pairs = [(a, b) for a in uniq_seen for b in uniq_seen
                 if a is not b and (a.box[2] <= b.box[0] or b.box[2] <= a.box[0])]
        if pairs:
            a, b = pick(pairs)
            side = "left" if a.box[0] < b.box[0] else "right"
            out.append(("relation", TEMPLATES["relation"].format(color=a.obj.color, other=b.obj.color), side))
    if cfg.method_prompts:
        out += method_questions(rng, view, present, absent, unique, legible, tasks)
    if "count" in tasks:
        for c in present:
            inst = [v for v in view.objects if v.obj.color == c]
            if counts[c] > 1 or rng.random() < 0.3:
                if all(v.visible >= 0.999 and v.size >= cfg.visible_px for v in inst) and len(inst) == counts[c]:
                    out.append(("count", TEMPLATES["count"].format(color=c), str(len(inst))))
                    break
    return out


def method_questions(rng: np.random.Generator, view: View, present: Sequence[str], absent: Sequence[str],
                     unique: Sequence["ViewObject"], legible: Sequence["ViewObject"],
                     tasks: Sequence[str]) -> list[tuple[str, str, str]]:
    """The baselines' prompts about a view, answered from what it shows: ZoomEye's existence
    ("Is there a {c} object ...?", in its image / zoomed-in-view phrasings), latent ("is it
    possible to find it by zooming further": Yes while any {c} object is in the view, however
    small), answering ("Could you answer {shape question}?": Yes when the object is legible here,
    No when it is absent or too small to read) and per-target ("What is the appearance of the
    {c} object?" -> its shape); and the shape question with ViCrop's answer instruction."""
    out: list[tuple[str, str, str]] = []

    def pick(seq):
        return _pick(rng, seq)

    phrasing = pick((LOCAL_PROMPTS, GLOBAL_PROMPTS, ZOOM_PROMPTS))
    in_view = sorted({v.obj.color for v in view.objects})
    if "exists" in tasks:
        if present:
            out.append(("zoom_exists", phrasing["existence"].format(f"{pick(present)} object"), "Yes"))
        if absent:
            out.append(("zoom_exists", phrasing["existence"].format(f"{pick(absent)} object"), "No"))
        if in_view and rng.random() < 0.5:
            out.append(("zoom_latent", phrasing["latent"].format(f"{pick(in_view)} object"), "Yes"))
        elif absent:
            out.append(("zoom_latent", phrasing["latent"].format(f"{pick(absent)} object"), "No"))
    if "shape" in tasks:
        readable = sorted({v.obj.color for v in unique})
        # absent here, or here but too small to read (a colour with a legible instance is neither)
        unreadable = sorted(set(absent) | (set(in_view) - {v.obj.color for v in legible}))
        if readable and rng.random() < 0.5:
            c = pick(readable)
            out.append(("zoom_answer", phrasing["answering"].format(TEMPLATES["shape"].format(color=c)), "Yes"))
        elif unreadable:
            c = pick(unreadable)
            out.append(("zoom_answer", phrasing["answering"].format(TEMPLATES["shape"].format(color=c)), "No"))
        if unique:
            v = pick(unique)
            if rng.random() < 0.5:
                out.append(("shape", DECOMPOSED_QUESTION.format(f"{v.obj.color} object"), v.obj.shape))
            else:
                q = f"{TEMPLATES['shape'].format(color=v.obj.color)} {VICROP_INSTRUCTION}"
                out.append(("shape", q, v.obj.shape))
    return out


def extraction_sample(rng: np.random.Generator) -> tuple[str, str]:
    """(prompt text, continuation) of the target-extraction task for a random scene question."""
    colors, shapes = list(COLORS), list(SHAPES)
    c, o = rng.choice(colors, 2, replace=False)
    s = str(rng.choice(shapes))
    kind = str(rng.choice(list(TEMPLATES)))
    q = TEMPLATES[kind].format(color=c, other=o, shape=s)
    target = {"shape": f"{c} object", "exists": f"{c} object", "relation": f"{c} object and {o} object",
              "count": f"all {c} objects", "color": s}[kind]
    user = extraction_prompt(q).rsplit(f"\n{ANSWER_LEAD}", 1)[0]
    return f"USER: {user.strip()} ASSISTANT:{ANSWER_LEAD}", f" {target}"


class SceneSamples(torch.utils.data.Dataset):
    """Item ``i``: scene ``i`` of ``seed`` turned into views (pixels + patch labels) and questions."""

    def __init__(self, cfg: TrainConfig, stage: StageConfig, seed: int, length: int, tasks: Sequence[str]):
        self.cfg, self.stage, self.seed, self.length, self.tasks = cfg, stage, seed, length, tuple(tasks)
        self._processor = None
        self._last: Scene | None = None
        self._frame_square: np.ndarray | None = None   # the last scene's full-frame view, once rendered

    def __len__(self) -> int:
        return self.length

    def image_processor(self):
        # only the image processor: loader processes need no tokenizer (training one costs seconds)
        if self._processor is None:
            self._processor = build_image_processor(self.cfg.shape)
        return self._processor

    def scene(self, i: int) -> Scene:
        """The scene item ``i`` draws from (scene ``i // scene_reuse``); the last one is kept, since
        the batch sampler asks for consecutive items."""
        k = i // max(1, self.stage.scene_reuse)
        if self._last is None or self._last.index != k:
            self._last = make_scene(self.seed, k, SceneSpec(short_side=self.cfg.train_short_side,
                                                            style=self.cfg.scene_style))
            self._frame_square = None
        return self._last

    def _square(self, scene: Scene, region: tuple[int, int, int, int], fill: tuple[int, int, int]) -> np.ndarray:
        # items sharing a scene share its full-frame view, the costliest one to render
        full = tuple(region) == (0, 0, scene.width, scene.height)
        if full and self._frame_square is not None:
            return self._frame_square
        sq = render_view(scene.image, region, fill, 2 * self.cfg.shape.image_size)[0]
        if full:
            self._frame_square = sq
        return sq

    def __getitem__(self, i: int) -> dict:
        cfg = self.cfg
        scene = self.scene(i)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, i, 7]))
        views = sample_views(rng, scene, self.stage.crops_per_scene, self.stage.frames, cfg)
        proc = self.image_processor()
        fill = _fill(proc)
        squares = [self._square(scene, v.region, fill) for v in views]
        pixels = proc(images=squares, return_tensors="pt")["pixel_values"]
        targets = [patch_targets(v.objects, cfg.shape.grid, cfg.shape.patch_size, cfg.legible_px) for v in views]
        questions = []
        if self.tasks:
            for k, v in enumerate(views):
                for kind, q, a in view_questions(rng, scene, v, cfg, self.tasks):
                    questions.append((k, kind, q, a))
        text = [extraction_sample(rng) for _ in range(3)] if "extract" in self.tasks else []
        return {"pixels": pixels, "color": torch.from_numpy(np.stack([t[0] for t in targets])),
                "shape": torch.from_numpy(np.stack([t[1] for t in targets])),
                "cells": torch.from_numpy(np.stack([t[2] for t in targets])),
                "questions": questions, "text": text}


def collate(items: list[dict]) -> dict:
    offsets = np.cumsum([0] + [len(it["pixels"]) for it in items])
    return {"pixels": torch.cat([it["pixels"] for it in items]),
            "color": torch.cat([it["color"] for it in items]),
            "shape": torch.cat([it["shape"] for it in items]),
            "cells": torch.cat([it["cells"] for it in items]),
            "questions": [(int(offsets[n] + k), kind, q, a) for n, it in enumerate(items)
                          for k, kind, q, a in it["questions"]],
            "text": [t for it in items for t in it["text"]]}


# ----------------------------------------------------------------------------- sequences
class Sequencer:
    """Token ids exactly as the LLaVA adapter builds them at inference: the image prefix
    ``<s>USER: <image>x256\\n`` (one processor call), the question ``{q} ASSISTANT:`` tokenised on its
    own, then the answer tokens and ``</s>``."""

    def __init__(self, tokenizer, n_image_tokens: int):
        self.tok = tokenizer
        self.image_id = tokenizer.convert_tokens_to_ids("<image>")
        prefix = tokenizer("USER: <image>\n", add_special_tokens=True)["input_ids"]
        at = prefix.index(self.image_id)
        self.prefix = prefix[:at] + [self.image_id] * n_image_tokens + prefix[at + 1:]
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id

    def ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def image_qa(self, question: str, answer: str) -> tuple[list[int], int]:
        """(ids, index of the first answer token) for a question about an image."""
        body = self.prefix + self.ids(f"{question.strip()} ASSISTANT:")
        return body + self.ids(" " + answer) + [self.eos], len(body)

    def text_qa(self, prompt: str, answer: str) -> tuple[list[int], int]:
        body = self.ids(prompt)
        return body + self.ids(answer) + [self.eos], len(body)

    def pad_batch(self, seqs: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, attention mask), [len(seqs), longest]: right-padded with the pad token."""
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for n, s in enumerate(seqs):
            ids[n, :len(s)] = torch.tensor(s)
            mask[n, :len(s)] = 1
        return ids, mask


# ----------------------------------------------------------------------------- training
def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)        # loader processes draw scenes; the main process owns the cores
    cv2.setNumThreads(1)


STAGE_TASKS = {
    "vision": (),
    "align": (),
    "tune-crops": ("exists", "shape", "extract"),
    "tune": ("exists", "shape", "color", "relation", "count", "extract"),
    "exist-crops": ("exists", "shape", "extract"),
    "tune-joint": ("exists", "shape", "color", "relation", "count", "extract"),
}


class Heads(torch.nn.Module):
    """Stage-1 dense heads on the vision tower (not part of the saved model)."""

    def __init__(self, width: int):
        super().__init__()
        self.color = torch.nn.Linear(width, len(COLOR_CLASSES))
        self.shape = torch.nn.Linear(width, len(SHAPE_CLASSES))


BACKGROUND_WEIGHT = 0.2               # background patches outnumber object patches ~50:1


def _class_weights(n: int, device) -> torch.Tensor:
    w = torch.ones(n, device=device)
    w[0] = BACKGROUND_WEIGHT
    return w


def vision_loss(model, heads: Heads, batch: dict, device, object_cap: int = 0) -> tuple[torch.Tensor, dict]:
    """Per-patch colour and shape cross-entropy of the stage-1 heads (background weighted 0.2).
    With ``object_cap`` > 0 an object's patches weigh ``min(1, object_cap / its patches)`` each, so
    no object counts for more than ``object_cap`` patches: with 4, a 2 x 2-patch object weighs as
    much as an 8 x 8 one instead of 1/16 of it (TrainConfig.vision_object_cap)."""
    feats = vision_features(model, batch["pixels"].to(device))
    color, shape = batch["color"].to(device).flatten(1), batch["shape"].to(device).flatten(1)
    lc, ls = heads.color(feats).float(), heads.shape(feats).float()     # losses in float32 under autocast
    if object_cap > 0:
        cells = batch["cells"].to(device).flatten().float()
        w = torch.where(cells > 0, (object_cap / cells.clamp(min=1.0)).clamp(max=1.0),
                        torch.full_like(cells, BACKGROUND_WEIGHT))
        per_c = F.cross_entropy(lc.flatten(0, 1), color.flatten(), reduction="none")
        per_s = F.cross_entropy(ls.flatten(0, 1), shape.flatten(), ignore_index=IGNORE, reduction="none")
        ws = w * (shape.flatten() != IGNORE)
        loss_c = (per_c * w).sum() / w.sum()
        loss_s = (per_s * ws).sum() / ws.sum().clamp(min=1e-9)
    else:
        loss_c = F.cross_entropy(lc.flatten(0, 1), color.flatten(), weight=_class_weights(len(COLOR_CLASSES), device))
        loss_s = F.cross_entropy(ls.flatten(0, 1), shape.flatten(), weight=_class_weights(len(SHAPE_CLASSES), device),
                                 ignore_index=IGNORE)
    with torch.no_grad():
        obj = color > 0
        acc_c = (lc.argmax(-1) == color)[obj].float().mean().item() if obj.any() else float("nan")
        sm = shape > 0
        acc_s = (ls.argmax(-1) == shape)[sm].float().mean().item() if sm.any() else float("nan")
    return loss_c + loss_s, {"color_acc": acc_c, "shape_acc": acc_s}


def word_ids(tokenizer) -> tuple[list[int], list[int]]:
    """Token ids of ' none' + the colour words, and of the shape words (leading space: how they
    appear inside prompts)."""
    enc = lambda w: tokenizer.encode(" " + w, add_special_tokens=False)[0]   # noqa: E731
    return [enc(c) for c in COLOR_CLASSES], [enc(s) for s in SHAPES]


def align_loss(model, batch: dict, color_words: list[int], shape_words: list[int], legible_shape: bool,
               device) -> tuple[torch.Tensor, dict]:
    """Projected patches point at their colour word's embedding (background: ' none'), with the
    shape word as a secondary target on legible objects; cosine logits over the whole vocabulary
    plus a pull to the word vector's norm so image tokens enter the LM at the scale of words."""
    with torch.no_grad():
        feats = vision_features(model, batch["pixels"].to(device))
    proj = model.model.multi_modal_projector(feats)                       # [B, N, D]
    emb = model.model.language_model.embed_tokens.weight                   # frozen
    cos = (F.normalize(proj, dim=-1) @ F.normalize(emb, dim=-1).T).float() * 20.0    # [B, N, V]
    color = batch["color"].to(device).flatten(1)
    shape = batch["shape"].to(device).flatten(1)
    cw = torch.tensor(color_words, device=device)
    sw = torch.tensor([0] + shape_words, device=device)
    # cross-entropy against the soft target (colour word 1.0, or 0.7 colour + 0.3 shape word),
    # gathered instead of multiplying by a dense [B, N, V] target: the same sum, without two
    # vocabulary-wide tensors per patch
    logp = F.log_softmax(cos, -1)
    lp_color = logp.gather(-1, cw[color].unsqueeze(-1)).squeeze(-1)
    ce = -lp_color
    if legible_shape:
        has_shape = (shape > 0) & (color > 0)
        lp_shape = logp.gather(-1, sw[shape.clamp_min(0)].unsqueeze(-1)).squeeze(-1)
        ce = torch.where(has_shape, -(0.7 * lp_color + 0.3 * lp_shape), ce)
    weight = torch.where(color > 0, 1.0, 0.2)
    norm_pull = (proj.float().norm(dim=-1) - emb[cw[color]].norm(dim=-1)).pow(2)
    loss = (weight * (ce + norm_pull)).sum() / weight.sum()
    with torch.no_grad():
        pred = cos[..., cw].argmax(-1)                                      # among none + colours
        obj = color > 0
        acc_obj = (pred == color)[obj].float().mean().item() if obj.any() else float("nan")
        acc_bg = (pred == 0)[~obj].float().mean().item()
    return loss, {"word_acc_obj": acc_obj, "word_acc_bg": acc_bg}


def _answer_labels(seqs: Sequence[list[int]], starts: Sequence[int], seq: "Sequencer"):
    """(ids, attention mask, labels, first) for right-padded ``seqs`` whose answers start at
    ``starts``: position t is labelled with token t+1 inside the answer, ``first`` marks the
    position that predicts the first answer token."""
    ids, mask = seq.pad_batch(seqs)
    labels = torch.full(ids.shape, IGNORE, dtype=torch.long)
    first = torch.zeros(ids.shape, dtype=torch.bool)
    for n, (s, st) in enumerate(zip(seqs, starts)):
        labels[n, st - 1:len(s) - 1] = torch.tensor(s[st:])
        first[n, st - 1] = True
    return ids, mask, labels, first


def _shared_prefix_forward(lm, seq: "Sequencer", images: torch.Tensor, group_of: Sequence[int],
                           suffixes: Sequence[list[int]], starts: Sequence[int], device):
    """(last hidden states, labels, first) of the LM on sequences ``prefix(images[group_of[i]]) +
    suffixes[i]``: the image prefix ``<s>USER: <image>xN\n`` with ``images`` [G, N, D] in its slots
    runs once per group, and every suffix continues from its group's key/value cache at the
    positions after the prefix. The LM is causal, so this is the whole sequences' forward (the
    prefix's states do not depend on what follows) at the cost of the prefix once per group.
    ``starts`` index each suffix's first answer token; the outputs cover the suffixes only."""
    from transformers import DynamicCache

    embed, n_prefix = lm.embed_tokens, len(seq.prefix)
    prefix = torch.tensor([seq.prefix], device=device).expand(len(images), -1)
    x = embed(prefix).masked_scatter((prefix == seq.image_id)[..., None], images.to(embed.weight.dtype))
    cache = lm(inputs_embeds=x, use_cache=True).cache
    pick = torch.tensor(list(group_of), device=device)
    shared = DynamicCache(ddp_cache_data=[(layer.keys.index_select(0, pick), layer.values.index_select(0, pick))
                                          for layer in cache.layers])
    ids, mask, labels, first = _answer_labels(suffixes, starts, seq)
    ids, mask = ids.to(device), mask.to(device)
    full_mask = torch.cat([torch.ones(len(ids), n_prefix, dtype=mask.dtype, device=device), mask], 1)
    positions = torch.arange(n_prefix, n_prefix + ids.shape[1], device=device).expand(len(ids), -1)
    hidden = lm(inputs_embeds=embed(ids), attention_mask=full_mask, position_ids=positions,
                cache=shared, use_cache=False).last_hidden_state
    return hidden, labels.to(device), first.to(device)


def lm_loss(model, batch: dict, seq: Sequencer, device, max_sequences: int,
            rng: np.random.Generator, symbolic: float = 0.0,
            color_words: Sequence[int] = ()) -> tuple[torch.Tensor, dict]:
    """Answer-token cross-entropy of the LM on the batch's questions; image features are computed
    once per view (vision tower and projector are frozen) and scattered into the image slots. With
    ``symbolic`` > 0 that share of the colour-existence questions sees, in the image slots, the word
    embeddings of its view's patch colour labels instead (' none' for background).

    The image prefix ``<s>USER: <image>x256\\n`` is run through the LM once per (view, symbolic)
    and its key/value cache is shared by every question about that view: the LM is causal, so the
    prefix's states do not depend on the question, and the loss and its gradients are those of the
    full sequences (a test checks them against the model's own forward) at about a third of the
    tokens (the questions are ~20 tokens after a 258-token prefix)."""
    qs = batch["questions"]
    texts = batch["text"]
    if len(qs) + len(texts) > max_sequences:
        keep_t = texts[: max(1, max_sequences // 6)] if texts else []
        n_q = max_sequences - len(keep_t)
        idx = rng.choice(len(qs), size=min(n_q, len(qs)), replace=False) if qs else []
        qs, texts = [qs[int(i)] for i in sorted(idx)], keep_t
    if not qs and not texts:
        return torch.zeros((), device=device, requires_grad=True), {}
    lm, embed = model.model.language_model, model.model.language_model.embed_tokens
    n_prefix = len(seq.prefix)
    groups: dict[tuple[int, bool], int] = {}
    suffixes, starts, group_of, kinds = [], [], [], []
    for v, kind, q, a in qs:
        ids, st = seq.image_qa(q, a)
        sym = bool(symbolic > 0 and kind == "exists" and rng.random() < symbolic)
        group_of.append(groups.setdefault((v, sym), len(groups)))
        suffixes.append(ids[n_prefix:]), starts.append(st - n_prefix)
        kinds.append("exists_symbolic" if sym else kind)
    parts = []                                    # (hidden, labels, first) per forward
    if qs:
        keys = list(groups)
        used = sorted({v for v, sym in keys if not sym})
        row = {v: k for k, v in enumerate(used)}
        feats = None
        if used:
            with torch.no_grad():
                feats = model.model.multi_modal_projector(vision_features(model, batch["pixels"][used].to(device)))
        words = torch.tensor(list(color_words), device=device) if symbolic > 0 else None
        images = torch.stack([embed.weight[words[batch["color"][v].to(device).flatten()]].detach() if sym
                              else feats[row[v]] for v, sym in keys])                      # [G, N, D]
        parts.append(_shared_prefix_forward(lm, seq, images, group_of, suffixes, starts, device))
    if texts:
        seqs_t, starts_t = zip(*(seq.text_qa(p, a) for p, a in texts))
        ids, mask, labels, first = _answer_labels(seqs_t, starts_t, seq)
        hidden = lm(inputs_embeds=embed(ids.to(device)), attention_mask=mask.to(device)).last_hidden_state
        parts.append((hidden, labels.to(device), first.to(device)))
        kinds += ["extract"] * len(texts)
    sels = [lab != IGNORE for _, lab, _ in parts]
    logits = model.lm_head(torch.cat([h[s] for (h, _, _), s in zip(parts, sels)])).float()
    target = torch.cat([lab[s] for (_, lab, _), s in zip(parts, sels)])
    loss = F.cross_entropy(logits, target)
    stats = {}
    with torch.no_grad():
        correct = (logits.argmax(-1) == target)
        first_sel = torch.cat([f[s] for (_, _, f), s in zip(parts, sels)])
        fc = correct[first_sel].cpu().numpy()      # one entry per sequence, in kinds' order
        kinds_arr = np.array(kinds)
        for kind in sorted(set(kinds)):
            m = kinds_arr == kind
            stats[f"acc_{kind}"] = float(fc[m].mean())
    return loss, stats


def symbolic_label_map(rng: np.random.Generator, grid: int) -> np.ndarray:
    """A [grid, grid] colour-class map like a view's patch labels: 0-5 square objects of 1-4 cells
    in random vocabulary colours on background (0)."""
    m = np.zeros((grid, grid), np.int64)
    for _ in range(int(rng.integers(0, 6))):
        side = int(rng.integers(1, 5))
        y, x = rng.integers(0, grid - side + 1, size=2)
        m[y:y + side, x:x + side] = int(rng.integers(1, len(COLOR_CLASSES)))
    return m


def symbolic_questions(rng: np.random.Generator, seq: Sequencer, n: int, grid: int, per_map: int = 1):
    """``n`` existence questions (balanced, each drawn on its own) about random symbolic label maps,
    ``per_map`` per map: (maps [M, grid, grid], map index per question, token ids of each question up
    to and including its Yes/No answer token, index of that token)."""
    colors = list(COLOR_CLASSES[1:])
    maps, group_of, seqs, starts = [], [], [], []
    for i in range(n):
        if i % per_map == 0:
            m = symbolic_label_map(rng, grid)
            maps.append(m)
            present = sorted(set(int(c) for c in m.flatten()) - {0})
            absent = [k for k in range(1, len(COLOR_CLASSES)) if k not in present]
        yes = bool(present) and (not absent or rng.random() < 0.5)
        c = colors[(present if yes else absent)[int(rng.integers(len(present if yes else absent)))] - 1]
        ids, st = seq.image_qa(existence_phrasing(rng)(c), "Yes" if yes else "No")
        group_of.append(len(maps) - 1), seqs.append(ids[:st + 1]), starts.append(st)
    return np.stack(maps), group_of, seqs, starts


def symbolic_loss(model, seq: Sequencer, device, n: int, rng: np.random.Generator,
                  color_words: Sequence[int], grid: int, per_map: int = 1) -> tuple[torch.Tensor, dict]:
    """Existence questions (balanced) about symbolic views: the image slots hold the word
    embeddings of a random label map (' none' for background), i.e. what a perfect alignment
    gives. Cross-entropy of the Yes/No answer token. ``per_map`` questions ask about one map and
    share its image prefix (:func:`_shared_prefix_forward`): ``n`` questions cost ``n / per_map``
    prefixes."""
    maps, group_of, seqs, starts = symbolic_questions(rng, seq, n, grid, per_map)
    n_prefix = len(seq.prefix)
    lm = model.model.language_model
    words = torch.tensor(list(color_words), device=device)
    images = lm.embed_tokens.weight[words[torch.from_numpy(maps).to(device).flatten(1)]].detach()
    hidden, target, first = _shared_prefix_forward(lm, seq, images, group_of, [s[n_prefix:] for s in seqs],
                                                   [st - n_prefix for st in starts], device)
    logits = model.lm_head(hidden[first]).float()     # the Yes/No token: the last of each sequence
    target = target[first]
    loss = F.cross_entropy(logits, target)
    return loss, {"acc_exists_symbolic": float((logits.argmax(-1) == target).float().mean())}


def layer0_attention(model, x: torch.Tensor) -> torch.Tensor:
    """LM layer 0's causal attention weights [heads, L, L] for input embeddings ``x`` [1, L, D],
    computed from its query/key projections and rotary embedding (the model is never asked for
    attention weights: only the attention-crop baseline does that)."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    lm = model.model.language_model
    attn, length = lm.layers[0].self_attn, x.shape[1]
    head_dim = _head_dim(model.config.text_config)
    h = lm.layers[0].input_layernorm(x)
    q = attn.q_proj(h).view(1, length, -1, head_dim).transpose(1, 2)
    k = attn.k_proj(h).view(1, length, -1, head_dim).transpose(1, 2)
    cos, sin = lm.rotary_emb(h, torch.arange(length, device=x.device)[None])
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    scores = (q @ k.transpose(-1, -2)) * head_dim ** -0.5
    causal = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
    return scores.masked_fill(causal, float("-inf")).softmax(-1)[0]


@torch.no_grad()
def matching_attention_share(model, cfg: TrainConfig, scenes: int = 12) -> dict[str, np.ndarray]:
    """Per head of LM layer 0: the share of the asked colour word's attention that lands on the
    image slots holding that colour, in FOCUS's existence prompt on crops of held-out scenes; with
    the slots holding the patch labels' word embeddings ("symbolic", what perfect alignment gives)
    and the projected vision features ("real"). A diagnostic of why existence does or does not
    carry over from symbolic to real views (README "Embedded model"); it trains nothing."""
    _, tok = build_processor_and_tokenizer(cfg.shape, cfg.method_prompts)
    seq = Sequencer(tok, cfg.shape.grid ** 2)
    colour_words, _ = word_ids(tok)
    words = torch.tensor(colour_words)
    lm = model.model.language_model
    stage = StageConfig("tune-crops", steps=1, lr=0.0, scenes_per_step=1, crops_per_scene=6, frames=False)
    data = SceneSamples(cfg, stage, cfg.heldout_seed, scenes, ("exists",))
    shares: dict[str, list[np.ndarray]] = {"symbolic": [], "real": []}
    for i in range(scenes):
        batch = collate([data[i]])
        feats = model.model.multi_modal_projector(vision_features(model, batch["pixels"]))
        for v in range(batch["pixels"].shape[0]):
            labels = batch["color"][v].flatten()
            for c in sorted(set(int(k) for k in labels) - {0}):
                ids = torch.tensor([seq.image_qa(existence_prompt(f"{COLOR_CLASSES[c]} object"), "Yes")[0]])
                slots = torch.nonzero(ids[0] == seq.image_id).flatten()
                word = int(torch.nonzero(ids[0] == words[c]).flatten()[0])
                for kind in shares:
                    x = lm.embed_tokens(ids).clone()
                    x[0, slots] = lm.embed_tokens.weight[words[labels]] if kind == "symbolic" else feats[v]
                    att = layer0_attention(model, x)
                    shares[kind].append(att[:, word, slots[labels == c]].sum(-1).float().numpy())
    return {k: np.mean(v, axis=0) for k, v in shares.items()}


def _set_trainable(model, heads: Heads | None, stage: StageConfig,
                   base_heads: int) -> tuple[list[torch.nn.Parameter], list[tuple[torch.Tensor, torch.Tensor]]]:
    """The parameters ``stage`` trains, and (parameter, 0/1 mask) pairs whose gradients are masked
    (``new_heads_only``: only the rows/columns of heads past ``base_heads`` learn)."""
    for p in model.parameters():
        p.requires_grad_(False)
    if stage.new_heads_only:
        cut = base_heads * _head_dim(model.config.text_config)
        masked = []
        for layer in model.model.language_model.layers:
            attn = layer.self_attn
            for lin, rows in ((attn.q_proj, True), (attn.k_proj, True), (attn.v_proj, True), (attn.o_proj, False)):
                w = lin.weight
                w.requires_grad_(True)
                mask = torch.zeros_like(w)
                if rows:
                    mask[cut:] = 1
                else:
                    mask[:, cut:] = 1
                masked.append((w, mask))
        return [w for w, _ in masked], masked
    p = parts(model)
    if stage.name == "vision":
        mods = [p["vision"], heads]
    elif stage.name == "align":
        mods = [p["projector"]]
    else:
        # vision tower, projector and word embeddings stay frozen: the alignment survives
        mods = [m for name, m in p["lm"].named_children() if name != "embed_tokens"] + [p["head"]]
    params = []
    for m in mods:
        for q in m.parameters():
            q.requires_grad_(True)
            params.append(q)
    return params, []


def _lr(step: int, stage: StageConfig) -> float:
    if step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    t = (step - stage.warmup) / max(1, stage.steps - stage.warmup)
    return stage.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


class _EndableBatches:
    """A batch sampler that can end early. A loader worker shut down while it still draws prefetched
    batches aborts at exit (seen: 'terminate called without an active exception', then a RuntimeError
    from torch's SIGCHLD handler in the training process); ending the sampler and taking the batches
    already asked for lets the workers finish as at a stage's end."""

    def __init__(self, batches):
        self.batches, self.ended = batches, False

    def __iter__(self):
        for b in self.batches:
            if self.ended:
                return
            yield b

    def __len__(self) -> int:
        return len(self.batches)


def _with_defaults(cls, saved: dict) -> dict:
    """``saved`` (an ``asdict`` of dataclass ``cls`` from an older checkpoint) with the fields added
    since at their defaults."""
    defaults = {f.name: f.default for f in cls.__dataclass_fields__.values() if f.default is not MISSING}
    return {**{k: asdict(v) if hasattr(v, "__dataclass_fields__") else v for k, v in defaults.items()}, **saved}


def resume_conflicts(saved: dict, cfg: TrainConfig, stage_index: int, step: int) -> list[str]:
    """What a checkpoint's recipe (``saved``, its ``asdict``) says that ``cfg`` contradicts for the
    part already trained: any setting outside the stages, and every stage begun (``stage_index`` done,
    one more if ``step`` > 0). Stages not begun may differ (a study branching from ``after-STAGE.pt``);
    without this check a resume under another recipe or ``--seed`` trained on silently and
    ``training.json`` recorded settings the weights never saw."""
    now = asdict(cfg)
    out = []
    old = _with_defaults(TrainConfig, {k: v for k, v in saved.items() if k != "stages"})
    for k in sorted(set(now) - {"stages"}):
        a = _with_defaults(ModelShape, old[k]) if k == "shape" else old.get(k)
        if a != now[k]:
            out.append(f"{k}: {a!r} there, {now[k]!r} here")
    begun = stage_index + (1 if step > 0 else 0)
    stages = [_with_defaults(StageConfig, s) for s in saved.get("stages", ())]
    if len(now["stages"]) < begun:
        out.append(f"it has begun {begun} stages, this recipe has {len(now['stages'])}")
    for i in range(min(begun, len(stages), len(now["stages"]))):
        if stages[i] != now["stages"][i]:
            diff = sorted(k for k in now["stages"][i] if stages[i].get(k) != now["stages"][i][k])
            out.append(f"stage {i + 1} {stages[i]['name']}: {', '.join(diff)}")
    return out


@dataclass
class TrainState:
    stage_index: int = 0
    step: int = 0
    seconds: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


class Trainer:
    """Runs the stages in order with checkpoints in ``work_dir``; ``train()`` resumes where the
    last checkpoint left off and finally saves the model to ``out_dir``. With ``init_from`` (a
    saved model) and no checkpoint yet, training starts at ``start_stage`` from that model; with
    ``vision_from`` (another run's checkpoint) it starts at stage 2 with that run's vision tower,
    refused where that run's vision stage had other settings (seed, shape, scenes, object cap, the
    stage itself): later stages may differ, that being the study. Resuming a checkpoint is refused
    likewise where the recipe contradicts what it has trained (``resume_conflicts``)."""

    def __init__(self, cfg: TrainConfig, work_dir: str | Path, out_dir: str | Path, device: str = "cpu",
                 workers: int = 0, checkpoint_every: int = 100, progress: bool = True,
                 init_from: str | Path | None = None, start_stage: int = 0,
                 shape_gate_scenes: int = SHAPE_GATE_SCENES, vision_from: str | Path | None = None,
                 gate_scenes: int = GATE_SCENES):
        self.cfg, self.device, self.workers = cfg, torch.device(device), workers
        self.shape_gate_scenes, self.gate_scenes = shape_gate_scenes, gate_scenes
        self.work, self.out = Path(work_dir), Path(out_dir)
        self.checkpoint_every, self.progress = checkpoint_every, progress
        self.work.mkdir(parents=True, exist_ok=True)
        self.processor, self.tokenizer = build_processor_and_tokenizer(cfg.shape, cfg.method_prompts)
        self.model = build_model(self.tokenizer, cfg.shape, cfg.seed)
        self.seq = Sequencer(self.tokenizer, cfg.shape.grid ** 2)
        if cfg.match_init_gain:
            init_matching_attention(self.model, cfg.match_init_gain, len(self.seq.prefix) + 64, cfg.seed,
                                    cfg.match_init_heads)
        self.model.to(self.device)
        with torch.random.fork_rng(devices=[]):
            # seeded: this torch's global generator starts from a random seed in every process
            # (torch.initial_seed() differs run to run), so unseeded heads made the vision stage differ
            torch.manual_seed(cfg.seed)
            self.heads = Heads(cfg.shape.vision_hidden).to(self.device)
        torch.manual_seed(cfg.seed)
        self.state = TrainState()
        self.color_words, self.shape_words = word_ids(self.tokenizer)
        self.opt: torch.optim.Optimizer | None = None
        self.init_from = str(init_from) if init_from is not None else None
        self.vision_from: str | None = None
        self._opt_state = None
        self._batches: _EndableBatches | None = None
        if init_from is not None and not self.ckpt.is_file():
            # the stages before start_stage are done: their result is the saved model
            import transformers
            self.model = transformers.LlavaForConditionalGeneration.from_pretrained(
                init_from).to(torch.float32).to(self.device)
            self.state.stage_index = start_stage
        if vision_from is not None and not self.ckpt.is_file():
            self._take_vision_stage(Path(vision_from))
        self._load()

    def _take_vision_stage(self, ckpt: Path) -> None:
        """Start after the vision stage with another run's tower and stage-1 heads. The vision stage
        trains only those two, so with the same seed and shape this is the state that run had after
        stage 1, and a recipe that differs only in later stages needs no second vision stage."""
        if not self.cfg.stages or self.cfg.stages[0].name != "vision":
            raise ValueError("vision_from needs a recipe whose first stage is 'vision'")
        data = torch.load(ckpt, map_location=self.device, weights_only=False)
        if data["state"]["stage_index"] < 1:
            raise ValueError(f"{ckpt} has not finished its vision stage")
        if "config" in data:         # checkpoints before it was saved there are taken as they are
            differ = [k for k, v in self._vision_settings(self.cfg).items()
                      if v != self._vision_settings(data["config"]).get(k)]
            if differ:
                raise ValueError(f"{ckpt} trained its vision stage with other settings ({', '.join(differ)}); "
                                 "this run would record settings its tower never saw")
        prefix = "model.vision_tower."
        tower = {k[len(prefix):]: v for k, v in data["model"].items() if k.startswith(prefix)}
        parts(self.model)["vision"].load_state_dict(tower)     # strict: a different width fails here
        self.heads.load_state_dict(data["heads"])
        done = data["state"]
        self.state = TrainState(stage_index=1, seconds={"vision": done["seconds"].get("vision", 0.0)},
                                metrics={k: done["metrics"][k] for k in ("vision", "gate_vision")
                                         if k in done["metrics"]})
        self.vision_from = str(ckpt)

    @staticmethod
    def _vision_settings(cfg: "TrainConfig | dict") -> dict:
        """What the vision stage's result depends on (as plain values, from a config or its asdict)."""
        d = asdict(cfg) if isinstance(cfg, TrainConfig) else cfg
        keys = ("seed", "train_short_side", "crop_scale", "legible_px", "visible_px", "mixed_precision",
                "vision_object_cap")
        # the tower's sizes only: the LM's do not touch stage 1 (the tower is initialised before the LM)
        shape = {k: (d.get("shape") or {}).get(k) for k in VISION_SHAPE_FIELDS}
        return {**{k: d.get(k) for k in keys}, "shape": shape,
                "vision stage": d["stages"][0] if d.get("stages") else None}

    # -- checkpoints
    @property
    def ckpt(self) -> Path:
        return self.work / "checkpoint.pt"

    def _load(self) -> None:
        if not self.ckpt.is_file():
            return
        data = torch.load(self.ckpt, map_location=self.device, weights_only=False)
        if "config" in data:         # checkpoints before it was saved there are taken as they are
            conflicts = resume_conflicts(data["config"], self.cfg, data["state"]["stage_index"], data["state"]["step"])
            if conflicts:
                raise ValueError(
                    f"{self.ckpt} was trained with other settings ({'; '.join(conflicts)}); resume it with its own "
                    "command, or copy a WORK/after-STAGE.pt into a new work folder and change only later stages")
        text = self.model.config.text_config
        saved = data["model"]["model.language_model.layers.0.self_attn.q_proj.weight"].shape[0] // _head_dim(text)
        if saved > text.num_attention_heads:     # grown in a stage already run: shapes only, weights load below
            grow_heads(self.model, saved - text.num_attention_heads, seed=0)
        self.model.load_state_dict(data["model"])
        self.heads.load_state_dict(data["heads"])
        self.state = TrainState(**data["state"])
        self._opt_state = data.get("optimizer")
        self.init_from = data.get("init_from")
        self.vision_from = data.get("vision_from")
        LOG.info("resumed at stage %d step %d", self.state.stage_index, self.state.step)

    def _save(self) -> None:
        tmp = self.ckpt.with_suffix(".tmp")
        torch.save({"model": self.model.state_dict(), "heads": self.heads.state_dict(),
                    "state": asdict(self.state), "optimizer": self.opt.state_dict() if self.opt else None,
                    "init_from": self.init_from, "vision_from": self.vision_from, "config": asdict(self.cfg)}, tmp)
        os.replace(tmp, self.ckpt)

    # -- data
    def loader(self, stage_index: int, start: int) -> Iterator[dict]:
        stage = self.cfg.stages[stage_index]
        self._batches = None
        if stage.name == "exist-symbolic":
            return iter(range(start, stage.steps))      # no scenes drawn: symbolic_loss makes its own views
        n = stage.steps * stage.scenes_per_step
        ds = SceneSamples(self.cfg, stage, self.cfg.stage_seed(stage_index), n, STAGE_TASKS[stage.name])
        sampler = range(start * stage.scenes_per_step, n)
        self._batches = _EndableBatches(torch.utils.data.BatchSampler(sampler, stage.scenes_per_step, drop_last=False))
        return iter(torch.utils.data.DataLoader(ds, batch_sampler=self._batches, num_workers=self.workers,
                                                collate_fn=collate, persistent_workers=False,
                                                worker_init_fn=_one_thread,
                                                # fork after CUDA/OpenMP/OpenCV thread pools exist can deadlock
                                                multiprocessing_context="spawn" if self.workers else None,
                                                prefetch_factor=4 if self.workers else None))

    # -- the loop
    def train(self, stop: Callable[[], bool] | None = None) -> Path | None:
        """Train the remaining stages and save the model; returns its folder. ``stop`` is asked before
        each stage and after each step; once it says True, training checkpoints and returns None, and
        a new Trainer on the same work folder resumes there (a time budget: a lent GPU's lease, a
        session's end)."""
        from tqdm import tqdm

        def out_of_time() -> bool:
            return stop is not None and stop()

        while self.state.stage_index < len(self.cfg.stages):
            if out_of_time():
                return self._stopped()
            si = self.state.stage_index
            stage = self.cfg.stages[si]
            if stage.release_heads and self.state.step == 0:
                release_matching_heads(self.model, build_model(self.tokenizer, self.cfg.shape, self.cfg.seed),
                                       stage.release_heads)
            if stage.grow_heads and self.state.step == 0:
                before = self.model.config.text_config.num_attention_heads
                grow_heads(self.model, stage.grow_heads, seed=self.cfg.stage_seed(si))
                if stage.match_heads:
                    init_matching_attention(self.model, MATCH_GAIN, len(self.seq.prefix) + 64, self.cfg.seed,
                                            heads=stage.match_heads, first=before)
            params, masked = _set_trainable(self.model, self.heads, stage, self.cfg.shape.text_heads)
            self.opt = torch.optim.AdamW(params, lr=stage.lr, weight_decay=0.01)
            if self._opt_state is not None and self.state.step > 0:
                self.opt.load_state_dict(self._opt_state)
            self._opt_state = None
            self.model.train()
            rng = np.random.default_rng(np.random.SeedSequence([self.cfg.seed, si, self.state.step]))
            bar = tqdm(total=stage.steps, initial=self.state.step, desc=f"stage {si + 1}/{len(self.cfg.stages)} "
                       f"{stage.name}", disable=not self.progress, dynamic_ncols=True)
            t0 = time.perf_counter()
            # a resumed stage goes on from the moving averages its checkpoint saved
            ema: dict[str, float] = dict(self.state.metrics.get(stage.name, {})) if self.state.step else {}
            batches = self.loader(si, self.state.step)
            for batch in batches:
                for g in self.opt.param_groups:
                    g["lr"] = _lr(self.state.step, stage)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.mixed_precision):
                    loss, stats = self._loss(stage, batch, rng)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                for w, mask in masked:
                    if w.grad is not None:
                        w.grad.mul_(mask)
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                self.opt.step()
                self.state.step += 1
                for k, v in {"loss": loss.item(), **stats}.items():
                    if v == v:          # skip NaN (no such patches in this batch)
                        ema[k] = v if k not in ema else 0.95 * ema[k] + 0.05 * v
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in ema.items()})
                halt = out_of_time()        # also after a stage's last step: its gate runs on resume
                if self.state.step % self.checkpoint_every == 0 or self.state.step == stage.steps or halt:
                    self.state.seconds[stage.name] = self.state.seconds.get(stage.name, 0.0) + \
                        time.perf_counter() - t0
                    t0 = time.perf_counter()
                    self.state.metrics[stage.name] = dict(ema)
                    self._save()
                if halt:
                    bar.close()
                    if self._batches is not None:
                        self._batches.ended = True
                        for _ in batches:       # the few already prefetched: drawn, not trained on
                            pass
                    return self._stopped()
                if self.state.step >= stage.steps:
                    break
            bar.close()
            LOG.info("stage %s done: %s", stage.name, {k: round(v, 3) for k, v in ema.items()})
            if stage.name in ("vision", "align"):
                self.state.metrics[f"gate_{stage.name}"] = self.stage_gate(stage.name, self.gate_scenes)
                LOG.info("gate %s (held-out seed): %s", stage.name, self.state.metrics[f"gate_{stage.name}"])
            self.state.stage_index += 1
            self.state.step = 0
            self.opt = None
            self._save()
            # a study that changes only later stages starts from here (copy it to WORK/checkpoint.pt)
            shutil.copyfile(self.ckpt, self.work / f"after-{stage.name}.pt")
        return self.save_model()

    def _stopped(self) -> None:
        stage = self.cfg.stages[self.state.stage_index]
        LOG.info("time budget reached at stage %d/%d %s, step %d of %d; checkpoint %s (the same command resumes)",
                 self.state.stage_index + 1, len(self.cfg.stages), stage.name, self.state.step, stage.steps, self.ckpt)
        return None

    def _loss(self, stage: StageConfig, batch, rng: np.random.Generator) -> tuple[torch.Tensor, dict]:
        if stage.name == "vision":
            return vision_loss(self.model, self.heads, batch, self.device, self.cfg.vision_object_cap)
        if stage.name == "align":
            return align_loss(self.model, batch, self.color_words, self.shape_words, True, self.device)
        if stage.name == "exist-symbolic":
            return symbolic_loss(self.model, self.seq, self.device, stage.max_sequences, rng,
                                 self.color_words, self.cfg.shape.grid, stage.per_map)
        return lm_loss(self.model, batch, self.seq, self.device, stage.max_sequences, rng,
                       stage.symbolic, self.color_words)

    @torch.no_grad()
    def stage_gate(self, name: str, scenes: int = GATE_SCENES) -> dict:
        """The vision tower's per-patch colour/shape accuracy, or the alignment's per-patch word
        accuracy, on frames and on crops of held-out scenes (the benchmark's frame sizes); for the
        vision tower also its shape reading per scale on the shape gate's windows
        (:func:`vision_shape_by_scale`, ``shape_gate_scenes`` scenes)."""
        self.model.eval()
        stage = StageConfig("gate", steps=1, lr=0.0, crops_per_scene=4)
        cfg = replace(self.cfg, train_short_side=SceneSpec().short_side)
        ds = SceneSamples(cfg, stage, self.cfg.heldout_seed, scenes, ())
        sums: dict[str, list[float]] = {}
        for i in range(scenes):
            item = ds[i]
            pix = item["pixels"].to(self.device)
            color, shape = item["color"].to(self.device).flatten(1), item["shape"].to(self.device).flatten(1)
            feats = vision_features(self.model, pix)
            if name == "vision":
                pc, ps = self.heads.color(feats).argmax(-1), self.heads.shape(feats).argmax(-1)
            else:
                proj = self.model.model.multi_modal_projector(feats)
                emb = self.model.model.language_model.embed_tokens.weight
                cos = F.normalize(proj, dim=-1) @ F.normalize(emb, dim=-1).T
                pc = cos[..., torch.tensor(self.color_words, device=self.device)].argmax(-1)
                ps = None
            for view, kind in ((slice(0, 1), "frames"), (slice(1, None), "crops")):
                c, p_ = color[view], pc[view]
                obj = c > 0
                sums.setdefault(f"{kind}_color_object", []).extend((p_ == c)[obj].float().tolist())
                sums.setdefault(f"{kind}_background", []).extend((p_ == 0)[~obj].float().tolist())
                if ps is not None:
                    s_, q_ = shape[view], ps[view]
                    m = s_ > 0
                    sums.setdefault(f"{kind}_shape_legible", []).extend((q_ == s_)[m].float().tolist())
        out = {k: (round(float(np.mean(v)), 4) if v else None) for k, v in sums.items()}
        if name == "vision":
            by_scale = vision_shape_by_scale(self.model, self.heads, self.processor.image_processor, self.cfg.shape,
                                             heldout_scenes(self.cfg.heldout_seed, self.shape_gate_scenes), self.device)
            out.update({f"crops_shape_majority_{k}": v for k, v in by_scale.items()})
        self.model.train()
        return out

    def save_model(self, settings: dict | None = None) -> Path:
        """Save model + processor with ``save_pretrained`` (plus the family marker and the training
        record) into ``out_dir``."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.model.eval()
        self.model.save_pretrained(self.out, safe_serialization=True)
        self.processor.save_pretrained(self.out)
        (self.out / FAMILY_FILE).write_text(json.dumps({"model_family": "llava"}) + "\n")
        record = {"config": asdict(self.cfg), "init_from": self.init_from, "vision_from": self.vision_from,
                  "seconds": self.state.seconds, "metrics": self.state.metrics,
                  "device": str(self.device), "torch": torch.__version__,
                  "parameters": sum(p.numel() for p in self.model.parameters())}
        (self.out / "training.json").write_text(json.dumps(record, indent=1) + "\n")
        return self.out


__all__ = ["ModelShape", "StageConfig", "TrainConfig", "RECIPES", "Trainer", "grow_heads",
           "init_matching_attention", "release_matching_heads", "layer0_attention", "matching_attention_share",
           "build_model", "build_processor_and_tokenizer",
           "SETTINGS_FILE", "SceneSamples", "Sequencer", "symbolic_questions", "symbolic_loss", "patch_targets", "object_masks", "vision_shape_reads", "vision_shape_by_scale", "view_objects", "sample_views",
           "view_questions", "render_view"]
