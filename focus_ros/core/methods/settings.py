"""Settings of the baselines (``zoom.*``, ``attention.*``), kept apart from FOCUS's SearchConfig.

FOCUS's own settings (``search.*``) are shared with the ROS node through
:func:`focus_ros.core.config.build_configs`; the baselines are benchmark tools, so their settings
live here and command-line tools accept them as ``--set zoom.max_depth=3``. The defaults are the
values of the authors' public code (ZoomEye: ``ZoomEye/eval/perform_zoom_eye.py`` and
``ZoomEye/zoom_model.py``; ViCrop: ``run.py`` and ``utils.py`` of "MLLMs know where to look");
docs/benchmark.md lists where we still differ.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any

ZOOM_VIEWS = ("auto", "local", "global")


@dataclass
class ZoomConfig:
    """ZoomEye zoom tree (Shen et al. 2024). Confidences are ZoomEye's ``c = 2 P(Yes) - 1`` in [-1, 1]."""

    answer_threshold: float = 0.6  # ZoomEye's answering_confidence_threshold_upper (P(Yes) >= 0.8)
    threshold_lower: float = 0.0  # ZoomEye's ..._lower: the search gives up once relaxed below it
    threshold_decrease: tuple = (0.1, 0.1, 0.2)  # ZoomEye's relaxation steps; the last one repeats
    answer_threshold_qwen: float = 0.95  # ZoomEye's upper threshold for Qwen2.5-VL
    threshold_decrease_qwen: tuple = (0.05, 0.1, 0.2)  # ZoomEye's relaxation steps for Qwen2.5-VL
    pops_per_level: int = 3  # ZoomEye's pop_limit_func: 3 pops per level of the tree
    pops_per_relaxation: int = 2  # ZoomEye's num_intervel: pops granted after each relaxation
    max_depth: int = 5  # ZoomEye's depth_limit of the type-1 search
    type2_depth: int = 2  # ZoomEye scores every node down to depth 2 for "all X" targets
    type2_threshold: float = 0.6  # ZoomEye's visual_cue_threshold on the existence confidence
    native_side: int = 0  # split nodes whose long side >= this; 0: the encoder's input side (ZoomEye)
    view: str = "auto"  # auto: ZoomEye's per model (LLaVA-1.5: crop; multi-image: boxed frame + zoom)
    bias_local: float = 0.2  # ZoomEye's bias_value (existence weight at the root) for LLaVA-1.5
    bias_global: float = 0.6  # ZoomEye's bias_value for the multi-image models
    patch_scale_local: float = 1.0  # ZoomEye shows LLaVA-1.5 the node's patch unscaled
    patch_scale_global: float = 1.2  # ZoomEye's patch_scale for the multi-image models
    paste_side: int = 1000  # ZoomEye's side_threshold: two boxes spanning more are pasted side by side
    decomposed_question: str = "What is the appearance of the {}?"  # ZoomEye's per-target question
    max_steps: int = 0  # our extra cap on pops per target; 0: ZoomEye's schedule alone (it always ends)

    def validate(self) -> None:
        if self.max_depth < 0 or self.type2_depth < 0 or self.native_side < 0 or self.max_steps < 0:
            raise ValueError("zoom.max_depth, type2_depth, native_side and max_steps must be >= 0")
        if self.pops_per_level < 1 or self.pops_per_relaxation < 0 or self.paste_side < 1:
            raise ValueError("zoom.pops_per_level and paste_side must be >= 1, pops_per_relaxation >= 0")
        for name in ("answer_threshold", "answer_threshold_qwen", "threshold_lower", "type2_threshold"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"zoom.{name} is a 2 P(Yes) - 1 confidence in [-1, 1], got {getattr(self, name)}")
        if min(self.threshold_decrease or (0,)) <= 0 or min(self.threshold_decrease_qwen or (0,)) <= 0:
            raise ValueError("zoom.threshold_decrease needs positive steps (else the relaxation never ends)")
        if self.view not in ZOOM_VIEWS:
            raise ValueError(f"zoom.view must be one of {list(ZOOM_VIEWS)}, got {self.view!r}")
        if not (0.0 <= self.bias_local <= 1.0 and 0.0 <= self.bias_global <= 1.0):
            raise ValueError("zoom.bias_local and zoom.bias_global must be in [0, 1]")
        if self.patch_scale_local <= 0 or self.patch_scale_global <= 0:
            raise ValueError("zoom.patch_scale_local and zoom.patch_scale_global must be > 0")
        if "{}" not in self.decomposed_question:
            raise ValueError("zoom.decomposed_question needs a {} for the target")


@dataclass
class AttentionCropConfig:
    """ViCrop relative-attention crop (Zhang et al., ICLR 2025), ``rel_att`` / ``rel_att_high``."""

    layer_start: float = 0.4375  # ViCrop reads attentions[14] of LLaVA-1.5-7B's 32 layers (fraction or index)
    layer_end: float = 0.46875  # exclusive: that one layer, as ViCrop
    generic_prompt: str = "Write a general description of the image."  # ViCrop's general_question
    instruction: str = "Answer the question using a single word or phrase."  # ViCrop ends every prompt with it
    native_side: int = 0  # crop side = native_side x ratio (px); 0: the encoder's input side (ViCrop: 336)
    ratios: tuple = (1.0, 1.2, 1.4, 1.6, 1.8, 2.0)  # ViCrop's adaptive crop sizes
    high_resolution: bool = False  # ViCrop's rel_att by default; True: rel_att_high (attention per block)
    block_side: int = 1024  # ViCrop's res_threshold: rel_att_high's blocks are at most ~this tall

    def validate(self) -> None:
        if self.native_side < 0 or not self.ratios or min(self.ratios) <= 0:
            raise ValueError("attention.native_side must be >= 0 and attention.ratios positive")
        if self.layer_start < 0 or self.layer_end <= 0:
            raise ValueError("attention.layer_start must be >= 0 and attention.layer_end > 0")
        if self.block_side < 2:
            raise ValueError("attention.block_side must be >= 2")


_GROUPS = {"zoom": ZoomConfig, "attention": AttentionCropConfig}


def _coerce(value: Any, default: Any, key: str) -> Any:
    if isinstance(default, tuple):
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(float(x) for x in items)
    if isinstance(default, bool):
        return str(value).lower() in ("1", "true", "yes", "on")
    try:
        return type(default)(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{key} must be a {type(default).__name__}, got {value!r}") from exc


def split_method_settings(items: Iterable[str]) -> tuple[list[str], ZoomConfig, AttentionCropConfig]:
    """Split ``GROUP.NAME=VALUE`` strings into the ones for build_configs and the baselines' configs."""
    rest: list[str] = []
    values: dict[str, dict[str, Any]] = {g: {} for g in _GROUPS}
    for item in items:
        key = item.split("=", 1)[0].strip()
        group = key.split(".", 1)[0]
        if group not in _GROUPS or "=" not in item:
            rest.append(item)
            continue
        name, value = key.split(".", 1)[1], item.split("=", 1)[1].strip()
        known = {f.name: f.default for f in fields(_GROUPS[group])}
        if name not in known:
            raise ValueError(f"unknown setting {key}; known: {', '.join(f'{group}.{n}' for n in known)}")
        values[group][name] = _coerce(value, known[name], key)
    zoom = replace(ZoomConfig(), **values["zoom"])
    attention = replace(AttentionCropConfig(), **values["attention"])
    zoom.validate()
    attention.validate()
    return rest, zoom, attention
