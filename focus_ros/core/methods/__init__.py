"""The answering methods, all on the same adapters and counted the same way, and their dispatcher.

- ``vanilla``: the question on the whole frame (:mod:`.focus`);
- ``focus``: FOCUS, targets -> relevance -> regions -> verify -> answer (:mod:`.focus`);
- ``zoom``: ZoomEye's zoom tree as its authors' code runs it (:mod:`.zoom`; deviations listed
  there and in docs/benchmark.md);
- ``attention``: ViCrop's relative-attention crop, with its high-resolution blocks variant
  (:mod:`.attention_crop`, the one module of the project that asks the model for attention weights);
- ``random``: random windows of FOCUS's region sizes, verified like FOCUS (:mod:`.random_windows`).

Every method is a runner ``run(pipeline, ctx)``: it answers the question of ``ctx`` (a
:class:`~focus_ros.core.run_context.QuestionRun`) with the pipeline's model and shared steps, and
fills ``ctx.result``. :func:`run_method` dispatches by name. :mod:`.answer` is the one answer step
every method ends with (free text, or the likeliest option of a multiple-choice question).
Runner modules load lazily: importing this package costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from .settings import AttentionCropConfig, ZoomConfig, split_method_settings

if TYPE_CHECKING:  # pragma: no cover
    from ..pipeline import FocusPipeline
    from ..run_context import QuestionRun

Runner = Callable[["FocusPipeline", "QuestionRun"], None]

RUNNERS: dict[str, str] = {
    "vanilla": "focus_ros.core.methods.focus:run_vanilla",
    "focus": "focus_ros.core.methods.focus:run_focus",
    "zoom": "focus_ros.core.methods.zoom:run_zoom",
    "attention": "focus_ros.core.methods.attention_crop:run_attention_crop",
    "random": "focus_ros.core.methods.random_windows:run_random_windows",
}

METHODS: tuple[str, ...] = tuple(RUNNERS)


def runner(name: str) -> Runner:
    """The runner of method ``name`` (imported on first use)."""
    if name not in RUNNERS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {name!r}")
    module, func = RUNNERS[name].split(":")
    return getattr(importlib.import_module(module), func)


def run_method(name: str, pipeline: FocusPipeline, ctx: QuestionRun) -> None:
    """Answer ``ctx``'s question with method ``name``; the answer and its costs land in ``ctx.result``."""
    runner(name)(pipeline, ctx)


__all__ = [
    "METHODS",
    "RUNNERS",
    "Runner",
    "runner",
    "run_method",
    "ZoomConfig",
    "AttentionCropConfig",
    "split_method_settings",
]
