"""``focus-bench-prefix``: what the per-frame cached prefix saves on a second question.

For each method it times, on one frame: the first question (the image prefix is prefilled), a
second question on the same frame (the prefix comes from the cache), and the same second
question with the cache cleared. Prints a table; each cell is the median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from ..core.methods import METHODS
from .common import CliError, add_model_flags, load_image, setup_logging
from .vqa import load_with_baselines

QUESTIONS = ("What shape is the red object?", "What shape is the blue object?")


def _timed(pipeline, image, question, method, key):
    t0 = time.perf_counter()
    result = pipeline.run(image, question, method=method, frame_key=key)
    return time.perf_counter() - t0, result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="focus-bench-prefix", description=__doc__)
    add_model_flags(p)
    p.add_argument("--image", required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    try:
        image = load_image(args.image)
        pipeline = load_with_baselines(args)
    except CliError as exc:
        print(f"focus-bench-prefix: error: {exc}", file=sys.stderr)
        return 2
    pipeline.run(image, QUESTIONS[0], method="vanilla")  # warm-up: first-call overheads
    rows = []
    for method in args.methods:
        cells = {"first": [], "second (cached prefix)": [], "second (no cache)": []}
        info = {}
        for rep in range(args.repeats):
            pipeline.clear_cache()
            key = f"frame-{method}-{rep}"
            t, r = _timed(pipeline, image, QUESTIONS[0], method, key)
            cells["first"].append(t)
            info["first"] = r
            t, r = _timed(pipeline, image, QUESTIONS[1], method, key)
            cells["second (cached prefix)"].append(t)
            info["second (cached prefix)"] = r
            pipeline.clear_cache()
            t, r = _timed(pipeline, image, QUESTIONS[1], method, None)
            cells["second (no cache)"].append(t)
            info["second (no cache)"] = r
        for name, times in cells.items():
            r = info[name]
            rows.append(
                (
                    method,
                    name,
                    statistics.median(times) * 1000,
                    r.forward_passes,
                    r.tokens_prefilled,
                    r.timings.get("prefill", 0.0) * 1000,
                )
            )
    h, w = image.shape[:2]
    print(
        f"model {args.model} ({pipeline.adapter.family}), device {pipeline.adapter.device}, "
        f"frame {w}x{h}, median of {args.repeats}"
    )
    print(f"{'method':9} {'question':24} {'ms':>9} {'passes':>7} {'tokens prefilled':>17} {'prefix ms':>10}")
    for method, name, ms, passes, tokens, prefix_ms in rows:
        print(f"{method:9} {name:24} {ms:9.1f} {passes:7d} {tokens:17d} {prefix_ms:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
