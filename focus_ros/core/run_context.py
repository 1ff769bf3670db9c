"""One question on its way through a method: :class:`QuestionRun`.

``FocusPipeline.run`` builds one per question and hands it to the method's runner
(:mod:`focus_ros.core.methods`); the runner and the pipeline's shared steps read the frame and the
question from it, count their cost on its meter and clock, fill its result, and call its
:meth:`~QuestionRun.check` between stages so a cancelled question stops early.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np

from .methods.answer import Choices, parse_options
from .models import Meter
from .results import Cancelled, Clock, FocusResult, Progress


def _never() -> bool:
    return False


def _silent(stage: str, done: int, total: int, region: object) -> None:
    return None


@dataclass
class QuestionRun:
    """A question about one frame, and the books of answering it."""

    image: np.ndarray  # H x W x 3 uint8 RGB
    choices: Choices  # what is asked (the stem) and the options to score, if any
    result: FocusResult  # what the method fills in
    frame_key: Hashable | None = None  # the frame's key in the prefix cache; None: not cached
    cancel: Callable[[], bool] = _never  # the caller's "stop now?"; polled by check()
    progress: Progress = _silent  # (stage, done, total, region) as the method goes
    meter: Meter = field(default_factory=Meter)  # model calls and tokens of this question
    clock: Clock = field(default_factory=Clock)  # wall time per stage of this question

    @classmethod
    def start(
        cls,
        image: np.ndarray,
        question: str,
        method: str,
        model: str,
        frame_key: Hashable | None = None,
        cancel: Callable[[], bool] | None = None,
        progress: Progress | None = None,
    ) -> QuestionRun:
        """A new run: the question's options parsed, an empty result for ``method`` on ``model``,
        meter and clock at zero."""
        h, w = image.shape[:2]
        result = FocusResult(question=question, answer="", method=method, image_size=(w, h), model=model)
        return cls(image, parse_options(question), result, frame_key, cancel or _never, progress or _silent)

    @property
    def question(self) -> str:
        """What the model is asked: the question without its options."""
        return self.choices.stem

    @property
    def size(self) -> tuple[int, int]:
        """The frame's (width, height)."""
        return self.result.image_size

    def check(self) -> None:
        """Raise :class:`Cancelled` when the caller asked to stop."""
        if self.cancel():
            raise Cancelled("cancelled")

    def lap(self, stage: str) -> None:
        """Charge the time since the previous lap to ``stage``."""
        self.clock.lap(stage)

    def finish(self) -> FocusResult:
        """The result, with the question's cost (passes, tokens, stage timings) recorded."""
        return self.result.record_costs(self.meter, self.clock)


__all__ = ["QuestionRun"]
