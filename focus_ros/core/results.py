"""What answering a question produces: the result, its regions, its stage clock; and ``Cancelled``.

Shared by the pipeline (:mod:`focus_ros.core.pipeline`) and every method
(:mod:`focus_ros.core.methods`), so neither imports the other for them. No torch here: these are
plain records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .geometry import Box, GridMapping
from .targets import TYPE_SINGLE

if TYPE_CHECKING:  # pragma: no cover
    from .models import Meter

Progress = Callable[[str, int, int, "Region | None"], None]
"""A method's progress callback: (stage, done, total, region just verified or None)."""


class Cancelled(Exception):
    """Raised between stages when the caller's cancel check says so."""


@dataclass
class Region:
    """A candidate region in source pixels, the target it belongs to, and its scores."""

    box: Box
    target: str
    relevance: float
    confidence: float = -1.0  # existence confidence on the crop; -1: not verified
    cells: tuple[int, int, int, int] = (0, 0, 0, 0)

    def to_dict(self) -> dict:
        return {
            "bbox": self.box.as_list(),
            "target": self.target,
            "relevance": round(self.relevance, 6),
            "confidence": round(self.confidence, 6),
            "cells": list(self.cells),
        }


@dataclass
class TargetOutcome:
    """One target's own result, for a planner: the box the search settled on for this target alone
    (the union of its kept crops for an "every instance" target; None when nothing was proposed),
    its existence confidence, and whether that confirms the target (``>= search.exist_threshold``)."""

    phrase: str
    box: Box | None = None
    confidence: float = -1.0
    found: bool = False

    def to_dict(self) -> dict:
        return {
            "phrase": self.phrase,
            "bbox": self.box.as_list() if self.box else None,
            "confidence": round(self.confidence, 6),
            "found": self.found,
        }


class Clock:
    """Wall time per stage of one question: :meth:`lap` adds the time since the previous lap to a stage."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t = time.perf_counter()
        self._start = self._t

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._t
        self._t = now

    def total(self) -> dict[str, float]:
        """The stage timings, with ``total``: the time since the clock started."""
        self.timings["total"] = time.perf_counter() - self._start
        return self.timings


@dataclass
class FocusResult:
    """Everything a caller needs: the answer, where it is, and what it cost."""

    question: str
    answer: str
    method: str
    targets: list[str] = field(default_factory=list)
    question_type: int = TYPE_SINGLE
    bbox: Box | None = None
    confidence: float = -1.0
    regions: list[Region] = field(default_factory=list)
    relevance_maps: dict[str, np.ndarray] = field(default_factory=dict)  # target -> model-grid map
    relevance_mapping: GridMapping | None = None  # grid cell -> source pixels of relevance_maps
    forward_passes: int = 0
    tokens_prefilled: int = 0
    generated_tokens: int = 0
    reused_passes: int = 0  # passes a memo saved (relevance, existence, extraction prefix): not run
    timings: dict[str, float] = field(default_factory=dict)
    image_size: tuple[int, int] = (0, 0)
    model: str = ""
    prefix_cached: bool = False
    target_source: str = ""
    choice: str = ""  # letter of the chosen option of a multiple-choice question
    # Per target, from the methods that search for each target (focus, random, zoom); empty for
    # vanilla and attention, which look at the frame (or one crop) without confirming a target.
    target_results: list[TargetOutcome] = field(default_factory=list)
    # What the caller should know about how the question was answered, e.g. targets left out
    # (search.max_targets); one sentence each.
    notes: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        """Every target confirmed (False when no target was searched for)."""
        return bool(self.target_results) and all(t.found for t in self.target_results)

    @property
    def none_found(self) -> bool:
        """Targets were searched for and not one was confirmed: the answer comes from the best view."""
        return bool(self.target_results) and not any(t.found for t in self.target_results)

    def record_costs(self, meter: Meter, clock: Clock) -> FocusResult:
        """Copy the question's cost (passes, tokens, stage timings) into the result; returns it."""
        self.forward_passes = meter.forward_passes
        self.tokens_prefilled = meter.tokens_prefilled
        self.generated_tokens = meter.generated_tokens
        self.reused_passes = meter.reused_passes
        self.timings = clock.total()
        # the model calls' time by kind ("model.preprocess", "model.prefill", "model.extend",
        # "model.generate"): it runs inside the stages above, so it is not added to "total"
        self.timings.update({f"model.{kind}": s for kind, s in meter.seconds.items()})
        return self

    def to_dict(self) -> dict:
        """JSON-ready dict (relevance maps left out: they are arrays)."""
        return {
            "question": self.question,
            "answer": self.answer,
            "method": self.method,
            "targets": self.targets,
            "question_type": self.question_type,
            "bbox": self.bbox.as_list() if self.bbox else None,
            "confidence": round(self.confidence, 6),
            "regions": [r.to_dict() for r in self.regions],
            "forward_passes": self.forward_passes,
            "tokens_prefilled": self.tokens_prefilled,
            "generated_tokens": self.generated_tokens,
            "reused_passes": self.reused_passes,
            "timings": {k: round(v, 6) for k, v in self.timings.items()},
            "image_size": list(self.image_size),
            "model": self.model,
            "prefix_cached": self.prefix_cached,
            "target_source": self.target_source,
            "choice": self.choice,
            "target_results": [t.to_dict() for t in self.target_results],
            "found": self.found,
            "notes": list(self.notes),
        }


__all__ = ["Cancelled", "Clock", "FocusResult", "Progress", "Region", "TargetOutcome"]
