"""Settings of the baselines (``zoom.*``, ``attention.*``), kept apart from FOCUS's SearchConfig.

FOCUS's own settings (``search.*``) are shared with the ROS node through
:func:`focus_ros.core.config.build_configs`; the baselines are benchmark tools, so their settings
live here and command-line tools accept them as ``--set zoom.max_steps=4``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Iterable


@dataclass
class ZoomConfig:
    """ZoomEye-like zoom tree (Shen et al. 2024): best-first over a recursive 4-way split."""

    max_depth: int = 3                 # depth of the deepest node (root = 0)
    max_steps: int = 4                 # nodes popped from the heap (root included) per target
    answer_threshold: float = 0.6      # stop when the popped view's answering confidence reaches it
    native_side: int = 336             # a node is split only while its long side exceeds this (px):
    #                                    below the encoder's input size zooming adds no pixels

    def validate(self) -> None:
        if self.max_depth < 0 or self.max_steps < 1 or self.native_side < 1:
            raise ValueError("zoom.max_depth must be >= 0, zoom.max_steps and zoom.native_side >= 1")
        if not 0.0 <= self.answer_threshold <= 1.0:
            raise ValueError(f"zoom.answer_threshold must be in [0, 1], got {self.answer_threshold}")


@dataclass
class AttentionCropConfig:
    """ViCrop-like relative-attention crop (Zhang et al., ICLR 2025)."""

    layer_start: float = 0.4375        # ViCrop reads layer 14 of LLaVA-1.5-7B's 32 (fraction or index)
    layer_end: float = 0.46875         # exclusive; one layer by default
    generic_prompt: str = "Write a general description of the image."
    native_side: int = 336             # crop side = native_side x ratio, in source pixels (ViCrop)
    ratios: tuple = (1.0, 1.2, 1.4, 1.6, 1.8, 2.0)

    def validate(self) -> None:
        if self.native_side < 1 or not self.ratios or min(self.ratios) <= 0:
            raise ValueError("attention.native_side must be >= 1 and attention.ratios positive")
        if self.layer_start < 0 or self.layer_end <= 0:
            raise ValueError("attention.layer_start must be >= 0 and attention.layer_end > 0")


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
