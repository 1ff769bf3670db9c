"""``focus-scenes``: write synthetic high-resolution benchmark scenes and their questions.

    focus-scenes OUT --n N --seed S [--short-side MIN MAX] [--format jpg|png] [--workers K]
                 [--renderer default|eval] [--style plain|varied]

writes ``OUT/frames/*.jpg``, ``OUT/questions.jsonl`` (one ``{"image", "question", "answer", "type",
"boxes"}`` a line, image paths relative to OUT, boxes ``[x0, y0, x1, y1]`` in source pixels) and
``OUT/scenes.json`` (every object of every frame). The same seed always gives the same files.

``--style varied`` draws the training renderer's randomised scenes (colourful and natural
backgrounds, distractors, object looks, lighting, JPEG noise); ``--renderer eval`` draws with the
evaluation-only renderer (its own drawing code and palette, never used in training), in the same
format, so ``focus-bench --scenes OUT`` checks whether a model's finding transfers. Natural
backgrounds (varied) and photo collages (eval) need scikit-image.
"""

from __future__ import annotations

import argparse
import sys

from ..eval.scenes import QUESTION_TYPES, SceneSpec, write_scenes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="focus-scenes", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("out", help="output directory")
    p.add_argument("--n", type=int, default=16, help="number of frames (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--short-side",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=list(SceneSpec.short_side),
        help="range of the frames' short side in px (default 1080 3000)",
    )
    p.add_argument(
        "--format",
        choices=("jpg", "png"),
        default="jpg",
        help="jpg (quality 95, no chroma subsampling) or png (lossless)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes drawing and encoding frames (the files are the same for any count)",
    )
    p.add_argument(
        "--renderer",
        choices=("default", "eval"),
        default="default",
        help="default: the training/benchmark generator; eval: the evaluation-only renderer",
    )
    p.add_argument(
        "--style",
        choices=("plain", "varied"),
        default="plain",
        help="the default renderer's look: plain (the benchmark's) or varied (randomised training "
        "scenes); the eval renderer has one look of its own",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.n < 1:
            raise ValueError("--n must be >= 1")

        def progress(s) -> None:
            print(f"scene {s.index + 1}/{args.n}: {s.width}x{s.height}, {len(s.objects)} objects", file=sys.stderr)

        if args.renderer == "eval":
            if args.style != "plain":
                raise ValueError("--style applies to the default renderer; the eval renderer has its own look")
            from ..eval.scenes_eval import EvalSpec, write_eval_scenes

            spec = EvalSpec(scene=SceneSpec(short_side=tuple(args.short_side)))
            spec.validate()
            path = write_eval_scenes(
                args.out, args.n, args.seed, spec, args.format, progress=progress, workers=args.workers
            )
        else:
            spec = SceneSpec(short_side=tuple(args.short_side), style=args.style)
            spec.validate()
            path = write_scenes(args.out, args.n, args.seed, spec, args.format, progress=progress, workers=args.workers)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"focus-scenes: error: {exc}", file=sys.stderr)
        return 2
    lines = path.read_text().splitlines()
    look = (
        " by the eval renderer" if args.renderer == "eval" else " in the varied style" if args.style == "varied" else ""
    )
    print(f"wrote {args.n} frames{look} and {len(lines)} questions ({', '.join(QUESTION_TYPES)}) to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
