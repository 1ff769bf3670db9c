"""``focus-report``: the node's recorded answers to a demo bag, checked against its ground truth.

    focus-report RECORDED --ground-truth GT [--overlays DIR] [--json FILE]

RECORDED is the bag ``focus-replay --record`` wrote; GT is the demo bag's ``ground_truth.json``
(or its folder). Prints one line per question (true answer, the node's answer, whether it is
right, the selected box in source pixels and whether it contains the object, forward passes,
latency), then one line per target of each question (found, the node's 3-D point in the camera's
optical frame, the true point, the error in cm and whether the target's box holds the object, or
the node's note when it has no point) with the median error, and writes the relevance overlays
to DIR as ``qNN_<type>.png``. --json FILE writes every question's row with its targets.
Exit status: 0 when every question got exactly one answer, 1 otherwise, 2 for unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from ..bags.demo import load_ground_truth
from ..bags.io import BagError
from ..bags.report import build_report, format_points, format_report, points_json, read_answers, write_overlays


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="focus-report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("recorded", help="bag recorded by focus-replay --record")
    p.add_argument("--ground-truth", required=True, metavar="GT", help="ground_truth.json or its folder")
    p.add_argument("--overlays", metavar="DIR", help="write the relevance overlays here")
    p.add_argument("--json", metavar="FILE", help="also write every row as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        truth = load_ground_truth(args.ground_truth)
        report = build_report(truth, read_answers(args.recorded))
    except (BagError, OSError, ValueError, KeyError) as exc:
        print(f"focus-report: error: {exc}", file=sys.stderr)
        return 2
    print(format_report(report, truth.start_ns))
    print()
    print(format_points(report))
    if args.overlays:
        paths = write_overlays(report, args.overlays)
        print(f"wrote {len(paths)} overlay image(s) to {args.overlays}")
    if args.json:
        rows = [
            {
                "question": asdict(r.truth),
                "answers": [{k: v for k, v in asdict(a).items() if k != "overlay"} for a in r.answers],
                "correct": r.correct,
                "box_hit": r.box_hit,
                "points": points_json(r),
            }
            for r in report.rows
        ]
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0 if report.answered_once == len(report.rows) and not report.unmatched else 1


if __name__ == "__main__":
    sys.exit(main())
