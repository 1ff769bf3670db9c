"""``focus-scenes``: write synthetic high-resolution benchmark scenes and their questions.

    focus-scenes OUT --n N --seed S [--short-side MIN MAX] [--format jpg|png] [--workers K]

writes ``OUT/frames/*.jpg``, ``OUT/questions.jsonl`` (one ``{"image", "question", "answer", "type",
"boxes"}`` a line, image paths relative to OUT, boxes ``[x0, y0, x1, y1]`` in source pixels) and
``OUT/scenes.json`` (every object of every frame). The same seed always gives the same files.
"""

from __future__ import annotations

import argparse
import sys

from ..core.scenes import QUESTION_TYPES, SceneSpec, write_scenes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="focus-scenes", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="output directory")
    p.add_argument("--n", type=int, default=16, help="number of frames (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--short-side", type=int, nargs=2, metavar=("MIN", "MAX"), default=list(SceneSpec.short_side),
                   help="range of the frames' short side in px (default 1080 3000)")
    p.add_argument("--format", choices=("jpg", "png"), default="jpg",
                   help="jpg (quality 95, no chroma subsampling) or png (lossless)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes drawing and encoding frames (the files are the same for any count)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.n < 1:
            raise ValueError("--n must be >= 1")
        spec = SceneSpec(short_side=tuple(args.short_side))
        spec.validate()
        path = write_scenes(args.out, args.n, args.seed, spec, args.format,
                            progress=lambda s: print(f"scene {s.index + 1}/{args.n}: {s.width}x{s.height}, "
                                                     f"{len(s.objects)} objects", file=sys.stderr),
                            workers=args.workers)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"focus-scenes: error: {exc}", file=sys.stderr)
        return 2
    lines = path.read_text().splitlines()
    print(f"wrote {args.n} frames and {len(lines)} questions ({', '.join(QUESTION_TYPES)}) to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
