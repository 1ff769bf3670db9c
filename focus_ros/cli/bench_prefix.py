"""``focus-bench-prefix``: what a second question on the same frame costs, and where a question's time goes.

For each method it times, on one frame, a first question (nothing of the frame cached), then right
after it on the same frame either another question about the same target (``second_same_target``:
the frame prefix, the target's relevance map and its crops' existence confidences can be reused) or
a question about another target (``second_other_target``: the frame prefix can), and that other
question with every cache cleared (``second_no_cache``). Each cell is the median of ``--repeats``
runs; model-level caches (the extraction prompt's prefix) are warm, as on a running node.

Prints where the time goes by stage, per method and question (the pipeline's stages: targets,
frame prefill, relevance, proposals, verify, answer; and the model calls inside them by kind:
image preprocessing, prefill of an image prefix, extend, generate; decoding the image file is the
caller's and is not counted; on CUDA the GPU is synchronised after every model call so that each
stage holds its own GPU time, which costs the CPU/GPU overlap), then seconds and passes per
question. ``--json`` writes ``{method: {first|second_same_target|second_other_target: {seconds,
passes, reused_passes, stages}}}``.

``--verify-crops N`` (default 6, 0: skip) then times what bounds a first FOCUS question from below:
the frame's prefix and one question (vanilla's first question), N crops' prefixes and existence
prompts one at a time, and the same N crops in one batched forward (``search.verify_batch``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from ..core.methods import METHODS
from .common import CliError, add_model_flags, load_image, setup_logging
from .vqa import load_with_baselines

# The first two name the same target, so that the embedded model extracts it identically (the
# table prints every question's targets: check them when you pass your own with --questions).
QUESTIONS = ("What shape is the red object?", "Is there a red object in the image?", "What shape is the blue object?")
CELLS = ("first", "second_same_target", "second_other_target")
NO_CACHE = "second_no_cache"
# Stages of the pipeline (its clock's laps; "proposals" timed apart inside "relevance"), then the
# model calls inside them by kind (the adapter's Meter.seconds, as "model.<kind>" in FocusResult.timings).
PIPELINE_STAGES = ("targets", "prefill", "relevance", "proposals", "verify", "answer")
MODEL_STAGES = ("preprocess", "prefill", "extend", "generate")


class ProposalClock:
    """Times ``pipeline.proposals`` (step 3, inside the "relevance" lap) on this pipeline instance."""

    def __init__(self, pipeline) -> None:
        self.seconds = 0.0
        inner = pipeline.proposals

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0

        pipeline.proposals = timed

    def take(self) -> float:
        """The seconds since the last take."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds


def stages_of(result, proposals_s: float) -> dict[str, float]:
    """A result's seconds by pipeline stage and by model-call kind (missing stages: 0)."""
    t = result.timings
    out = {name: float(t.get(name, 0.0)) for name in PIPELINE_STAGES}
    out["proposals"] = proposals_s
    out["relevance"] = max(0.0, out["relevance"] - proposals_s)
    out.update({f"model.{kind}": float(t.get(f"model.{kind}", 0.0)) for kind in MODEL_STAGES})
    out["total"] = float(t.get("total", 0.0))
    return out


def _sync(pipeline) -> None:
    device = getattr(pipeline.adapter, "device", None)
    if getattr(device, "type", "") == "cuda":
        import torch

        torch.cuda.synchronize(device)


def timed_run(pipeline, clock: ProposalClock, image, question: str, method: str, key) -> dict:
    """One question, timed end to end: seconds, passes, reused passes, targets, stage seconds."""
    clock.take()
    _sync(pipeline)
    t0 = time.perf_counter()
    result = pipeline.run(image, question, method=method, frame_key=key)
    _sync(pipeline)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "passes": result.forward_passes,
        "reused_passes": result.reused_passes,
        "targets": list(result.targets),
        "stages": stages_of(result, clock.take()),
    }


def bench_method(pipeline, clock, image, method: str, questions: tuple[str, str, str], repeats: int) -> dict:
    """Runs per cell (first, second_same_target, second_other_target, second_no_cache) for one method."""
    first, same, other = questions
    runs: dict[str, list[dict]] = {name: [] for name in (*CELLS, NO_CACHE)}
    for rep in range(repeats):
        for name, second in (("second_same_target", same), ("second_other_target", other)):
            pipeline.clear_cache()
            key = f"bench-{method}-{rep}-{name}"
            runs["first"].append(timed_run(pipeline, clock, image, first, method, key))
            runs[name].append(timed_run(pipeline, clock, image, second, method, key))
        pipeline.clear_cache()
        runs[NO_CACHE].append(timed_run(pipeline, clock, image, other, method, None))
    return runs


