"""``focus-vqa``: ask a question about an image with FOCUS (or a baseline: vanilla, zoom, attention, random)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..core.methods import METHODS
from .common import CliError, add_model_flags, load_image, load_pipeline, setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="focus-vqa", description=__doc__)
    add_model_flags(p)
    p.add_argument("--image", help="image file (any format OpenCV reads)")
    p.add_argument("--question", help="question about the image")
    p.add_argument(
        "--method",
        choices=METHODS,
        default="focus",
        help="focus (default), or a baseline: vanilla, zoom (zoom tree), attention (attention crop), "
        "random (random windows); baseline settings via --set zoom.NAME=V / attention.NAME=V",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--dump-relevance",
        metavar="FILE.npy",
        help="save the first target's relevance map (model visual-token grid) as .npy",
    )
    p.add_argument(
        "--batch",
        metavar="FILE.jsonl",
        help='one {"image", "question"} object a line; one result a line out, same order',
    )
    return p


def _human(result) -> str:
    d = result.to_dict()
    lines = [
        f"answer:     {d['answer']}",
        f"targets:    {', '.join(d['targets']) or '-'} (type {d['question_type']}, from {d['target_source'] or '-'})",
        f"bbox:       {d['bbox']}  confidence {d['confidence']:.3f}",
        f"cost:       {d['forward_passes']} forward passes, {d['tokens_prefilled']} tokens prefilled, "
        f"{d['generated_tokens']} generated",
        "timings:    " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in d["timings"].items()),
    ]
    return "\n".join(lines)


def _run_batch(pipeline, path: str, method: str) -> int:
    """Answer every line of a JSONL file with the model loaded once; frame prefixes are reused
    for consecutive questions about the same image file."""
    p = Path(path)
    if not p.is_file():
        raise CliError(f"batch file not found: {p}")
    failures = 0
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            image_path = Path(item["image"])
            if not image_path.is_absolute():
                image_path = p.parent / image_path
            image = load_image(image_path)
            result = pipeline.run(
                image, item["question"], method=item.get("method", method), frame_key=str(image_path.resolve())
            )
            out = result.to_dict()
        except (CliError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            failures += 1
            out = {"error": f"line {n}: {exc}"}
        print(json.dumps(out), flush=True)
    return 1 if failures else 0


def load_with_baselines(args):
    """``load_pipeline`` that also takes the baselines' ``--set zoom.*`` / ``--set attention.*``."""
    from ..core.methods import split_method_settings

    try:
        args.set, zoom, attention = split_method_settings(args.set)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    pipeline = load_pipeline(args)
    pipeline.zoom, pipeline.attention = zoom, attention
    return pipeline


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        if args.batch:
            pipeline = load_with_baselines(args)
            return _run_batch(pipeline, args.batch, args.method)
        if not args.image:
            raise CliError("--image is required (or --batch)")
        if args.question is None or not args.question.strip():
            raise CliError("question is empty")
        image = load_image(args.image)
        pipeline = load_with_baselines(args)
        result = pipeline.run(image, args.question, method=args.method)
        if args.dump_relevance:
            if not result.relevance_maps:
                raise CliError("no relevance map to dump (no targets, or a method without one)")
            np.save(args.dump_relevance, next(iter(result.relevance_maps.values())).astype(np.float32))
        print(json.dumps(result.to_dict()) if args.json else _human(result))
        return 0
    except CliError as exc:
        print(f"focus-vqa: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError) as exc:
        print(f"focus-vqa: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
