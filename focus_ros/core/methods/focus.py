"""``vanilla`` and ``focus``: the question on the whole frame, and FOCUS itself.

FOCUS (paper, section 3): the question's targets (step 1), each target's relevance map read from
the value vectors of the frame's cached prefix (step 2), region proposals on that map (step 3),
existence checks on their crops (step 4), and the answer from the chosen crops (step 5). The
steps are :class:`~focus_ros.core.pipeline.FocusPipeline` methods, shared with the random-windows
control; this module only strings them together.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..results import Region

if TYPE_CHECKING:  # pragma: no cover
    from ..pipeline import FocusPipeline
    from ..run_context import QuestionRun

LOG = logging.getLogger(__name__)


def run_vanilla(pipe: FocusPipeline, ctx: QuestionRun) -> None:
    """The ``vanilla`` method: the question on the whole frame (its cached prefix)."""
    prefix, ctx.result.prefix_cached = pipe.prefix(ctx.image, ctx.frame_key, ctx.meter)
    ctx.lap("prefill")
    pipe.answer_from_frame(ctx, prefix)
    ctx.lap("answer")


def run_focus(pipe: FocusPipeline, ctx: QuestionRun) -> None:
    """The ``focus`` method: targets -> relevance -> regions -> verify -> answer."""
    result = ctx.result
    targets, prefix = pipe.targets_and_prefix(ctx)
    result.relevance_mapping = prefix.mapping
    if not targets:
        # Nothing to look for: answer from the whole frame, as vanilla would.
        LOG.info("no targets in %r: answering from the whole frame", ctx.question)
        pipe.answer_from_frame(ctx, prefix)
        ctx.lap("answer")
        return
    ctx.check()
    ctx.progress("relevance", 0, len(targets), None)
    candidates: dict[str, list[Region]] = {}
    for target in targets:
        rel_map, grid_map, mapping = pipe.relevance(
            prefix, target.existence_phrase, ctx.meter, ctx.frame_key, image=ctx.image
        )
        result.relevance_maps[target.phrase] = rel_map
        result.relevance_mapping = mapping  # the frame's grid, or the tiles' (search.relevance_tiles)
        candidates[target.phrase] = pipe.proposals(grid_map, mapping, target.phrase)
        ctx.check()
    ctx.lap("relevance")
    pipe.verify_and_answer(ctx, prefix, targets, candidates)