def summary(runs: list[dict]) -> dict:
    """Median seconds, passes and stage seconds of a cell's runs (passes: the median run's, low)."""
    return {
        "seconds": round(statistics.median(r["seconds"] for r in runs), 4),
        "passes": statistics.median_low(r["passes"] for r in runs),
        "reused_passes": statistics.median_low(r["reused_passes"] for r in runs),
        "targets": runs[-1]["targets"],
        "stages": {k: round(statistics.median(r["stages"][k] for r in runs), 4) for k in runs[0]["stages"]},
    }


def contract_json(table: dict[str, dict[str, dict]]) -> dict:
    """The issue's benchmark contract: per method, per cell, seconds / passes / reused passes / stages."""
    return {
        method: {cell: {k: cells[cell][k] for k in ("seconds", "passes", "reused_passes", "stages")} for cell in CELLS}
        for method, cells in table.items()
    }


def format_report(table: dict[str, dict[str, dict]], header: str) -> str:
    lines = [header, ""]
    names = (*CELLS, NO_CACHE)
    short = {
        "first": "first",
        "second_same_target": "same tgt",
        "second_other_target": "other tgt",
        NO_CACHE: "no cache",
    }
    rows = [*PIPELINE_STAGES, *(f"model.{k}" for k in MODEL_STAGES), "total"]
    lines.append("Where the time goes, ms (median; model.* run inside the stages above them):")
    cols = [(m, n) for m in table for n in names]
    lines.append(f"{'stage':17}" + "".join(f"{m[:7] + ' ' + short[n]:>19}" for m, n in cols))
    for row in rows:
        cells = "".join(f"{table[m][n]['stages'].get(row, 0.0) * 1000:19.1f}" for m, n in cols)
        lines.append(f"{row:17}{cells}")
    lines += ["", f"{'method':10} {'question':20} {'seconds':>8} {'passes':>7} {'reused':>7}  targets"]
    for method, cells in table.items():
        for name in names:
            c = cells[name]
            targets = ", ".join(c["targets"]) or "-"
            lines.append(
                f"{method:10} {name:20} {c['seconds']:8.3f} {c['passes']:7d} {c['reused_passes']:7d}  {targets}"
            )
        first = cells["first"]["seconds"]
        ratios = ", ".join(f"first / {name} {first / max(cells[name]['seconds'], 1e-9):.2f}x" for name in CELLS[1:])
        # the other-target question against itself on a fresh frame: what the cache saved it
        saved = cells[NO_CACHE]["seconds"] / max(cells["second_other_target"]["seconds"], 1e-9)
        ratios += f", {NO_CACHE} / second_other_target {saved:.2f}x"
        lines.append(f"{'':10} {ratios}")
    if "focus" in table and "vanilla" in table:
        ratio = table["focus"]["first"]["seconds"] / max(table["vanilla"]["first"]["seconds"], 1e-9)
        lines.append(f"focus first / vanilla first {ratio:.2f}x")
    same = {m: c["first"]["targets"] == c["second_same_target"]["targets"] for m, c in table.items()}
    if not all(same.values()):
        lines.append(
            "note: second_same_target extracted other targets than first for "
            + ", ".join(m for m, ok in same.items() if not ok)
        )
    return "\n".join(lines)


