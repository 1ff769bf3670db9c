"""Answering methods besides FOCUS, all on the same adapters and counted the same way.

- ``vanilla`` and ``focus`` live in :mod:`focus_ros.core.pipeline`;
- ``zoom``: ZoomEye's zoom tree as its authors' code runs it (:mod:`.zoom`; deviations listed
  there and in docs/benchmark.md);
- ``attention``: ViCrop's relative-attention crop, with its high-resolution blocks variant
  (:mod:`.attention_crop`, the one module of the project that asks the model for attention weights);
- ``random``: random windows of FOCUS's region sizes, verified like FOCUS (:mod:`.random_windows`).

:mod:`.answer` is the one answer step every method ends with (free text, or the likeliest
option of a multiple-choice question). Modules load lazily: importing this package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Callable

from .settings import AttentionCropConfig, ZoomConfig, split_method_settings

BASELINES: dict[str, str] = {
    "zoom": "focus_ros.core.methods.zoom:run_zoom",
    "attention": "focus_ros.core.methods.attention_crop:run_attention_crop",
    "random": "focus_ros.core.methods.random_windows:run_random_windows",
}


def baseline(name: str) -> Callable:
    """The run function of baseline ``name`` (imported on first use)."""
    module, func = BASELINES[name].split(":")
    return getattr(importlib.import_module(module), func)


__all__ = ["BASELINES", "baseline", "ZoomConfig", "AttentionCropConfig", "split_method_settings"]