def verify_boxes(width: int, height: int, n: int, side: int) -> list:
    """``n`` square crops of ``side`` pixels spread over the frame in two rows, left to right."""
    from ..core.geometry import Box

    side = min(side, width, height)
    cols = -(-n // 2)
    out = []
    for i in range(n):
        row, col = divmod(i, cols)
        x = (width - side) * (col / max(1, cols - 1))
        y = (height - side) * (row / max(1, (n - 1) // cols))
        out.append(Box(x, y, x + side, y + side))
    return out


def time_verify_stage(pipeline, image, n: int, side: int, repeats: int) -> tuple[dict[int, float], float]:
    """The verify stage alone (``pipeline.verify_regions``) on ``n`` fixed crops of one target, one crop
    per forward (``search.verify_batch`` 1) and all in one batched forward: median seconds by batch
    size (after one warm-up run each), and how far the two runs' confidences differ at most."""
    from dataclasses import replace

    from ..core.results import Region
    from ..core.run_context import QuestionRun
    from ..core.targets import Target

    h, w = image.shape[:2]
    boxes = verify_boxes(w, h, n, side)
    target = Target("red object")  # any phrase: the cost is the crops' prefixes
    base = pipeline.search
    seconds, confidences = {}, {}
    try:
        for batch in (1, n):
            pipeline.search = replace(base, max_steps=n, overrun=False, verify_batch=batch)
            times = []
            for rep in range(repeats + 1):  # the first run warms up (kernels for the batch shape)
                regions = [Region(b, target.phrase, 0.0) for b in boxes]
                ctx = QuestionRun.start(image, "Is there a red object?", "focus", pipeline.adapter.name)
                _sync(pipeline)
                t0 = time.perf_counter()
                pipeline.verify_regions(ctx, target, regions, {}, lambda region: None)
                _sync(pipeline)
                if rep:
                    times.append(time.perf_counter() - t0)
            seconds[batch] = statistics.median(times)
            confidences[batch] = [r.confidence for r in regions]
    finally:
        pipeline.search = base
    return seconds, max(abs(a - b) for a, b in zip(confidences[1], confidences[n]))


def verify_cost(pipeline, image, question: str, n: int, repeats: int) -> list[tuple[str, float]]:
    """Median seconds of the frame's prefix and ``question``, then of the verify stage on ``n`` crops
    of a quarter of the frame's short side, one at a time and in one batched forward."""
    adapter = pipeline.adapter
    times = []
    for rep in range(repeats + 1):  # the first run warms up
        t0 = time.perf_counter()
        adapter.extend(adapter.prefill_image(image), adapter.question_text(question))
        _sync(pipeline)
        if rep:
            times.append(time.perf_counter() - t0)
    crops, _ = time_verify_stage(pipeline, image, n, min(image.shape[:2]) // 4, repeats)
    return [
        ("frame prefix and one question", statistics.median(times)),
        (f"{n} crops, one at a time", crops[1]),
        (f"{n} crops, one batched forward", crops[n]),
    ]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="focus-bench-prefix", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_flags(p)
    p.add_argument("--image", required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument(
        "--questions",
        nargs=3,
        metavar=("FIRST", "SAME_TARGET", "OTHER_TARGET"),
        default=QUESTIONS,
        help="the first question, another about the same target, one about another target",
    )
    p.add_argument("--json", metavar="FILE", help="also write the contract's JSON here")
    p.add_argument(
        "--verify-crops", type=int, default=6, metavar="N", help="crops in the verify-cost table (0: skip it)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.repeats < 1 or args.verify_crops < 0:
        print("focus-bench-prefix: error: --repeats must be >= 1 and --verify-crops >= 0", file=sys.stderr)
        return 2
    try:
        image = load_image(args.image)
        pipeline = load_with_baselines(args)
    except CliError as exc:
        print(f"focus-bench-prefix: error: {exc}", file=sys.stderr)
        return 2
    pipeline.adapter.sync_timings = True  # GPU: each model stage's own time, not its launch
    clock = ProposalClock(pipeline)
    questions = tuple(args.questions)
    for method in args.methods:  # warm-up: first-call overheads, the model-level caches
        pipeline.run(image, questions[0], method=method, frame_key="bench-warm-up")
    table = {}
    for method in args.methods:
        runs = bench_method(pipeline, clock, image, method, questions, args.repeats)
        table[method] = {name: summary(r) for name, r in runs.items()}
    pipeline.clear_cache()
    h, w = image.shape[:2]
    header = (
        f"model {args.model} ({pipeline.adapter.family}), device {pipeline.adapter.device}, frame {w}x{h}, "
        f"median of {args.repeats}; questions: first {questions[0]!r}, same target {questions[1]!r}, "
        f"other target {questions[2]!r}"
    )
    print(format_report(table, header))
    if args.verify_crops:
        rows = verify_cost(pipeline, image, questions[0], args.verify_crops, args.repeats)
        print("\nWhat bounds a first FOCUS question (median ms):")
        for name, seconds in rows:
            print(f"{name:34s} {1000 * seconds:8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(contract_json(table), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
